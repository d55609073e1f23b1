"""report.md's "Value per month" section: each variant's month in dollars once its wrong answers
are priced (summary["value"], harness.stats.value), and the dollar sentence vs the baseline."""

from __future__ import annotations

from typing import Any

from harness.decide.sections import reconcile
from harness.decide.sentence import value_sentence
from harness.report.cells import md_inline, md_table
from harness.results import as_summary
from harness.stats.numbers import dollars


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
    not_valued = value.get("not_valued") or {}
    for name, v in (value.get("variants") or {}).items():
        if v is None:
            why = not_valued.get(name) or "cost unknown (no priced call)"
            rows.append([f"**{name}**", md_inline(f"not valued: {why}"), "", "", "", ""])
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
    lines += md_table(["variant", "monthly cost", "API", "errors", "training", "error rate"], rows)
    baseline = str(s.get("baseline"))
    for name, d in (value.get("vs_baseline") or {}).items():
        if d is not None and d.get("value") is not None:
            lines.append(
                f"- {md_inline(value_sentence(name, baseline, d) + verdict_note(s, name))}"
            )
    return [*lines, ""]


def verdict_note(s: dict[str, Any], name: str) -> str:
    """Where the dollars and the guard disagree, the words that reconcile them: the worst
    verdict of the hypotheses on `name` against the suite's baseline (its lineage's)."""
    d = ((s.get("value") or {}).get("vs_baseline") or {}).get(name)
    summary = as_summary(s)
    if summary.guard is None or not d:
        return ""
    order = ["abandon", "fail", "inconclusive", "pass"]
    own = [
        v
        for v in summary.guard.verdicts.values()
        if v.hypothesis is not None and v.hypothesis.candidate == name
    ]
    if not own:
        return ""
    worst = min(own, key=lambda v: order.index(v.verdict))
    return reconcile(worst, d)


def monthly_cost(s: dict[str, Any], name: str) -> float | None:
    v = ((s.get("value") or {}).get("variants") or {}).get(name)
    return None if v is None else v["monthly_cost_usd"]
