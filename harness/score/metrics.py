"""The built-in metrics: each is one function and its `@metric(...)` registration line.

Rate metrics return `Decomposed(stats, combine)` (per-example sums and a vectorised combine, so
bootstrap CIs and paired deltas come for free); operational ones return a plain float.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from harness.score.registry import (
    CLASSIFICATION,
    EXTRACTION,
    GENERATION,
    Decomposed,
    metric,
)
from harness.score.table import Table


def _check_format_compliance(name: str, args: dict, spec: Any, fail, key) -> None:
    if args:
        fail(f"metric {name!r} takes no options — write `- {name}`", key)
    if spec.task == GENERATION and not spec.output_schema:
        fail(
            "format_compliance needs `output_schema:` for generation tasks — add one or drop the metric",
            key,
        )


def _check_regex(name: str, args: dict, spec: Any, fail, key) -> None:
    extra = set(args) - {"pattern"}
    if extra:
        fail(
            f'unknown option(s) {sorted(extra)} for regex — write `- regex: {{pattern: "..."}}`',
            key,
        )
    pattern = args.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        fail('regex needs a pattern — write `- regex: {pattern: "^yes"}`', key)
        return
    try:
        re.compile(pattern)
    except re.error as e:
        fail(
            f"invalid regex {pattern!r}: {e} — fix the pattern (YAML: use single quotes for backslashes)",
            key,
        )


# ---------------------------------------------------------------- building blocks


def ratio(S: np.ndarray) -> np.ndarray:
    """S[..., 0] / S[..., 1]; NaN where the denominator is 0 (undefined on that resample)."""
    num, den = S[..., 0], S[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _safe_div(num, den):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def mean_score(table: Table, key: str) -> Decomposed | None:
    """Mean of a 0/1 (or fractional) score over the records that carry it."""
    vals, has = table.score(key)
    if table.n_records == 0 or has.sum() == 0:
        return None
    stats = np.c_[table.per_example(vals * has), table.per_example(has)]
    binary = bool(np.all(stats[:, 1] == 1) and np.all(np.isin(stats[:, 0], (0.0, 1.0))))
    return Decomposed(stats, ratio, binary=binary)


def class_counts(table: Table) -> tuple[list[str], np.ndarray]:
    """Classes (in targets or predictions) and per-example [tp_c..., fp_c..., fn_c...] counts."""
    true, pred = table.y()
    classes = sorted(set(true) | {p for p in pred if p is not None})
    col = {c: j for j, c in enumerate(classes)}
    C = len(classes)
    counts = np.zeros((table.n_examples, 3 * C))
    for e, t, p in zip(table.ex, true, pred, strict=True):
        if p == t:
            counts[e, col[t]] += 1
        else:
            counts[e, 2 * C + col[t]] += 1  # fn of the true class
            if p is not None:
                counts[e, C + col[p]] += 1  # fp of the predicted class
    return classes, counts


def prf_from_counts(S: np.ndarray, average: str, what: str) -> np.ndarray:
    """Vectorised precision/recall/F1 from summed [tp, fp, fn] per class (last axis 3C)."""
    C = S.shape[-1] // 3
    tp, fp, fn = S[..., :C], S[..., C : 2 * C], S[..., 2 * C :]
    if average == "micro":
        tp, fp, fn = tp.sum(-1), fp.sum(-1), fn.sum(-1)
    if what == "precision":
        per = _safe_div(tp, tp + fp)
    elif what == "recall":
        per = _safe_div(tp, tp + fn)
    else:
        per = _safe_div(2 * tp, 2 * tp + fp + fn)
    if average == "micro":
        return per
    if average == "weighted":
        support = tp + fn
        return _safe_div((per * support).sum(-1), support.sum(-1))
    present = (tp + fp + fn) > 0  # scikit-learn averages over labels seen in y_true or y_pred
    k = present.sum(-1)
    with np.errstate(invalid="ignore"):
        return np.where(k > 0, (per * present).sum(-1) / np.maximum(k, 1), np.nan)


def _sklearn_prf(table: Table, classes: list[str], average: str, what: str) -> float:
    from sklearn.metrics import precision_recall_fscore_support

    true, pred = table.y_classes()
    p, r, f, _ = precision_recall_fscore_support(
        true, pred, labels=classes, average=average, zero_division=0
    )
    return float({"precision": p, "recall": r, "f1": f}[what])


def _prf_metric(average: str, what: str):
    def fn(table: Table) -> Decomposed | None:
        if table.n_records == 0:
            return None
        classes, counts = class_counts(table)
        return Decomposed(
            counts,
            lambda S: prf_from_counts(S, average, what),
            value=_sklearn_prf(table, classes, average, what),
        )

    fn.__doc__ = f"{average} {what} over classes (scikit-learn, zero_division=0)."
    return fn


def per_class(table: Table) -> dict[str, dict[str, float]]:
    """Per-class precision, recall, F1 and support (scikit-learn)."""
    if table.n_records == 0:
        return {}
    from sklearn.metrics import precision_recall_fscore_support

    classes, _ = class_counts(table)
    true, pred = table.y_classes()
    p, r, f, s = precision_recall_fscore_support(
        true, pred, labels=classes, average=None, zero_division=0
    )
    return {
        c: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, c in enumerate(classes)
    }


# ---------------------------------------------------------------- quality metrics

C_ONLY = (CLASSIFICATION,)


@metric("accuracy", tasks=C_ONLY)
def accuracy(table: Table) -> Decomposed | None:
    """Share of calls whose parsed answer is the target label (errors are wrong)."""
    if table.n_records == 0:
        return None
    from sklearn.metrics import accuracy_score

    # From labels, not the stored `correct` score, so an error record is wrong even if unscored.
    true, pred = table.y_classes()
    correct = np.array([p == t for t, p in zip(true, pred, strict=True)], dtype=float)
    stats = np.c_[table.per_example(correct), table.per_example(np.ones(table.n_records))]
    value = float(accuracy_score(true, pred))
    return Decomposed(stats, ratio, value=value, binary=bool(np.all(stats[:, 1] == 1)))


metric("macro_f1", tasks=C_ONLY)(_prf_metric("macro", "f1"))
metric("micro_f1", tasks=C_ONLY)(_prf_metric("micro", "f1"))
metric("weighted_f1", tasks=C_ONLY)(_prf_metric("weighted", "f1"))
metric("macro_precision", tasks=C_ONLY)(_prf_metric("macro", "precision"))
metric("macro_recall", tasks=C_ONLY)(_prf_metric("macro", "recall"))


@metric("format_compliance", check=_check_format_compliance)
def format_compliance(table: Table) -> Decomposed | None:
    """Share of outputs that parse as JSON and validate against output_schema (or, for
    classification without a schema, are one of the labels after normalisation)."""
    return mean_score(table, "format_ok")


@metric("exact_match", needs=("target",))
def exact_match(table: Table) -> Decomposed | None:
    """Share of answers equal to the target after normalisation (case, spaces, quotes)."""
    return mean_score(table, "exact_match")


@metric("contains", needs=("target",))
def contains(table: Table) -> Decomposed | None:
    """Share of outputs containing the normalised target."""
    return mean_score(table, "contains")


@metric("regex", check=_check_regex)
def regex(table: Table, pattern: str = "") -> Decomposed | None:
    """Share of outputs matching the pattern (re.search)."""
    return mean_score(table, "regex")


def _field_metric(what: str):
    def fn(table: Table) -> Decomposed | None:
        if table.n_records == 0:
            return None
        cols = [table.per_example(table.score(k)[0]) for k in ("field_tp", "field_fp", "field_fn")]
        # One "class" of [tp, fp, fn] columns: the micro average is the plain ratio.
        return Decomposed(np.stack(cols, axis=1), lambda S: prf_from_counts(S, "micro", what))

    fn.__doc__ = f"Field-level {what} over all records (micro: summed tp/fp/fn)."
    return fn


E_ONLY = (EXTRACTION,)
metric("field_precision", tasks=E_ONLY)(_field_metric("precision"))
metric("field_recall", tasks=E_ONLY)(_field_metric("recall"))
metric("field_f1", tasks=E_ONLY)(_field_metric("f1"))


@metric("exact_record", tasks=E_ONLY)
def exact_record(table: Table) -> Decomposed | None:
    """Share of records whose every field is right (no missing, extra or wrong field)."""
    return mean_score(table, "exact_record")


@metric("consistency")
def consistency(table: Table) -> Decomposed | None:
    """Share of examples (with >= 2 samples) whose samples all give the same parsed answer."""
    answers: dict[int, set[str]] = {}
    n: dict[int, int] = {}
    for e, r in zip(table.ex.tolist(), table.records, strict=True):
        key = (
            "\x00error"
            if r.get("error") is not None
            else json.dumps(r.get("parsed"), sort_keys=True, default=str)
        )
        answers.setdefault(e, set()).add(key)
        n[e] = n.get(e, 0) + 1
    stats = np.zeros((table.n_examples, 2))
    for e, seen in answers.items():
        if n[e] >= 2:
            stats[e] = (float(len(seen) == 1), 1.0)
    if stats[:, 1].sum() == 0:
        return None
    return Decomposed(stats, ratio)


# ---------------------------------------------------------------- operational metrics


def latency_percentile(records: list[dict], q: float) -> float | None:
    """The q-th percentile latency of the answered calls (numpy's linear interpolation); an
    error's latency is the time it took to give up, so it is left out."""
    lat = [
        r["latency_ms"]
        for r in records
        if r.get("error") is None and r.get("latency_ms") is not None
    ]
    return float(np.percentile(lat, q)) if lat else None


def _percentile(table: Table, q: float) -> float | None:
    return latency_percentile(table.records, q)


@metric("latency_p50", quality=False, higher_is_better=False, unit="ms")
def latency_p50(table: Table) -> float | None:
    """Median latency per answered call (ms; a cache hit keeps the original call's latency)."""
    return _percentile(table, 50)


@metric("latency_p95", quality=False, higher_is_better=False, unit="ms")
def latency_p95(table: Table) -> float | None:
    """95th percentile latency per answered call (ms, numpy's linear interpolation)."""
    return _percentile(table, 95)


def _mean_field(table: Table, key: str) -> float | None:
    v = table.field(key, answered=True)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else None


@metric("tokens_in", quality=False, higher_is_better=False, unit="tokens")
def tokens_in(table: Table) -> float | None:
    """Mean prompt tokens per answered call."""
    return _mean_field(table, "tokens_in")


@metric("tokens_out", quality=False, higher_is_better=False, unit="tokens")
def tokens_out(table: Table) -> float | None:
    """Mean completion tokens per answered call."""
    return _mean_field(table, "tokens_out")


def cost_figures(records: list[dict]) -> dict[str, Any]:
    """A variant's money, from its records' `cost_usd` (priced at summary time).

    cost_usd: what all its calls cost at current prices, cached answers included (what the
    variant would cost: cost ratio and break-even use it); spent_usd: the calls actually sent
    in this run (a cached answer cost nothing); unpriced_calls: answered calls without a price.
    With some calls unpriced the sums cover the priced ones and `cost_per_request` is their
    mean: partial, said so by the count, never one null blanking the variant and never a
    silent 0. Errors without a cost cost nothing. cost_usd is None when no answered call has a
    price, and when no call was answered at all: failed calls are no cost figure (a variant
    whose every call failed would read as the cheapest, $0).
    """
    answered = [r for r in records if r.get("error") is None]
    unpriced = sum(1 for r in answered if r.get("cost_usd") is None)
    priced = len(records) - unpriced
    if unpriced == len(answered):  # also when nothing was answered
        cost = spent = None
    else:
        cost = float(sum(r.get("cost_usd") or 0.0 for r in records))
        spent = float(sum(r.get("cost_usd") or 0.0 for r in records if not r.get("cached")))
    if all(r.get("cached") for r in answered):
        spent = 0.0  # nothing was sent, so nothing was spent, priced or not
    return {
        "cost_usd": cost,
        "spent_usd": spent,
        "unpriced_calls": unpriced,
        "cost_per_request": None if cost is None or not priced else cost / priced,
    }


@metric("cost_per_example", quality=False, higher_is_better=False, unit="USD")
def cost_per_example(table: Table) -> float | None:
    """Cost per example (all repeats of an example are its cost), at the priced calls' mean."""
    cpr = cost_figures(table.records)["cost_per_request"]
    return None if cpr is None or not table.n_examples else cpr * table.n_records / table.n_examples


@metric("cost_per_1k", quality=False, higher_is_better=False, unit="USD")
def cost_per_1k(table: Table) -> float | None:
    """Cost of 1,000 requests at this variant's mean cost per priced call."""
    cpr = cost_figures(table.records)["cost_per_request"]
    return None if cpr is None else 1000 * cpr
