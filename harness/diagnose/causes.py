"""Sorting a variant's wrong examples into causes, each counted once, by a fixed precedence.

Precedence (the first that applies wins), and the evidence each needs:

1. failed        — a call got no answer (provider error, timeout): no approach fixes it.
2. format        — an answer was unparseable, outside the label set or schema-invalid.
3. inconsistent  — its repeats disagree (needs `repeats` >= 2, or the repeats probe).
4. specification — another prompt variant of the same model gets it right.
5. knowledge     — a RAG variant gets it right, or the gold passage fixes it (gold probe).
6. capability    — a prompt variant of a model stronger on this run gets it right, or the
                   stronger-model probe does.
7. label doubt   — the two strongest other variants agree on one answer that is not the label.
8. residual      — nothing in the run fixes it.

Behaviour before knowledge before capability: an example a few-shot prompt already fixes needs
no retrieval, and one retrieval fixes needs no bigger model. A cause without evidence in the
run is "not measured" (its examples fall through to a later cause), never 0%.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.diagnose.evidence import Calls, VariantInfo
from harness.stats.bootstrap import wilson_ci

CONFIDENCE = 0.95
# How a probe is named among an example's fixers (`fixed_by`).
GOLD_PROBE = "gold-context probe"
STRONGER_PROBE = "probe: "  # + the model


@dataclass(frozen=True)
class Cause:
    key: str
    title: str
    meaning: str  # what the cause says about the model, in the article's words


CAUSES: list[Cause] = [
    Cause("failed", "failed call", "no answer came back (provider error or timeout)"),
    Cause("format", "format", "the model does not produce the format consistently"),
    Cause("inconsistent", "inconsistent", "the model does not answer consistently"),
    Cause("specification", "specification", "the prompt does not say WHAT to do clearly enough"),
    Cause("knowledge", "knowledge", "the model does not know what it needs (retrieval fixes it)"),
    Cause("capability", "capability", "only a stronger model gets it right"),
    Cause("label_doubt", "label doubt", "the strongest variants agree on another label"),
    Cause("residual", "residual", "nothing in this run fixes it"),
]
CAUSE = {c.key: c for c in CAUSES}


@dataclass
class Evidence:
    """Who can fix what: the variants (and probes) each cause consults."""

    diagnosed: VariantInfo
    same_model: list[VariantInfo]  # specification
    rag: list[VariantInfo]  # knowledge
    stronger: list[VariantInfo]  # capability
    strongest: list[VariantInfo]  # label doubt: the two strongest other variants
    format_scored: bool
    # Probe answers by example id (the probe's Calls), when a probe ran.
    repeats_probe: dict[str, Calls] | None = None
    gold_probe: dict[str, Calls] | None = None
    stronger_probe: dict[str, Calls] | None = None
    stronger_probe_model: str | None = None

    def measured(self) -> dict[str, str | None]:
        """cause -> None when the run measures it, else why not and how to measure it."""
        d = self.diagnosed
        return {
            "failed": None,
            "format": None
            if self.format_scored
            else "no format criterion — declare `output_schema:` or a label set",
            "inconsistent": None
            if d.repeats >= 2 or self.repeats_probe is not None
            else f"{d.name} has one call per example — set `repeats: 3` on it, or run "
            "`harness diagnose --probe repeats`",
            "specification": None
            if self.same_model
            else f"no other prompt variant of {d.model} — add a few-shot variant",
            "knowledge": None
            if self.rag or self.gold_probe is not None
            else "no RAG variant — add a `kind: rag` variant (with `data.gold`, `--probe gold` "
            "then also hands the model the gold passages)",
            "capability": None
            if self.stronger or self.stronger_probe is not None
            else "no variant of a stronger model — add one, or run `--probe stronger "
            "--stronger MODEL`",
            "label_doubt": None
            if len(self.strongest) >= 2
            else "fewer than two other variants to agree on another label",
            "residual": None,
        }


def gather(variants: dict[str, VariantInfo], name: str, task: str) -> Evidence:
    d = variants[name]
    others = [v for v in variants.values() if v.name != name]
    prompt_like = [v for v in others if not v.retrieves and not v.trained]
    return Evidence(
        diagnosed=d,
        same_model=[v for v in prompt_like if v.model == d.model],
        rag=[v for v in others if v.retrieves],
        stronger=[v for v in prompt_like if v.model != d.model and v.accuracy > d.accuracy],
        strongest=sorted(others, key=lambda v: -v.accuracy)[:2]
        if task in ("classification", "extraction")
        else [],
        format_scored=d.format_scored,
    )


@dataclass
class Sorted:
    """One wrong example: its cause and every variant (or probe) that got it right."""

    id: str
    cause: str
    fixed_by: list[str] = field(default_factory=list)
    suggested: Any = None  # label doubt: the answer the strongest variants agree on


def errors_of(d: VariantInfo) -> list[str]:
    return [ex for ex, cs in d.calls.items() if not cs.all_right]


def sort_example(ev: Evidence, ex: str) -> Sorted:
    d = ev.diagnosed.calls[ex]
    gets_right = _fixers(ev, ex)
    fixed_by = [n for names in gets_right.values() for n in names]
    measured = ev.measured()

    def out(cause: str, suggested: Any = None) -> Sorted:
        return Sorted(ex, cause, list(dict.fromkeys(fixed_by)), suggested)

    if any(c.failed for c in d.calls):
        return out("failed")
    if measured["format"] is None and any(c.format_bad for c in d.calls):
        return out("format")
    probe = (ev.repeats_probe or {}).get(ex)
    if d.disagree or (probe is not None and Calls(d.calls + probe.calls).disagree):
        return out("inconsistent")
    for cause in ("specification", "knowledge", "capability"):
        if gets_right[cause]:
            return out(cause)
    if measured["label_doubt"] is None:
        answers = [v.calls[ex].agreed_answer if ex in v.calls else None for v in ev.strongest]
        first = answers[0]
        wrong = all(ex in v.calls and not v.calls[ex].right for v in ev.strongest)
        if first is not None and wrong and all(a == first for a in answers):
            return out("label_doubt", first)
    return out("residual")


def _fixers(ev: Evidence, ex: str) -> dict[str, list[str]]:
    def right(vs: list[VariantInfo]) -> list[str]:
        return [v.name for v in vs if ex in v.calls and v.calls[ex].right]

    def probe(calls: dict[str, Calls] | None, label: str) -> list[str]:
        return [label] if calls is not None and ex in calls and calls[ex].right else []

    return {
        "specification": right(ev.same_model),
        "knowledge": right(ev.rag) + probe(ev.gold_probe, GOLD_PROBE),
        "capability": right(ev.stronger)
        + probe(ev.stronger_probe, f"{STRONGER_PROBE}{ev.stronger_probe_model}"),
    }


@dataclass
class Share:
    key: str
    count: int
    n: int
    measured: bool
    why_not: str | None

    def interval(self) -> tuple[float | None, float | None]:
        return wilson_ci(self.count, self.n, CONFIDENCE) if self.measured else (None, None)

    def as_dict(self) -> dict[str, Any]:
        lo, hi = self.interval()
        return {
            "cause": self.key,
            "title": CAUSE[self.key].title,
            "meaning": CAUSE[self.key].meaning,
            "measured": self.measured,
            "count": self.count if self.measured else None,
            "share": self.count / self.n if self.measured and self.n else None,
            "ci_low": lo,
            "ci_high": hi,
            "why_not": self.why_not,
        }


def shares(ev: Evidence, rows: list[Sorted]) -> list[Share]:
    measured = ev.measured()
    return [
        Share(
            c.key,
            sum(r.cause == c.key for r in rows),
            len(rows),
            measured[c.key] is None,
            measured[c.key],
        )
        for c in CAUSES
    ]
