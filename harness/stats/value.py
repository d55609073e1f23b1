"""The decision in dollars: what a variant costs a month once its wrong answers are priced.

    monthly cost = volume × (API cost per request + error rate × error cost) + training / months

per variant, from its own records: the API cost per request is its calls' cost at the suite's
prices (an unpriced call counts at the mean of the priced ones, as `cost_per_request` does), an
error is a wrong answer (classification: not the true label, the cost of the true class from
`value.per_class` else `error_cost_usd`; extraction: a record with any field wrong; a provider
error is a wrong answer). The difference against a baseline — net monthly value, positive when
the candidate is cheaper — gets its interval from the same paired bootstrap over examples as
every other delta (harness.stats.bootstrap.paired_bootstrap): API cost and error cost of both
variants move together on each resampled example set.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.score.table import Table
from harness.stats import bootstrap as S


def per_example(suite: Any, table: Table) -> np.ndarray | None:
    """(n_examples, 3) sums per example: API cost, error cost, calls. None when no answered
    call of the variant has a price (its cost is unknown, so its dollars are too)."""
    spec = suite.spec.value
    # A failed call is never a free request: in production it is retried and paid, so it
    # counts (like an answered call without a price) at the mean of the priced answered
    # calls. No priced answered call: the variant's dollars are unknown.
    errors = np.array([r.get("error") is not None for r in table.records], dtype=bool)
    cost = np.where(errors, np.nan, table.field("cost_usd"))
    priced = ~np.isnan(cost)
    if not priced.any():
        return None
    cost = np.where(priced, cost, cost[priced].mean())
    price = np.full(table.n_records, spec.error_cost_usd)
    if suite.task == "classification" and spec.per_class:
        true, _ = table.y()
        price = np.array([spec.per_class.get(t, spec.error_cost_usd) for t in true])
    wrong = np.where(_wrong(suite, table), price, 0.0)
    return np.c_[
        table.per_example(cost), table.per_example(wrong), table.per_example(np.ones(len(cost)))
    ]


def _monthly(volume: float, training_month: float):
    """Sums (…, 3) → monthly cost, and its two parts."""

    def api(s):
        return volume * s[..., 0] / s[..., 2]

    def errors(s):
        return volume * s[..., 1] / s[..., 2]

    def total(s):
        return api(s) + errors(s) + training_month

    return total, api, errors


def training_per_month(suite: Any, name: str) -> float | None:
    """None when the training has no price (its month is unknown, never $0)."""
    v = suite.variant(name)
    cost = v.training.total_usd() if v.training else 0.0
    return None if cost is None else cost / suite.spec.value.amortise_months


def variant_value(suite: Any, name: str, table: Table) -> dict[str, Any] | None:
    """{monthly_cost_usd, api_usd, errors_usd, training_usd, error_rate}: a month at the suite's
    volume. None when the variant's cost is unknown."""
    stats = per_example(suite, table)
    train = training_per_month(suite, name)
    if stats is None or train is None:
        return None
    total, api, errors = _monthly(suite.spec.volume.monthly_requests, train)
    s = stats.sum(0)
    return {
        "monthly_cost_usd": float(total(s)),
        "api_usd": float(api(s)),
        "errors_usd": float(errors(s)),
        "training_usd": train,
        "error_rate": float(np.count_nonzero(_wrong(suite, table)) / max(1, table.n_records)),
    }


def _wrong(suite: Any, table: Table) -> np.ndarray:
    """Per record: a wrong answer (a provider error is one)."""
    if suite.task == "classification":
        true, pred = table.y_classes()
        return np.array([p != t for t, p in zip(true, pred, strict=True)], dtype=bool)
    exact, _ = table.score("exact_record")
    errors = np.array([r.get("error") is not None for r in table.records], dtype=bool)
    return (exact < 1) | errors


def value_delta(
    suite: Any,
    base_name: str,
    base: Table,
    name: str,
    table: Table,
    *,
    confidence: float,
    B: int,
    seed: int,
) -> dict[str, Any] | None:
    """Net monthly value of `name` against `base_name` on the same examples (baseline's monthly
    cost − the candidate's: positive saves money), with its paired interval, and the parts of
    the difference: API saving, extra error cost (with its own interval), training."""
    sa, sb = per_example(suite, base), per_example(suite, table)
    ta, tb = training_per_month(suite, base_name), training_per_month(suite, name)
    if sa is None or sb is None or ta is None or tb is None:
        return None
    volume = suite.spec.volume.monthly_requests
    total_a, api_a, err_a = _monthly(volume, ta)
    total_b, api_b, err_b = _monthly(volume, tb)
    net = S.paired_bootstrap(
        sb, total_b, sa, total_a, confidence=confidence, B=B, seed=seed
    )  # a − b: the candidate's saving
    extra = S.paired_bootstrap(sa, err_a, sb, err_b, confidence=confidence, B=B, seed=seed)
    a, b = sa.sum(0), sb.sum(0)
    net, extra = _error_rates_unknown(suite, sa, sb, net, extra, volume, confidence)
    return {
        **net,
        "p_method": "bootstrap",
        "confidence": confidence,
        "api_saving_usd": float(api_a(a) - api_b(b)),
        "extra_errors_usd": extra["value"],
        "extra_errors_ci_low": extra["ci_low"],
        "extra_errors_ci_high": extra["ci_high"],
        "extra_training_usd": tb - ta,
    }


def _error_rates_unknown(suite, sa, sb, net, extra, volume, confidence):
    """When the two variants never differ in their errors, the bootstrap's error part cannot
    vary and the net interval would price error rates as known exactly (3 examples both right:
    a saving to the cent). Their difference is then as uncertain as Newcombe's interval of a
    fully concordant paired table (harness.stats.paired); priced at the dearest error, it is
    added in quadrature (the two parts' spreads are independent: the error part has none)."""
    lo, hi = extra.get("ci_low"), extra.get("ci_high")
    if lo is None or hi is None or hi - lo > 1e-12 or net.get("ci_low") is None:
        return net, extra
    from harness.stats.paired import newcombe_paired_ci

    spec = suite.spec.value
    price = max([spec.error_cost_usd, *((spec.per_class or {}).values())])
    n = len(sa)
    wrong = int(np.count_nonzero(sa[:, 1] > 0))  # both variants wrong on the same examples
    e_lo, e_hi = newcombe_paired_ci((n - wrong, 0, 0, wrong), confidence)
    half = volume * price * float(max(-e_lo, e_hi))
    v = net["value"]
    widen = {
        "ci_low": v - float(np.hypot(v - net["ci_low"], half)),
        "ci_high": v + float(np.hypot(net["ci_high"] - v, half)),
    }
    ev = extra["value"]
    return {**net, **widen}, {**extra, "ci_low": ev - half, "ci_high": ev + half}
