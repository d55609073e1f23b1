"""The article's decision table, filled in for the diagnosed run.

Each approach addresses some causes: its share is the share of the errors in those causes (the
causes are disjoint, so the counts add). Rows overlap on purpose: a format error is first a
prompt fix (constrained output, hours), and a fine-tuning one only if it persists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from harness.diagnose.causes import CONFIDENCE, Evidence, Share
from harness.diagnose.evidence import VariantInfo, flips
from harness.stats.bootstrap import wilson_ci

SWEET_SPOT = (0.80, 0.90)  # the article's range for distilling a strong model into a small one


@dataclass(frozen=True)
class Approach:
    key: str
    title: str
    causes: tuple[str, ...]
    investment: str
    dont: str


APPROACHES: list[Approach] = [
    Approach(
        "prompt",
        "prompt engineering",
        ("format", "specification"),
        "hours",
        "don't fine-tune as a first resort: exhaust prompting (few-shot, constrained output) first",
    ),
    Approach(
        "rag",
        "RAG (retrieval)",
        ("knowledge",),
        "days–weeks",
        "fine-tuning will not fix knowledge errors (the knowledge trap): facts come from "
        "retrieval at inference time",
    ),
    Approach(
        "finetune",
        "fine-tuning",
        ("inconsistent", "format"),
        "weeks",
        "don't fine-tune knowledge in or for general intelligence; format errors only if they "
        "persist after constrained output",
    ),
    Approach(
        "model",
        "a stronger model (or distil it)",
        ("capability",),
        "hours (switch) / weeks (distil)",
        "you can't make a small model as smart as a large one by fine-tuning it on the labels",
    ),
    Approach(
        "labels",
        "label review",
        ("label_doubt",),
        "hours",
        "don't train on these labels before they are reviewed",
    ),
]


def approach_rows(
    ev: Evidence, causes: list[Share], csv_path: str | None, facts: SuiteFacts
) -> list[dict[str, Any]]:
    by_key = {s.key: s for s in causes}
    rows = []
    for a in APPROACHES:
        parts = [by_key[c] for c in a.causes]
        measured = [s for s in parts if s.measured]
        n = parts[0].n
        count = sum(s.count for s in measured)
        lo, hi = wilson_ci(count, n, CONFIDENCE) if measured else (None, None)
        doubts = [_doubt(c, ev, by_key[c]) for c in a.causes]
        doubtful = sum(k for k, _ in doubts)
        rows.append(
            {
                "approach": a.key,
                "title": a.title,
                "causes": list(a.causes),
                "not_measured": [s.key for s in parts if not s.measured],
                "measured": bool(measured),
                "count": count if measured else None,
                "share": count / n if measured and n else None,
                "ci_low": lo,
                "ci_high": hi,
                "investment": a.investment,
                "dont": a.dont,
                "advice": _advice(a.key, ev, by_key, csv_path, facts),
                "suite_edit": _suite_edit(a.key, ev, facts),
                # Errors counted here on the word of variants that break more than they fix.
                "doubtful": doubtful,
                "caveat": "; ".join(text for _, text in doubts if text) or None,
            }
        )
    return rows


# The variants each cause takes as evidence (probes are not: they ask only the wrong examples).
FIXERS = {"specification": "same_model", "knowledge": "rag", "capability": "stronger"}


def _doubt(cause: str, ev: Evidence, share: Share) -> tuple[int, str | None]:
    """(errors in doubt, why): a cause shown only by variants that get more of the diagnosed
    variant's right answers wrong than its wrong ones right is no evidence that the approach
    helps — on a noisy model such flips are chance."""
    if cause not in FIXERS or not share.measured or not share.count:
        return 0, None
    variants = getattr(ev, FIXERS[cause])
    if not variants or (cause == "knowledge" and ev.gold_probe is not None):
        return 0, None
    if cause == "capability" and ev.stronger_probe is not None:
        return 0, None
    counted = [(v, *flips(ev.diagnosed, v)) for v in variants]
    if any(fixes > breaks for _, fixes, breaks in counted):
        return 0, None
    d = ev.diagnosed.name
    why = ", ".join(
        f"{v.name} fixes {fixes} but breaks {breaks} that {d} got right (net {fixes - breaks:+d})"
        for v, fixes, breaks in counted
    )
    return share.count, why


def recommendation(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The measured approach addressing the most errors, not counting those in doubt (shown only
    by variants that break more than they fix); a tie goes to the cheaper one (the table is in
    the article's order of investment, prompting first)."""
    best = None
    for row in rows:
        sure = (row["count"] or 0) - row["doubtful"]
        if (
            row["measured"]
            and sure > 0
            and (best is None or sure > best["count"] - best["doubtful"])
        ):
            best = row
    return best


