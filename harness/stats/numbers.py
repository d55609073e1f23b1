"""One number format for every place a person reads a result: the verdict sentence, the terminal
tables, report.md/html, the JUnit messages, the PR comment.

Rates (quality metrics: accuracy, F1, ...) read as percentages and their differences as signed
points with a true minus sign: 53.1% [43.1%, 63.1%], +3.1 pts [−0.8, +7.0]. Unit figures
(latency, tokens) keep their unit; dollars carry significant digits, not decimals."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from harness.results import Figure
from harness.score.registry import is_quality
from harness.suite import NET_MONTHLY_VALUE


def is_rate(metric: str) -> bool:
    """A rate (shown in percent and points) rather than a unit figure: the registry's quality flag."""
    return is_quality(metric)


def signed(x: float, metric: str, unit: bool = False) -> str:
    """A difference: +3.1 (pts with unit=True) for a rate, +$0.05 for money, +12.5 for a unit,
    +$23,800 (/month with unit=True) for the dollars of `value:`."""
    if metric == NET_MONTHLY_VALUE:
        return dollars(x, signed=True) + ("/month" if unit else "")
    if metric.startswith("cost") and not is_rate(metric):
        return ("+" if x >= 0 else "−") + money(abs(x))
    s = (f"{x * 100:+.1f}" + (" pts" if unit else "")) if is_rate(metric) else f"{x:+.3g}"
    return s.replace("-", "−")


def value(x: Any, metric: str = "") -> str:
    """A metric's value: 53.1% for a rate, $0.0036 for money, 1,234.5 ms-like units."""
    if x is None:
        return "–"
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return str(x)
    if metric.startswith("cost"):
        return money(x)
    if metric and is_rate(metric):
        return f"{x * 100:.1f}%"
    if abs(x) >= 10:
        return f"{x:,.1f}"
    return f"{x:.3f}"


def money(x: float | None) -> str:
    """Dollars: whole dollars from $10, cents from $1, four significant digits below
    ($0.000051, not $5.1e-05: per-request costs differ in their small digits)."""
    if x is None:
        return "–"
    if abs(x) >= 10:
        return f"${x:,.0f}"
    if abs(x) >= 1:
        return f"${x:,.2f}"
    if x == 0:
        return "$0"
    decimals = 3 - math.floor(math.log10(abs(x)))
    frac = f"{abs(x):.{decimals}f}".split(".")[1].rstrip("0").ljust(2, "0")
    return f"{'-' if x < 0 else ''}$0.{frac}"


def dollars(x: float, signed: bool = False) -> str:
    """Monthly dollars of `value:`: $23,800 / −$23,800 / +$190: whole dollars from $100, cents
    below."""
    body = f"${abs(x):,.0f}" if abs(x) >= 100 else f"${abs(x):,.2f}"
    sign = "−" if x < 0 and round(abs(x), 2) > 0 else ("+" if signed else "")
    return sign + body


def p_value(p: float | None) -> str:
    """A p-value: 0.0123, or "< 0.001" where it is smaller (a bootstrap or a normal tail this far
    out says "tiny", not "zero")."""
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


def with_ci(m: Mapping[str, Any] | Figure | None, metric: str, *, delta: bool = False) -> str:
    """A value or a difference with its interval: 53.1% [43.1%, 63.1%] / +3.1 pts [−0.8, +7.0]."""
    if isinstance(m, Figure):
        m = m.model_dump()
    if not m or m.get("value") is None:
        return "–"
    lo, hi = m.get("ci_low"), m.get("ci_high")
    if delta:
        text = signed(m["value"], metric, unit=True)
        if lo is not None and hi is not None:
            text += f" [{signed(lo, metric)}, {signed(hi, metric)}]"
        return text
    text = value(m["value"], metric)
    if lo is not None and hi is not None:
        text += f" [{value(lo, metric)}, {value(hi, metric)}]"
    return text


# What each exit code of `harness run` means, for the reader of a report or a PR comment.
EXIT_MEANING = {
    0: "every guarded variant passed (or nothing is guarded)",
    1: "the guard flagged a variant (fail, inconclusive, abandon or moved goalposts)",
    2: "the suite or the command line is wrong",
    3: "the run could not be judged (provider errors above max_error_rate, or a crash)",
}


def exit_text(code: Any) -> str:
    """ "exit code 1 — the guard flagged a variant (...)"."""
    meaning = EXIT_MEANING.get(code) if isinstance(code, int) else None
    return f"exit code {code} — {meaning}" if meaning else f"exit code {code}"


def verdict_label(v: dict[str, Any]) -> str:
    """A verdict as every display names it: a pass under moved goalposts reads as flagged."""
    verdict = str(v.get("verdict", "?"))
    flags = v.get("flags") or []
    if verdict == "pass" and "moved_goalposts" in flags:
        return "pass (flagged: goalposts moved)"
    if verdict == "pass" and "amended" in flags:
        # As the decision line says it: the guard exits 1, the ledger does not count it.
        return "pass (not counted: amended protocol)"
    if "error_rate" in flags:
        return f"{verdict} (flagged: provider errors)"
    return verdict
