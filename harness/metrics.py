"""Metric registry: a metric is one function plus its registration line (`@metric(...)`).

A metric reads a `Table` (the scored records of one variant, grouped by example) and returns
either a plain float (operational metrics: latency, tokens, cost; no interval) or a `Decomposed`
value: per-example sums `stats` (n_examples x k) and a vectorised `combine` that turns summed
columns into the metric. Because every rate metric is a function of column sums over examples,
harness.stats can bootstrap it (and the paired difference between two variants) by resampling
examples and recomputing `combine` on the resampled sums: the macro-F1 of a resample is computed
from its per-class tp/fp/fn counts exactly as scikit-learn would compute it on those examples.

Conventions (the same as scikit-learn's with zero_division=0): a precision/recall/F1 whose
denominator is 0 is 0; macro averages run over the classes that occur in the targets or the
predictions; an unparseable answer or an error is a wrong answer that is not a class.
Every metric returns None on empty input (no records, or no record the metric applies to).

Light at import (numpy only): suite validation imports this module.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CLASSIFICATION, EXTRACTION, GENERATION = "classification", "extraction", "generation"
ALL_TASKS = (CLASSIFICATION, EXTRACTION, GENERATION)


@dataclass
class Decomposed:
    """A metric as per-example sums and a combine function (for bootstrapping)."""

    stats: np.ndarray  # (n_examples, k)
    combine: Callable[[np.ndarray], np.ndarray]  # (..., k) summed columns -> (...)
    value: float | None = None  # exact point value when a library computes it (sklearn)
    binary: bool = False  # one 0/1 record per example: a plain proportion (Wilson interval)

    def point(self) -> float | None:
        if self.value is not None:
            return self.value
        if len(self.stats) == 0:
            return None
        v = float(self.combine(self.stats.sum(axis=0)))
        return None if np.isnan(v) else v


@dataclass
class MetricDef:
    name: str
    fn: Callable[..., Any]
    quality: bool  # a quality metric gets a paired delta with CI vs the baseline
    tasks: tuple[str, ...]
    higher_is_better: bool = True
    unit: str = ""
    doc: str = ""


REGISTRY: dict[str, MetricDef] = {}

# Metrics registered by modules that are heavy to import (they register on import).
EXTERNAL: dict[str, str] = {
    "judge": "harness.judge",
    "preference": "harness.judge",
    "judge_agreement": "harness.judge",
    "style_consistency": "harness.judge",
    "chrf": "harness.similarity",
    "rouge_l": "harness.similarity",
    "embedding_cosine": "harness.similarity",
}


def metric(
    name: str,
    *,
    quality: bool = True,
    tasks: tuple[str, ...] = ALL_TASKS,
    higher_is_better: bool = True,
    unit: str = "",
):
    """Register `fn(table, **args)` under `name` (the decorator is the registration line)."""

    def register(fn):
        REGISTRY[name] = MetricDef(
            name, fn, quality, tasks, higher_is_better, unit, (fn.__doc__ or "").strip()
        )
        return fn

    return register


def lookup(name: str) -> MetricDef | None:
    if name not in REGISTRY and name in EXTERNAL:
        import importlib

        try:
            importlib.import_module(EXTERNAL[name])
        except ImportError:
            return None
    return REGISTRY.get(name)


def entry_name(entry: Any) -> tuple[str, dict]:
    """(name, args) of a `metrics:` item: `accuracy` or `{regex: {pattern: ...}}`."""
    if isinstance(entry, str):
        return entry, {}
    name, args = next(iter(entry.items()))
    if isinstance(args, str):  # `- regex: "^yes"` shorthand
        args = {"pattern": args}
    return name, dict(args or {})


# ---------------------------------------------------------------- the table metrics read


@dataclass
class Table:
    """Scored records of one variant, grouped by example (examples in id order)."""

    ids: list[str]
    ex: np.ndarray  # example index of each record
    records: list[dict]
    targets: list[Any]  # per example
    labels: list[str] | None = None
    _cache: dict = field(default_factory=dict, repr=False)  # compute()'s results on this table

    @property
    def n_examples(self) -> int:
        return len(self.ids)

    @property
    def n_records(self) -> int:
        return len(self.records)

    def per_example(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.ex, weights=values, minlength=self.n_examples).astype(float)

    def score(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(values, has) per record; a missing score is 0 and not counted in `has`."""
        vals = np.zeros(self.n_records)
        has = np.zeros(self.n_records)
        for i, r in enumerate(self.records):
            v = (r.get("scores") or {}).get(key)
            if v is not None:
                vals[i], has[i] = float(v), 1.0
        return vals, has

    def field(self, key: str, *, answered: bool = False) -> np.ndarray:
        """Numeric record field (latency_ms, tokens_in, cost_usd...); NaN where missing.
        answered=True keeps only calls without an error (an error's latency is time to give up)."""
        recs = [r for r in self.records if not answered or r.get("error") is None]
        return np.array([np.nan if r.get(key) is None else float(r[key]) for r in recs])

    def y(self) -> tuple[list[str], list[str | None]]:
        """(true label, predicted label or None) per record, for classification."""
        true = [str(self.targets[i]) for i in self.ex]
        pred = [
            None if r.get("error") is not None else _label_or_none(r.get("parsed"))
            for r in self.records
        ]
        return true, pred

    def y_classes(self) -> tuple[list[str], list[str]]:
        """y() for scikit-learn: an unparseable answer or an error is a wrong answer that is not
        a class (a sentinel outside `labels`)."""
        true, pred = self.y()
        return true, ["\x00invalid" if p is None else p for p in pred]


def _label_or_none(parsed: Any) -> str | None:
    return parsed if isinstance(parsed, str) else None


