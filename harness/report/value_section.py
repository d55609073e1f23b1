"""report.md's "Value per month" section: each variant's month in dollars once its wrong answers
are priced (summary["value"], harness.stats.value), and the dollar sentence vs the baseline."""

from __future__ import annotations

from typing import Any

from harness.decide.sentence import dollars, value_sentence
from harness.report.cells import _inline, _table


def value_lines(s: dict[str, Any]) -> list[str]:
    value = s.get("value")
    if not value:
        return []
    per_class = value.get("per_class")
    priced = f"${value['error_cost_usd']:g} per wrong answer" + (
        f" ({', '.join(f'{k}: ${v:g}' for k, v in per_class.items())})" if per_class else ""
    )
    lines = [
        "## Value per month",
        "",
        f"{value['monthly_requests']:,.0f} requests a month; {priced}; training amortised over "
        f"{value['amortise_months']:g} months. Monthly cost = volume × (API cost per request + "
        "error rate × error cost) + training / months.",
        "",
    ]
    rows = []
    for name, v in (value.get("variants") or {}).items():
        if v is None:
            rows.append([f"**{name}**", "cost unknown (no priced call)", "", "", "", ""])
            continue
        rows.append(
            [
                f"**{name}**",
                dollars(v["monthly_cost_usd"]),
                dollars(v["api_usd"]),
                dollars(v["errors_usd"]),
                dollars(v["training_usd"]),
                f"{v['error_rate']:.1%}",
            ]
        )
    lines += _table(["variant", "monthly cost", "API", "errors", "training", "error rate"], rows)
    baseline = s.get("baseline")
    for name, d in (value.get("vs_baseline") or {}).items():
        if d is not None and d.get("value") is not None:
            lines.append(f"- {_inline(value_sentence(name, baseline, d))}")
    return [*lines, ""]


def monthly_cost(s: dict[str, Any], name: str) -> float | None:
    v = ((s.get("value") or {}).get("variants") or {}).get(name)
    return None if v is None else v["monthly_cost_usd"]
