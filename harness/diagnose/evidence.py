"""What a run's records say about each example: every variant's answers, right or wrong.

The diagnosis compares the diagnosed variant's answers with the other variants' on the same
examples, so everything here is keyed by example id. A variant "gets an example right" when
more than half of its calls on it are right (one call: that call); the diagnosed variant "gets
it wrong" when any of its calls is wrong, as its accuracy (a mean over calls) counts it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from harness.errors import SuiteError
from harness.rundir.reader import RunFiles
from harness.score.metrics import cost_figures
from harness.score.record import RIGHT_SCORES, right_score
from harness.suite.kinds import KINDS


@dataclass(frozen=True)
class Call:
    answer: Any  # the parsed answer (None: failed or unparseable)
    right: bool
    failed: bool  # no answer after retries (a provider error)
    format_bad: bool  # unparseable, outside the label set or schema-invalid

    @property
    def key(self) -> str:
        """The answer in comparable form (two calls agree when their keys are equal)."""
        if self.failed:
            return "\x00failed"
        return json.dumps(self.answer, sort_keys=True, default=str)


@dataclass(frozen=True)
class Calls:
    """One variant's calls on one example (its repeats)."""

    calls: tuple[Call, ...]

    @property
    def right(self) -> bool:
        return 2 * sum(c.right for c in self.calls) > len(self.calls)

    @property
    def all_right(self) -> bool:
        return all(c.right for c in self.calls)

    @property
    def disagree(self) -> bool:
        return len(self.calls) >= 2 and len({c.key for c in self.calls}) > 1

    @property
    def agreed_answer(self) -> Any:
        """The answer every call gave (None when they differ, failed or did not parse)."""
        if self.disagree or any(c.failed or c.answer is None for c in self.calls):
            return None
        return self.calls[0].answer


@dataclass
class VariantInfo:
    name: str
    kind: str
    model: str
    accuracy: float  # share of its calls that are right
    # Per call, not per example: repeats are how the run measures a variant, not what serving
    # it costs. None when unpriced (unknown is never $0); 0.0 for a local model.
    cost_per_call: float | None
    calls: dict[str, Calls] = field(default_factory=dict)  # example id -> its calls
    repeats: int = 1
    format_scored: bool = False  # its records say whether each answer is in format

    @property
    def retrieves(self) -> bool:
        return KINDS[self.kind].retrieves if self.kind in KINDS else False

    @property
    def trained(self) -> bool:
        return KINDS[self.kind].trained if self.kind in KINDS else False


def to_call(record: dict[str, Any], task: str) -> Call | None:
    score = right_score(record)
    if score is None:
        return None
    failed = bool(record.get("error"))
    fmt = (record.get("scores") or {}).get("format_ok")
    parsed = record.get("parsed")
    format_bad = not failed and (fmt == 0 or (task == "classification" and parsed is None))
    return Call(
        answer=None if failed else parsed, right=score >= 1.0, failed=failed, format_bad=format_bad
    )


def variants_of(run: RunFiles) -> dict[str, VariantInfo]:
    """Every variant of the run with a right/wrong score on its records, in suite order.

    Raises SuiteError when the run has no such score (a generation suite judged on a scale):
    there is no "wrong example" to sort."""
    task = str(run.summary.get("task") or run.suite.get("task") or "")
    summary = run.summary.get("variants") or {}
    out: dict[str, VariantInfo] = {}
    for name in run.variants:
        records = run.records.get(name) or []
        latest: dict[tuple, dict] = {}
        for r in records:  # a record repeated after a resume counts once (the last)
            latest[(r.get("id"), r.get("repeat", 0))] = r
        grouped: dict[str, list[Call]] = {}
        for (ex, _), r in sorted(latest.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
            call = to_call(r, task)
            if call is not None:
                grouped.setdefault(str(ex), []).append(call)
        if not grouped:
            continue
        spec = run.variant_spec(name)
        stats = summary.get(name) or {}
        n_calls = sum(len(c) for c in grouped.values())
        n_right = sum(c.right for cs in grouped.values() for c in cs)
        costs = cost_figures(list(latest.values()))
        per_call = costs["cost_per_request"]
        # Unknown or partial is never a price; a local model's $0 is one (no ratio to it).
        priced = per_call is not None and not costs["unpriced_calls"]
        cost_per_call = float(per_call) if priced and per_call is not None else None
        out[name] = VariantInfo(
            name=name,
            kind=str(stats.get("kind") or spec.get("kind") or "prompt"),
            model=str(stats.get("model") or spec.get("model") or _record_model(records)),
            accuracy=n_right / n_calls,
            cost_per_call=cost_per_call,
            calls={ex: Calls(tuple(cs)) for ex, cs in grouped.items()},
            repeats=max(len(cs) for cs in grouped.values()),
            format_scored=task == "classification"
            or any("format_ok" in (r.get("scores") or {}) for r in records),
        )
    if not out:
        raise SuiteError(
            f"{run.path}: no record has a right/wrong score ({', '.join(RIGHT_SCORES)}) — "
            "diagnose sorts wrong answers, so it needs a classification or extraction suite, "
            "or a generation suite with exact_match"
        )
    return out


def _record_model(records: list[dict]) -> str:
    return next((str(r["model"]) for r in records if r.get("model")), "?")


def flips(diagnosed: VariantInfo, other: VariantInfo) -> tuple[int, int]:
    """(fixes, breaks) of `other` against the diagnosed variant, on the examples both answered:
    the diagnosed one's wrong examples it gets right, and its right ones it gets wrong."""
    fixes = breaks = 0
    for ex, mine in diagnosed.calls.items():
        theirs = other.calls.get(ex)
        if theirs is None:
            continue
        if not mine.all_right and theirs.right:
            fixes += 1
        elif mine.all_right and not theirs.right:
            breaks += 1
    return fixes, breaks
