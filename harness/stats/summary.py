"""Records of every variant -> the metrics, intervals and paired deltas of summary.json.

`summarize` is pure: it reads the scored records (results/<variant>.jsonl contents) and the
dataset, and returns the summary's top-level fields and its "variants" section. The guard,
ledger and break-even sections are added by their modules.

- Every declared metric gets {"value", "ci_low", "ci_high"}: a Wilson interval for a plain
  proportion (one 0/1 record per example), otherwise a percentile bootstrap over examples
  (clustered by example when repeated); operational metrics (latency, tokens, cost) get none.
- Every non-baseline variant gets "delta" (variant - baseline) for every declared metric on the
  examples both have: a paired bootstrap CI and p-value for quality metrics (McNemar exact for
  accuracy), the plain difference for operational ones. The guard metric's interval uses the
  guard's confidence; the others use 95%.
- Errors count as wrong answers in every quality metric and are also counted apart.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

from harness.calls.engine import price_tokens
from harness.retrieve import k_of, retrieval_metrics
from harness.score import registry as M
from harness.score.judge import SECTION_METRICS
from harness.score.metrics import cost_figures, latency_percentile, per_class
from harness.score.table import Table, make_table
from harness.stats import bootstrap as S
from harness.stats import paired as P
from harness.stats import value as V
from harness.suite import NET_MONTHLY_VALUE, suite_hash
from harness.suite.kinds import KINDS


def summarize(
    suite: Any, dataset: Any, records: dict[str, list[dict]], meta: dict | None = None
) -> dict:
    """summary.json without guard/ledger/break-even: top-level fields and "variants"."""
    meta = dict(meta or {})
    B = int(meta.pop("bootstrap_resamples", S.DEFAULT_B))
    seed = int(meta.pop("seed", S.DEFAULT_SEED))
    targets = {e.id: e.target for e in dataset.test}
    entries = [M.entry_name(e) for e in suite.spec.metrics]
    hyps = suite.hypotheses()
    # A metric's intervals (its value's and its delta vs the suite's baseline) use the confidence
    # of the first guard entry on it against that baseline, whether or not a variant is guarded
    # yet; a hypothesis with another baseline or confidence gets its own in "comparisons".
    ci_conf = {name: 0.95 for name, _ in entries}
    for g in reversed(suite.guards):
        if (g.baseline or suite.baseline) == suite.baseline and g.metric in ci_conf:
            ci_conf[g.metric] = g.confidence

    records = priced(suite, records)
    tables = {v: make_table(recs, targets, dataset.labels) for v, recs in records.items()}
    baseline = suite.baseline
    variants: dict[str, dict] = {}
    for v in suite.variants:
        if v.name not in records:
            continue
        table = tables[v.name]
        out = _variant_header(v, table)
        out["metrics"] = {
            name: _with_ci(name, M.compute(name, table, args), ci_conf[name], B, seed)
            for name, args in entries
        }
        if suite.task == "classification":
            out["per_class"] = per_class(table)
        if v.name != baseline and baseline in records:
            out["delta"] = _deltas(
                entries,
                tables[baseline],
                table,
                targets,
                dataset.labels,
                ci_conf,
                B,
                seed,
            )
        failed = [str(r["error"]) for r in table.records if r.get("error") is not None]
        out["errors_by_reason"] = dict(Counter(_reason(e) for e in failed))
        if failed:  # the provider's messages, most frequent first: what to fix
            out["top_errors"] = dict(Counter(_message(e) for e in failed).most_common(3))
        variants[v.name] = out

    from harness.results import SCHEMA_VERSION  # pydantic's models: not at import (tracking)

    summary = {
        "schema_version": SCHEMA_VERSION,
        "suite": suite.name,
        "run_id": meta.pop("run_id", None),
        "started_at": meta.pop("started_at", None),
        "finished_at": meta.pop("finished_at", None),
        "suite_hash": meta.pop("suite_hash", None) or suite_hash(suite),
        "data_hashes": dict(dataset.hashes),
        "task": suite.task,
        "baseline": baseline,
        "n_examples": len(dataset.test),
        "metrics": [name for name, _ in entries],
        "hypothesis": suite.hypothesis(),  # schema 1's shape, kept for older readers
        # Always a list (a single `guard:` is a list of one): what every surface renders.
        "hypotheses": [
            {"key": h.key, "candidate": h.candidate, "baseline": h.baseline, **h.as_dict()}
            for h in hyps
        ],
        "bootstrap": {"resamples": B, "seed": seed, "interval": "percentile", "unit": "example"},
        "variants": variants,
    }
    if suite.spec.value is not None:
        summary["value"] = _value_section(suite, tables, targets, dataset.labels, B, seed)
    if hyps:
        summary["comparisons"] = _comparisons(
            suite, hyps, entries, tables, variants, targets, dataset.labels, ci_conf, B, seed
        )
    summary.update(meta)  # anything else the runner wants at the top level
    return summary


def _paired_tables(ta: Table, tb: Table, targets, labels) -> tuple[Table, Table]:
    """Both tables on the examples both variants have."""
    common = sorted(set(ta.ids) & set(tb.ids))
    if ta.ids != common:
        ta = make_table(ta.records, targets, labels, ids=common)
    if tb.ids != common:
        tb = make_table(tb.records, targets, labels, ids=common)
    return ta, tb


def _value_section(suite, tables, targets, labels, B, seed) -> dict:
    """summary["value"]: each variant's month in dollars, and its net value vs the baseline.
    A variant above its max_error_rate is not valued (`not_valued` says why): its failed
    calls would otherwise read as a month of free answers."""
    spec, baseline = suite.spec.value, suite.baseline
    not_valued = {}
    for name, table in tables.items():
        n = len(table.records)
        failed = sum(1 for r in table.records if r.get("error") is not None)
        level = suite.max_error_rate(name)
        if n and failed / n > level:
            not_valued[name] = (
                f"{failed} of {n} calls failed (> max_error_rate {level:.0%}); failed calls "
                "are never priced as savings"
            )
    out: dict[str, Any] = {
        "error_cost_usd": spec.error_cost_usd,
        "per_class": spec.per_class,
        "amortise_months": spec.amortise_months,
        "monthly_requests": suite.spec.volume.monthly_requests,
        "variants": {
            n: None if n in not_valued else V.variant_value(suite, n, t) for n, t in tables.items()
        },
        "vs_baseline": {},
        "not_valued": not_valued,
    }
    for name, table in tables.items():
        if name != baseline and baseline in tables:
            if name in not_valued or baseline in not_valued:
                out["vs_baseline"][name] = None
                continue
            ta, tb = _paired_tables(tables[baseline], table, targets, labels)
            out["vs_baseline"][name] = V.value_delta(
                suite, baseline, ta, name, tb, confidence=0.95, B=B, seed=seed
            )
    return out


def _comparisons(suite, hyps, entries, tables, variants, targets, labels, ci_conf, B, seed):
    """summary["comparisons"][hypothesis key]: the candidate − baseline delta each hypothesis
    is judged on, at its confidence (the variant's own delta when it is the same comparison)."""
    args_of = dict(entries)
    out: dict[str, dict] = {}
    for h in hyps:
        if h.candidate not in tables or h.baseline not in tables:
            continue  # not selected with --variant
        same = h.baseline == suite.baseline and ci_conf.get(h.metric) == h.confidence
        if same and h.metric in args_of:
            d = (variants[h.candidate].get("delta") or {}).get(h.metric)
        else:
            ta, tb = _paired_tables(tables[h.baseline], tables[h.candidate], targets, labels)
            if h.metric == NET_MONTHLY_VALUE:
                d = V.value_delta(
                    suite, h.baseline, ta, h.candidate, tb, confidence=h.confidence, B=B, seed=seed
                )
            else:
                d = _deltas(
                    [(h.metric, args_of[h.metric])],
                    ta,
                    tb,
                    targets,
                    labels,
                    {h.metric: h.confidence},
                    B,
                    seed,
                )[h.metric]
        out[h.key] = {
            "candidate": h.candidate,
            "baseline": h.baseline,
            "metric": h.metric,
            **(d or {}),
        }
    return out


def _variant_header(v: Any, table: Table) -> dict:
    recs = table.records
    n_calls = len(recs)
    n_errors = sum(1 for r in recs if r.get("error") is not None)
    return {
        "kind": v.kind,
        "model": v.model,
        "base_model": v.base_model,
        "n_examples": table.n_examples,
        "n_calls": n_calls,
        "n_errors": n_errors,
        "error_rate": n_errors / n_calls if n_calls else 0.0,
        "cached_calls": sum(1 for r in recs if r.get("cached")),
        # Provider retries are reported, never invisible: a slow, rate-limited provider shows.
        "retries": int(sum(r.get("retries") or 0 for r in recs)),
        "retried_calls": sum(1 for r in recs if (r.get("retries") or 0) and r.get("error") is None),
        **cost_figures(recs),
        "tokens_in": int(sum(r.get("tokens_in") or 0 for r in recs if r.get("error") is None)),
        "tokens_out": int(sum(r.get("tokens_out") or 0 for r in recs if r.get("error") is None)),
        **({"training": training_figures(v.training)} if v.training is not None else {}),
    }


def training_figures(t: Any) -> dict:
    """A trained variant's training cost (None: unknown) and, from `harness finetune`, its job."""
    job = t.job.model_dump() if t.job is not None else None
    return {"cost_usd": t.total_usd(), "job": job}


def priced(suite: Any, records: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Records with `cost_usd` from their token counts at the suite's current `pricing:`, so a
    price added or corrected after the calls (cached answers included) counts; variants without
    `pricing:` keep the cost the call got from litellm's price list."""
    out = {}
    for name, recs in records.items():
        pricing = suite.variant(name).pricing
        if pricing is None:
            out[name] = recs
            continue
        out[name] = [
            {
                **r,
                "cost_usd": _times(
                    price_tokens(pricing, r.get("tokens_in"), r.get("tokens_out")),
                    r.get("price_factor", 1.0),
                ),
            }
            if r.get("error") is None
            else r
            for r in recs
        ]
    return out


def _times(cost: float | None, factor: float) -> float | None:
    return None if cost is None else cost * factor


def _with_ci(name: str, result, confidence: float, B: int, seed: int) -> dict:
    value = M.value_of(result)
    lo = hi = None
    if isinstance(result, M.Decomposed) and value is not None:
        if result.binary:
            lo, hi = S.wilson_ci(int(result.stats[:, 0].sum()), len(result.stats), confidence)
        else:
            lo, hi = S.bootstrap_ci(
                result.stats, result.combine, confidence=confidence, B=B, seed=seed
            )
    return P.clip_interval({"value": value, "ci_low": lo, "ci_high": hi}, M.figure_bounds(name))


def _deltas(entries, ta: Table, tb: Table, targets, labels, ci_conf, B, seed) -> dict:
    """variant - baseline on the examples both variants have (the full tables when they agree)."""
    ta, tb = _paired_tables(ta, tb, targets, labels)
    out: dict[str, dict] = {}
    for name, args in entries:
        ra, rb = M.compute(name, ta, args), M.compute(name, tb, args)
        va, vb = M.value_of(ra), M.value_of(rb)
        entry = {
            "value": None if va is None or vb is None else vb - va,
            "ci_low": None,
            "ci_high": None,
            "p_value": None,
        }
        if isinstance(ra, M.Decomposed) and isinstance(rb, M.Decomposed):
            if ra.stats.shape[0] == rb.stats.shape[0]:
                # Point value from the libraries' own numbers; interval from the one paired
                # routine (Newcombe's score interval for 0/1 metrics, else the bootstrap).
                d = P.paired_interval(
                    ra,
                    rb,
                    confidence=ci_conf[name],
                    B=B,
                    seed=seed,
                    bounds=M.figure_bounds(name, difference=True),
                )
                entry.update({k: v for k, v in d.items() if k != "value"})
            if name == "accuracy":
                entry.update(p_value=_mcnemar(ta, tb), p_method="mcnemar-exact")
            entry["confidence"] = ci_conf[name]
        out[name] = entry
    return out


def _mcnemar(ta: Table, tb: Table) -> float | None:
    """Exact McNemar on calls paired by (example, repeat)."""

    def correct(t: Table) -> dict[tuple, bool]:
        true, pred = t.y()
        return {
            (r["id"], r.get("repeat", 0)): p == y
            for r, y, p in zip(t.records, true, pred, strict=True)
        }

    a, b = correct(ta), correct(tb)
    keys = sorted(set(a) & set(b))
    if not keys:
        return None
    return S.mcnemar_exact(np.array([a[k] for k in keys]), np.array([b[k] for k in keys]))


def _reason(error: str) -> str:
    """Group errors by kind: the text before the first ':' (e.g. 'timeout', 'RateLimitError')."""
    head = str(error).split(":", 1)[0].strip()
    return (head or str(error))[:60]


def _message(error: str) -> str:
    """An error's message without its kind and retry count ("bad_request: X (after 3
    attempts)" → "X"), cut at 200 characters."""
    text = str(error).split(":", 1)[-1].strip()
    return re.sub(r" \(after \d+ attempts\)$", "", text)[:200]


def judge_section(section: dict, summary: dict) -> dict:
    """The judge stage's section with each judge metric's slot filled from the variant's own
    metrics, so the report's Judge table and its Comparison table show the same interval."""
    for variant, out in (section.get("variants") or {}).items():
        metrics = (summary.get("variants") or {}).get(variant, {}).get("metrics") or {}
        for name in [k for k, v in out.items() if v is None and k in SECTION_METRICS]:
            out[name] = metrics.get(name) or {"value": None, "ci_low": None, "ci_high": None}
    return section


def partial_cost_note(v: dict) -> str:
    k, n = v["unpriced_calls"], v["n_calls"]
    if v.get("cost_usd") is None:
        return f"cost unknown: none of its {n} calls has a price — set `pricing:` on the variant"
    return (
        f"cost partial: {k} of {n} calls have no price — cost, cost ratio and break-even use "
        f"the {n - k} priced calls; set `pricing:` on the variant to price them all"
    )


def build_summary(
    suite: Any,
    dataset: Any,
    records: dict[str, list[dict]],
    variants: list[str],
    *,
    meta: dict,
    notes: dict[str, list[str]],
    judge: dict | None = None,
) -> dict:
    """summary.json before the guard, from the stage results: metrics with CIs and paired
    deltas, each variant's latency percentiles and engine notes, retrieval quality of
    retrieving variants, and the judge stage's section."""
    summary = summarize(suite, dataset, records, meta)
    for name in variants:
        entry = summary["variants"].setdefault(name, {})
        recs = records.get(name, [])
        entry["latency_p50_ms"] = latency_percentile(recs, 50)
        entry["latency_p95_ms"] = latency_percentile(recs, 95)
        entry["notes"] = list(notes.get(name, []))
        if entry.get("unpriced_calls"):
            entry["notes"].append(partial_cost_note(entry))
    if suite.spec.data.gold:
        by_id = dataset.by_id()
        for name in variants:
            v = suite.variant(name)
            if KINDS[v.kind].retrieves:
                summary["variants"][name]["retrieval"] = retrieval_metrics(
                    records[name], by_id, k_of(v)
                )
    from harness.results import variant_figures  # pydantic's models: not at import (tracking)

    # Each variant's figures are checked against their model once, here, where they are built.
    summary["variants"] = {n: variant_figures(f) for n, f in summary["variants"].items()}
    if judge is not None:
        summary["judge"] = judge_section(judge, summary)
    return summary


def primary_metric(summary: dict[str, Any]) -> str | None:
    """The first hypothesis's quality metric (net_monthly_value is dollars, not a plot axis),
    else the first declared quality metric."""
    from harness.results import hypotheses_of

    for h in hypotheses_of(summary):
        if h.get("metric") and h["metric"] != NET_MONTHLY_VALUE:
            return h["metric"]
    names = list(summary.get("metrics") or [])
    for v in (summary.get("variants") or {}).values():
        names += [m for m in v.get("metrics", {}) if m not in names]
    quality = [m for m in names if M.is_quality(m)]
    return (quality or names or [None])[0]


def guard_metrics(summary: dict[str, Any]) -> list[str]:
    """Every quality metric a hypothesis is on, in order; else [primary_metric]."""
    from harness.results import hypotheses_of

    out: list[str] = []
    for h in hypotheses_of(summary):
        if h.get("metric") and h["metric"] != NET_MONTHLY_VALUE and h["metric"] not in out:
            out.append(h["metric"])
    first = primary_metric(summary)
    return out or ([first] if first else [])
