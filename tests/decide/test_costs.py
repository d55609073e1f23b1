"""Break-even arithmetic checked by hand, and the report's break-even plot written to disk."""

from __future__ import annotations

import pytest
from guard_fixtures import make_suite, make_summary

from harness.decide.costs import (
    break_even,
    break_even_table,
    cost_per_request,
    cost_ratio,
)
from harness.report.plots import break_even as plot_break_even


def test_break_even_by_hand():
    # $42 training; baseline $0.0030/request, variant $0.0005 → saves $0.0025 per request
    row = break_even(42.0, 0.0030, 0.0005, monthly_requests=1_000_000)
    assert row["saving_per_request"] == pytest.approx(0.0025)
    assert row["break_even_requests"] == pytest.approx(16_800)
    assert row["payback_months"] == pytest.approx(0.0168)
    assert row["monthly_saving_usd"] == pytest.approx(2_500)
    assert row["cost_ratio"] == pytest.approx(1 / 6)


def test_not_cheaper_has_no_break_even():
    assert break_even(10.0, 0.001, 0.001) is None
    assert break_even(10.0, 0.001, 0.002) is None


def test_without_volume_only_requests():
    row = break_even(10.0, 0.002, 0.001)
    assert row["break_even_requests"] == pytest.approx(10_000)
    assert row["payback_months"] is None and row["monthly_saving_usd"] is None


def test_cost_per_request_and_ratio():
    assert cost_per_request({"cost_usd": 1.0, "n_calls": 400}) == pytest.approx(0.0025)
    assert cost_per_request({"cost_usd": 1.0, "n_calls": 0}) is None
    assert cost_ratio(0.001, 0.006) == pytest.approx(1 / 6)
    assert cost_ratio(0.001, 0.0) is None


def test_table_from_summary(tmp_path):
    suite = make_suite(tmp_path)
    table = break_even_table(suite, make_summary(base_cost=2.0, ft_cost=0.2, n=200))
    assert list(table) == ["ft"]
    row = table["ft"]
    assert row["baseline_cost_per_request"] == pytest.approx(0.01)
    assert row["variant_cost_per_request"] == pytest.approx(0.001)
    assert row["break_even_requests"] == pytest.approx(40 / 0.009)
    assert row["monthly_saving_usd"] == pytest.approx(9_000)
    # A variant dearer than the baseline gets no row.
    assert break_even_table(suite, make_summary(base_cost=0.2, ft_cost=2.0)) == {}


def test_plot_written(tmp_path):
    rows = {"ft": break_even(42.0, 0.003, 0.0005, 1_000_000)}
    summary = {"break_even": rows, "baseline": "zero-shot"}
    path = plot_break_even(summary, tmp_path / "plots" / "break_even.png")
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_break_even({}, tmp_path / "none.png") is None
