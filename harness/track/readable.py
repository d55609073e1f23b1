"""What a person reads in MLflow's runs table: the guard's figures as text in % and $ (tags), beside
the raw metrics (numbers, for sorting and charts). MLflow shows a metric as a bare float
(0.96663243180...); a tag is shown as written: "96.7% [94.4%, 98.5%]".

The variant figures are read through `_variant` and `_figure`, so that this module reads a summary
whose variants are dicts or typed models alike."""

from __future__ import annotations

from typing import Any

from harness.stats.numbers import money, with_ci
from harness.stats.summary import guard_metrics
from harness.suite import NET_MONTHLY_VALUE

# Tag keys: the runs table's column headers (MLflow keys allow letters, digits, _ - . space : /).
NET_TAG = "net/month"
SPENT_TAG = "spent"
WOULD_COST_TAG = "would cost"


def delta_tag(summary: dict[str, Any], metric: str) -> str:
    """ "Δ macro_f1 vs gpt-4o": the baseline in the header keeps the column narrow."""
    return f"Δ {metric} vs {summary.get('baseline')}"


def net_tag(summary: dict[str, Any]) -> str:
    return f"{NET_TAG} vs {summary.get('baseline')}"


def tag_keys(summary: dict[str, Any]) -> list[str]:
    """The readable columns of the first view, in order: each guard metric and its Δ, the
    dollars a month when `value:` is set, then spent beside would-cost."""
    keys: list[str] = []
    for m in guard_metrics(summary):
        keys += [m, delta_tag(summary, m)]
    if _vs_baseline(summary):
        keys.append(net_tag(summary))
    return [*keys, SPENT_TAG, WOULD_COST_TAG]


def variant_verdict(summary: dict[str, Any], name: str, verdicts: dict[str, str]) -> str | None:
    """A variant row's verdict: its hypothesis's, or each of its hypotheses' by metric
    ("macro_f1: inconclusive · net_monthly_value: fail") when a guard list tests it twice —
    by metric and baseline ("macro_f1 vs gpt-4o: pass") when two share the metric."""
    from harness.results import hypotheses_of  # not at the tracking child's start

    if name in verdicts:
        return verdicts[name]
    own = [h for h in hypotheses_of(summary) if h.get("candidate") == name and h["key"] in verdicts]
    if len(own) == 1:
        return verdicts[own[0]["key"]]
    shared = len({h.get("metric") for h in own}) < len(own)
    labels = [
        f"{h.get('metric')} vs {h.get('baseline')}" if shared else h.get("metric") for h in own
    ]
    return (
        " · ".join(f"{x}: {verdicts[h['key']]}" for x, h in zip(labels, own, strict=True)) or None
    )


def tag_widths(summary: dict[str, Any]) -> dict[str, int]:
    """The readable columns (`tag_keys`) with a width in pixels that shows their text whole."""
    widths = {net_tag(summary): 250, SPENT_TAG: 90, WOULD_COST_TAG: 100}
    return {k: widths.get(k, 190 if k.startswith("Δ ") else 160) for k in tag_keys(summary)}


def variant_tags(summary: dict[str, Any], name: str) -> dict[str, str]:
    """One variant's readable figures: "96.7% [94.4%, 98.5%]", "−1.3 pts [−3.9, +1.3]",
    "−$10,490/month [−$31,824, +$10,843]", "$0.0036"."""
    v = _variant(summary, name)
    tags: dict[str, str] = {}
    for m in guard_metrics(summary):
        entry = (_figure(v, "metrics") or {}).get(m)
        if _has_value(entry):
            tags[m] = with_ci(_plain(entry), m)
        d = (_figure(v, "delta") or {}).get(m)
        if name != summary.get("baseline") and _has_value(d):
            tags[delta_tag(summary, m)] = with_ci(_plain(d), m, delta=True)
    net = _vs_baseline(summary).get(name)
    if _has_value(net):
        tags[net_tag(summary)] = with_ci(_plain(net), NET_MONTHLY_VALUE, delta=True)
    tags[SPENT_TAG] = money(_figure(v, "spent_usd"))
    tags[WOULD_COST_TAG] = money(_figure(v, "cost_usd"))
    return tags


def suite_tags(
    summary: dict[str, Any], spent: float | None, would_cost: float | None
) -> dict[str, str]:
    """The parent row: what the whole run spent beside what it would have cost uncached (None:
    no variant has that figure)."""
    return {SPENT_TAG: money(spent), WOULD_COST_TAG: money(would_cost)}


def value_metrics(summary: dict[str, Any], name: str) -> dict[str, float]:
    """The dollars of `value:` as metrics: net a month vs the baseline (with its interval) and
    the variant's own monthly cost."""
    out: dict[str, float] = {}
    net = _vs_baseline(summary).get(name) or {}
    for part, suffix in (("value", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high")):
        if _number(net.get(part)):
            out[f"{NET_MONTHLY_VALUE}{suffix}"] = float(net[part])
    own = ((summary.get("value") or {}).get("variants") or {}).get(name) or {}
    if _number(own.get("monthly_cost_usd")):
        out["monthly_cost_usd"] = float(own["monthly_cost_usd"])
    return out


def _vs_baseline(summary: dict[str, Any]) -> dict[str, Any]:
    return (summary.get("value") or {}).get("vs_baseline") or {}


def _variant(summary: dict[str, Any], name: str) -> Any:
    return (summary.get("variants") or {}).get(name) or {}


def _figure(v: Any, key: str) -> Any:
    """A variant's figure, from a dict or a typed model."""
    return v.get(key) if isinstance(v, dict) else getattr(v, key, None)


def _plain(entry: Any) -> dict[str, Any]:
    if isinstance(entry, dict):
        return entry
    return entry.model_dump() if hasattr(entry, "model_dump") else dict(vars(entry))


def _has_value(entry: Any) -> bool:
    return entry is not None and _number(_figure(entry, "value"))


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x