def _advice(
    key: str, ev: Evidence, shares: dict[str, Share], csv_path: str | None, facts: SuiteFacts
) -> str:
    d = ev.diagnosed
    if key == "prompt":
        fixers = ", ".join(v.name for v in ev.same_model)
        # Constrained output needs the suite's output_schema, and is news only if unused.
        text = (
            "constrained output (`response_format: output_schema`) or a format-focused prompt"
            if facts.schema and not facts.constrained
            else "a format-focused prompt (state the labels and the answer format)"
        )
        # Said only where there are such errors: "few-shot already fixes" 0 errors misleads.
        spec = shares.get("specification")
        fixes = fixers and spec is not None and spec.count > 0
        return text + (f"; {fixers} already fixes the specification errors" if fixes else "")
    if key == "rag":
        text = "give the model the facts at inference time" + (
            f" ({', '.join(v.name for v in ev.rag)} already does)" if ev.rag else ""
        )
        if ev.gold_probe is not None:  # the facts fix them; whether a search finds them is apart
            text += "; the gold passages fix them — check the retriever's recall@k on data.gold"
        return text
    if key == "finetune":
        return "fine-tune for consistency and format (200–2000 examples; budget 2–3 iterations)"
    if key == "model":
        strong = _strongest_fixer(ev)
        if strong is None:
            if ev.stronger_probe_model:
                return f"switch to {ev.stronger_probe_model}"
            return "add a variant of a stronger model to measure it"
        return _model_advice(d, strong)
    if key == "labels":
        return f"review and correct them in {csv_path}" if csv_path else "no label doubts"
    return ""


def _strongest_fixer(ev: Evidence) -> VariantInfo | None:
    return max(ev.stronger, key=lambda v: v.accuracy) if ev.stronger else None


def cost_ratio(strong: VariantInfo, small: VariantInfo) -> float | None:
    if strong.cost_per_call is None or not small.cost_per_call:
        return None
    return strong.cost_per_call / small.cost_per_call


def _model_advice(d: VariantInfo, strong: VariantInfo) -> str:
    ratio = cost_ratio(strong, d)
    if ratio is not None:
        cost = f"it costs {ratio:.1f}× {d.name} per call"
    elif d.cost_per_call == 0 and strong.cost_per_call is not None:
        cost = f"{d.name} runs at no API cost, {strong.name} costs ${strong.cost_per_call:.4g} per call"
    else:
        cost = "cost ratio unknown (a variant is unpriced — set `pricing:`)"
    acc = f"{strong.name} ({strong.model}) is right on {strong.accuracy:.0%}"
    lo, hi = SWEET_SPOT
    if lo <= strong.accuracy <= hi:
        return (
            f"{acc}, in the 80–90% sweet spot: distil it into {d.model} "
            f"(`finetune: {{data: {{distill: {strong.name}}}}}`); {cost}"
        )
    if strong.accuracy > hi:
        return f"{acc}: switch to it, or distil it into {d.model} if its cost matters; {cost}"
    return f"{acc}, below 80%: distilling would copy its errors — look for a stronger one; {cost}"


@dataclass(frozen=True)
class SuiteFacts:
    """What the suite edits need from the run's suite."""

    metric: str = "accuracy"  # the hypothesis metric the edits pre-register
    schema: bool = False  # the suite has an output_schema (constrained output is available)
    input: str = "text"  # the first input field, for the templates
    names: frozenset[str] = frozenset()  # variant names already taken
    train: bool = True  # the suite has a train split (few_shot draws from it)
    constrained: bool = False  # the diagnosed variant already uses constrained output
    labels: tuple[str, ...] = ()  # a classification suite's label set


