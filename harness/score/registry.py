"""Metric registry: a metric is one function plus its registration line (`@metric(...)`).

A metric reads a `Table` (the scored records of one variant, grouped by example) and returns
either a plain float (operational metrics: latency, tokens, cost; no interval) or a `Decomposed`
value: per-example sums `stats` (n_examples x k) and a vectorised `combine` that turns summed
columns into the metric. Because every rate metric is a function of column sums over examples,
harness.stats.bootstrap can bootstrap it (and the paired difference between two variants) by resampling
examples and recomputing `combine` on the resampled sums: the macro-F1 of a resample is computed
from its per-class tp/fp/fn counts exactly as scikit-learn would compute it on those examples.

Conventions (the same as scikit-learn's with zero_division=0): a precision/recall/F1 whose
denominator is 0 is 0; macro averages run over the classes that occur in the targets or the
predictions; an unparseable answer or an error is a wrong answer that is not a class.
Every metric returns None on empty input (no records, or no record the metric applies to).

Light at import (numpy only): `harness check` validates suites against this registry.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from harness.errors import SuiteError, SuiteErrors
from harness.score.table import Table
from harness.suite.model import NET_MONTHLY_VALUE

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


# check(name, args, spec, fail, key): a metric validates its own options where it is registered.
Check = Callable[[str, dict, Any, Callable[[str, tuple], None], tuple], None]


@dataclass
class MetricDef:
    name: str
    fn: Callable[..., Any]
    quality: bool  # a quality metric gets a paired delta with CI vs the baseline
    tasks: tuple[str, ...]
    higher_is_better: bool = True
    unit: str = ""
    doc: str = ""
    options: type[BaseModel] | None = None  # its `- name: {...}` options; None: takes none
    check: Check | None = None  # rules beyond the options' model (e.g. needs output_schema)
    needs: tuple[str, ...] = ()  # "target": compares with data.target
    # The possible range of its value (None: unbounded): a quality metric is a rate in [0, 1]
    # unless it says otherwise (a cosine similarity: [−1, 1]); intervals are cut to it.
    bounds: tuple[float, float] | None = (0.0, 1.0)


REGISTRY: dict[str, MetricDef] = {}


def metric(
    name: str,
    *,
    quality: bool = True,
    tasks: tuple[str, ...] = ALL_TASKS,
    higher_is_better: bool = True,
    unit: str = "",
    options: type[BaseModel] | None = None,
    check: Check | None = None,
    needs: tuple[str, ...] = (),
    bounds: tuple[float, float] | None = (0.0, 1.0),
):
    """Register `fn(table, **args)` under `name` (the decorator is the registration line).
    `bounds`: the possible range of a quality metric's value (a rate's [0, 1] unless given;
    an operational figure, `quality=False`, is unbounded).

    Built-ins register exactly like a plugin would: importing their module runs the decorator
    (harness/score/__init__.py imports the built-in modules)."""

    def register(fn):
        REGISTRY[name] = MetricDef(
            name,
            fn,
            quality,
            tasks,
            higher_is_better,
            unit,
            (fn.__doc__ or "").strip(),
            options,
            check,
            needs,
            bounds if quality else None,
        )
        return fn

    return register


def lookup(name: str) -> MetricDef | None:
    return REGISTRY.get(name)


def is_quality(name: str) -> bool:
    """A quality (rate) metric, shown as points; unknown names count as quality (old runs)."""
    m = lookup(name)
    return m.quality if m is not None else True


def figure_bounds(name: str, *, difference: bool = False) -> tuple[float, float] | None:
    """The possible range of a figure of metric `name` (None: unbounded): its value's, or with
    `difference` a difference of two values' (a rate's ±1, a cosine's ±2). An unknown name
    counts as a rate, as `is_quality` reads it."""
    m = lookup(name)
    bounds = m.bounds if m is not None else (0.0, 1.0)
    if bounds is None or not difference:
        return bounds
    lo, hi = bounds
    return (lo - hi, hi - lo)


def entry_name(entry: Any) -> tuple[str, dict]:
    """(name, args) of a `metrics:` item: `accuracy` or `{regex: {pattern: ...}}`."""
    if isinstance(entry, str):
        return entry, {}
    name, args = next(iter(entry.items()))
    if isinstance(args, str):  # `- regex: "^yes"` shorthand
        args = {"pattern": args}
    return name, dict(args or {})


def compute(name: str, table: Table, args: dict | None = None) -> Decomposed | float | None:
    """The metric on `table`, computed once per table (a summary asks for the baseline's metrics
    for its own row and again for every variant's paired delta)."""
    key = (name, json.dumps(args or {}, sort_keys=True, default=str))
    if key not in table._cache:
        m = lookup(name)
        if m is None:
            raise KeyError(name)
        if m.options is not None:  # the metric gets its options with their defaults filled in
            args = m.options.model_validate(args or {}).model_dump()
        table._cache[key] = m.fn(table, **(args or {}))
    return table._cache[key]


def value_of(result: Decomposed | float | None) -> float | None:
    return result.point() if isinstance(result, Decomposed) else result


# ---------------------------------------------------------------- suite validation


def validate_metrics(spec: Any, fail: Callable[[str, tuple], None]) -> None:
    """Check a suite's `metrics:` entries against the registry; `fail(message, key_path)`
    records a problem. What a metric accepts is its own registration (check, needs, tasks)."""
    seen: set[str] = set()
    for i, entry in enumerate(spec.metrics):
        name, args = entry_name(entry)
        key = ("metrics", i)
        m = lookup(name)
        if m is None:
            fail(
                f"unknown metric {name!r}{_did_you_mean(name)} — known metrics: {', '.join(sorted(REGISTRY))}",
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
        if m.options is not None:
            _check_options(name, m.options, args, fail, key)
        if m.check is not None:
            m.check(name, args, spec, fail, key)
        elif args and m.options is None:
            fail(f"metric {name!r} takes no options — write `- {name}`", key)
        if "target" in m.needs and not spec.data.target:
            fail(f"{name} compares with a reference — set `data.target:`", key)


def validate_guard_metric(spec: Any, fail: Callable[[str, tuple], None]) -> None:
    """Each verdict needs a quality metric the run computes (declared in `metrics:`), or the
    dollars of `value:` (net_monthly_value, checked with the suite)."""
    listed = isinstance(spec.guard, list)
    declared = [entry_name(e)[0] for e in spec.metrics]
    for i, guard in enumerate(spec.guard if listed else [spec.guard]):
        g = guard.metric
        key = ("guard", i, "metric") if listed else ("guard", "metric")
        if g == NET_MONTHLY_VALUE:
            continue
        if g not in declared:
            fail(
                f"{g!r} is not in `metrics:` — add it there so it is computed, or guard one of "
                f"{declared} (or {NET_MONTHLY_VALUE} with `value:`)",
                key,
            )
            continue
        m = lookup(g)
        if m is not None and not m.quality:
            fail(
                f"{g!r} is not a quality metric — guard a quality metric (e.g. accuracy, macro_f1, field_f1) or {NET_MONTHLY_VALUE}; cost shows as the cost ratio and break-even",
                key,
            )
            continue
        margin = guard.margin
        if m is not None and m.quality and margin >= 1:
            # Quality metrics are fractions: a margin of 1 or more could never be met (or missed).
            fail(
                f"{margin:g} is more than {g} can move: it is a fraction 0–1 (0.05 = 5 points) — "
                f"for {margin:g} points write margin: {margin / 100:g}",
                key[:-1] + ("margin",),
            )


def validate_suite(suite: Any) -> Any:
    """Validate the suite's metrics and guard metric against the registry; the suite, or
    SuiteErrors with file:line for every problem. `harness run`, `check` and `export` call it
    after `load_suite` (the YAML layer knows nothing of the metric implementations)."""
    problems: list[SuiteError] = []

    def fail(msg: str, key: tuple) -> None:
        problems.append(suite.fail(msg, key))

    validate_metrics(suite.spec, fail)
    if suite.spec.guard is not None:
        validate_guard_metric(suite.spec, fail)
    if problems:
        raise SuiteErrors(problems)
    return suite


def _check_options(name: str, model: type[BaseModel], args: dict, fail, key: tuple) -> None:
    """Validate a metric's options against its pydantic model; one message per problem."""
    try:
        model.model_validate(args)
    except ValidationError as e:
        allowed = ", ".join(model.model_fields)
        for err in e.errors():
            where = ".".join(str(x) for x in err["loc"]) or "options"
            if err["type"] == "extra_forbidden":
                fail(f"unknown option {where!r} for {name} — allowed: {allowed}", key)
            else:
                fail(f"{name} option {where!r}: {err['msg']} — allowed: {allowed}", key)


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name, list(REGISTRY), n=1, cutoff=0.6)
    return f" — did you mean {close[0]!r}?" if close else ""


def _alternative(task: str) -> str:
    return {
        CLASSIFICATION: " — use accuracy, macro_f1...",
        EXTRACTION: " — use field_f1, field_precision, field_recall, exact_record",
        GENERATION: " — use exact_match, contains, regex",
    }[task]
