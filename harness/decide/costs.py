"""Break-even of a cheaper variant: when does its training cost pay for itself?

A fine-tuned small model that is cheaper per request than the baseline recovers its training cost
after training / (baseline − variant cost per request) requests. Costs per request come from the
run itself (the calls' cost at the suite's prices / priced calls, cached answers included: a
cached answer costs nothing now but a request in production does), so they reflect the suite's
real prompts and outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.results import VariantFigures, figures_of


def cost_per_request(stats: VariantFigures | Mapping[str, Any] | None) -> float | None:
    """Measured USD per call of one variant, cached calls included (what a request costs, not
    what this run spent); the mean over its priced calls when some have no price. None when it
    made no priced calls, or every call failed."""
    f = figures_of(stats)
    calls = f.n_calls - f.unpriced_calls
    if calls <= 0 or f.cost_usd is None:
        return None
    if f.answered <= 0:
        return None  # no call answered: $0 would read as the cheapest variant, a saving
    return f.cost_usd / calls


def cost_ratio(variant_cpr: float | None, baseline_cpr: float | None) -> float | None:
    """Variant cost per request as a multiple of the baseline's (0.17 = 17% of the cost)."""
    if variant_cpr is None or not baseline_cpr:
        return None
    return variant_cpr / baseline_cpr


def break_even(
    training_usd: float,
    baseline_cpr: float,
    variant_cpr: float,
    monthly_requests: float | None = None,
) -> dict[str, float | None] | None:
    """Break-even requests, payback months and monthly saving; None if the variant is not cheaper.

    Pure arithmetic, so each number can be checked by hand:
    break_even_requests = training / (baseline − variant), payback = that / monthly volume.
    """
    saving = baseline_cpr - variant_cpr
    if saving <= 0:
        return None
    requests = training_usd / saving
    return {
        "training_usd": training_usd,
        "baseline_cost_per_request": baseline_cpr,
        "variant_cost_per_request": variant_cpr,
        "saving_per_request": saving,
        "cost_ratio": cost_ratio(variant_cpr, baseline_cpr),
        "break_even_requests": requests,
        "monthly_requests": monthly_requests,
        "payback_months": requests / monthly_requests if monthly_requests else None,
        "monthly_saving_usd": saving * monthly_requests if monthly_requests else None,
    }


def break_even_table(suite: Any, summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """summary["break_even"]: one entry per trained variant cheaper per request than the
    baseline (a variant without training cost has nothing to pay back). With `value:` a
    request's cost counts its errors too (API cost + error rate × error cost, from
    summary["value"]), so break-even never contradicts the value line; `counts_error_cost`
    says which it is."""
    variants = {n: figures_of(f) for n, f in (summary.get("variants") or {}).items()}
    valued = (summary.get("value") or {}).get("variants")
    monthly = suite.spec.volume.monthly_requests if suite.spec.volume else None

    def per_request(name: str) -> float | None:
        if valued is not None and monthly:
            row = valued.get(name)
            return None if row is None else float(row["api_usd"] + row["errors_usd"]) / monthly
        return cost_per_request(variants[name])

    if suite.baseline not in variants:
        return {}
    base_cpr = per_request(suite.baseline)
    if not base_cpr:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for v in suite.variants:
        if v.name == suite.baseline or v.name not in variants or v.training is None:
            continue
        cpr = per_request(v.name)
        training = v.training.total_usd()
        if cpr is None or not training:  # no price for the training: no break-even to state
            continue
        row = break_even(training, base_cpr, cpr, monthly)
        if row is not None:
            out[v.name] = {**row, "counts_error_cost": valued is not None}
    return out
