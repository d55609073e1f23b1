"""The one number format (harness.stats.numbers) for p-values."""

from __future__ import annotations

from harness.stats.numbers import p_value


def test_p_values_keep_three_digits_and_never_read_zero():
    assert p_value(0.04567) == "0.0457"
    assert p_value(0.001) == "0.001"
    assert p_value(0.000999) == "< 0.001"
    assert p_value(0.0) == "< 0.001"
    assert p_value(None) == "–"