def _suite_edit(key: str, ev: Evidence, facts: SuiteFacts) -> str:
    """The variant (unless the run has one already) and the hypothesis that would test it."""
    d = ev.diagnosed
    names = set(facts.names) | {d.name}
    field = facts.input
    me = _scalar(d.name)

    def hypothesis(candidate: str) -> str:
        return (
            "guard:\n"
            f"  - {{candidate: {_scalar(candidate)}, baseline: {me}, metric: {facts.metric}, "
            "test: superiority, margin: 0.05}"
        )

    if key == "prompt":
        constrained = "    response_format: output_schema\n" if facts.schema else ""
        if not facts.train:  # no examples to show: say the format instead
            name = _free("format-prompt", names)
            say = (
                "Answer with exactly one of these labels and nothing else: "
                + ", ".join(facts.labels)
                if facts.labels
                else "Answer with only the answer, in the format asked, and nothing else."
            )
            return (
                f"variants:\n  - name: {name}\n    extends: {me}\n{constrained}"
                f"    system: {json.dumps(say, ensure_ascii=False)}\n" + hypothesis(name)
            )
        name = _free("few-shot-similar", names)
        return (
            f"variants:\n  - name: {name}\n    extends: {me}\n{constrained}"
            "    few_shot: {k: 4, select: similar}\n"
            "    user: |-\n"
            f"      {{% for ex in examples %}}{{{{ ex.{field} }}}} -> {{{{ ex.target }}}}\n"
            f"      {{% endfor %}}{{{{ {field} }}}} ->\n" + hypothesis(name)
        )
    if key == "rag":
        if ev.rag:  # the run has one: pre-register it
            return hypothesis(max(ev.rag, key=lambda v: v.accuracy).name)
        name = _free("rag", names)
        return (
            f"variants:\n  - name: {name}\n    extends: {me}\n    kind: rag\n"
            "    retrieval: {corpus: docs/**/*.md, method: bm25, k: 4}\n"
            f'    user: "Context:\\n{{{{ context }}}}\\n\\n{{{{ {field} }}}}"\n' + hypothesis(name)
        )
    if key == "finetune":
        name = _free("fine-tuned", names)
        return (
            f"variants:\n  - name: {name}\n    kind: fine-tuned\n    base_model: {d.model}\n"
            f"    finetune: {_finetune(d.model)}\n" + hypothesis(name)
        )
    if key == "model":
        strong = _strongest_fixer(ev)
        if strong is not None and SWEET_SPOT[0] <= strong.accuracy:
            name = _free("distilled", names)
            return (
                f"variants:\n  - name: {name}\n    kind: fine-tuned\n    base_model: {d.model}\n"
                f"    finetune: {_finetune(d.model, f'data: {{distill: {_scalar(strong.name)}}}')}\n"
                + hypothesis(name)
            )
        name = _free("stronger", names)
        model = ev.stronger_probe_model or "openai/gpt-4o"
        return f"variants:\n  - name: {name}\n    extends: {me}\n    model: {model}\n" + hypothesis(
            name
        )
    return ""


def _finetune(model: str, extra: str = "") -> str:
    """The `finetune:` mapping for a base model: a local one trains LoRA on this machine; any
    other goes to OpenAI at the article's ~$8 per 1M training tokens (check your provider's)."""
    keys = (
        ["provider: local", "method: lora"]
        if model.startswith("local/")
        else [f"base_model: {model}", "price_per_1m: 8"]
    )
    return "{" + ", ".join(keys + ([extra] if extra else [])) + "}"


def _scalar(name: str) -> str:
    """A variant name as YAML reads it back: the suite allows `no`, `1` or `null`, which plain
    YAML would read as False, 1 or None."""
    import yaml

    return name if yaml.safe_load(name) == name else json.dumps(name)


def _free(name: str, taken: set[str]) -> str:
    n, out = 2, name
    while out in taken:
        out, n = f"{name}-{n}", n + 1
    return out