def make_table(
    records: list[dict],
    targets: dict[str, Any],
    labels: list[str] | None = None,
    ids: list[str] | None = None,
) -> Table:
    """Table of the records whose example is in `targets` (and in `ids` when given).

    A record repeated for the same (id, repeat), e.g. after a resume, counts once (the last)."""
    keep = set(targets) if ids is None else set(ids) & set(targets)
    latest: dict[tuple, dict] = {}
    for r in records:
        if r.get("id") in keep:
            latest[(r["id"], r.get("repeat", 0))] = r
    order = sorted(latest)
    ex_ids = sorted({k[0] for k in order})
    index = {e: i for i, e in enumerate(ex_ids)}
    return Table(
        ids=ex_ids,
        ex=np.array([index[k[0]] for k in order], dtype=np.int64),
        records=[latest[k] for k in order],
        targets=[targets[e] for e in ex_ids],
        labels=labels,
    )


def compute(name: str, table: Table, args: dict | None = None) -> Decomposed | float | None:
    """The metric on `table`, computed once per table (a summary asks for the baseline's metrics
    for its own row and again for every variant's paired delta)."""
    key = (name, json.dumps(args or {}, sort_keys=True, default=str))
    if key not in table._cache:
        m = lookup(name)
        if m is None:
            raise KeyError(name)
        table._cache[key] = m.fn(table, **(args or {}))
    return table._cache[key]


def value_of(result: Decomposed | float | None) -> float | None:
    return result.point() if isinstance(result, Decomposed) else result


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


@metric("format_compliance")
def format_compliance(table: Table) -> Decomposed | None:
    """Share of outputs that parse as JSON and validate against output_schema (or, for
    classification without a schema, are one of the labels after normalisation)."""
    return mean_score(table, "format_ok")


@metric("exact_match")
def exact_match(table: Table) -> Decomposed | None:
    """Share of answers equal to the target after normalisation (case, spaces, quotes)."""
    return mean_score(table, "exact_match")


@metric("contains")
def contains(table: Table) -> Decomposed | None:
    """Share of outputs containing the normalised target."""
    return mean_score(table, "contains")


@metric("regex")
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


def _percentile(table: Table, q: float) -> float | None:
    lat = table.field("latency_ms", answered=True)
    lat = lat[~np.isnan(lat)]
    return float(np.percentile(lat, q)) if lat.size else None


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


def total_cost(records: list[dict]) -> float | None:
    """Summed cost; None when an answered call has no price (unknown, never a partial sum).
    Errors without a cost cost nothing."""
    costs = [r.get("cost_usd") for r in records]
    if any(c is None and r.get("error") is None for c, r in zip(costs, records, strict=True)):
        return None
    return float(sum(c or 0.0 for c in costs))


@metric("cost_per_example", quality=False, higher_is_better=False, unit="USD")
def cost_per_example(table: Table) -> float | None:
    """Total cost / examples (all repeats of an example are its cost)."""
    total = total_cost(table.records)
    return None if total is None or not table.n_examples else total / table.n_examples


@metric("cost_per_1k", quality=False, higher_is_better=False, unit="USD")
def cost_per_1k(table: Table) -> float | None:
    """Cost of 1,000 requests at this variant's mean cost per call."""
    total = total_cost(table.records)
    return None if total is None or not table.n_records else 1000 * total / table.n_records


# ---------------------------------------------------------------- suite validation


def validate_metrics(spec: Any, fail: Callable[[str, tuple], None]) -> None:
    """Check a suite's `metrics:` entries against the registry (suite.resolve checks guard.metric).

    `fail(message, key_path)` records a problem (suite.resolve's helper)."""
    seen: set[str] = set()
    for i, entry in enumerate(spec.metrics):
        name, args = entry_name(entry)
        key = ("metrics", i)
        m = lookup(name)
        if m is None:
            if name in EXTERNAL:
                fail(f"metric {name!r} is not supported yet — remove it", key)
            else:
                fail(
                    f"unknown metric {name!r}{_did_you_mean(name)} — known metrics: {', '.join(sorted({*REGISTRY, *EXTERNAL}))}",
                    key,
                )
            continue
        if name in seen:
            fail(f"metric {name!r} is listed twice — keep one", key)
        seen.add(name)
        if spec.task not in m.tasks:
            fail(
                f"{name} is a {'/'.join(m.tasks)} metric, not for task {spec.task}{_alternative(spec.task)}",
                key,
            )
        if name == "regex":
            _check_regex(args, fail, key)
        elif name in ("judge", "preference"):
            from harness.judge import check_args

            check_args(name, args, spec, fail, key)
        elif name == "embedding_cosine":
            from harness.similarity import check_args as check_embedding

            check_embedding(args, fail, key)
        elif args:
            fail(f"metric {name!r} takes no options — write `- {name}`", key)
        if (
            name in ("exact_match", "contains", "chrf", "rouge_l", "embedding_cosine")
            and not spec.data.target
        ):
            fail(f"{name} compares with a reference — set `data.target:`", key)
        if name == "format_compliance" and spec.task == GENERATION and not spec.output_schema:
            fail(
                "format_compliance needs `output_schema:` for generation tasks — add one or drop the metric",
                key,
            )


def _check_regex(args: dict, fail, key) -> None:
    import re

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


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name, [*REGISTRY, *EXTERNAL], n=1, cutoff=0.6)
    return f" — did you mean {close[0]!r}?" if close else ""


def _alternative(task: str) -> str:
    return {
        CLASSIFICATION: " — use accuracy, macro_f1...",
        EXTRACTION: " — use field_f1, field_precision, field_recall, exact_record",
        GENERATION: " — use exact_match, contains, regex",
    }[task]
