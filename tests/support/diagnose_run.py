"""Run directories with each cause of error planted on known examples, for `harness diagnose`.

Variants: `zero-shot` (the baseline, model openai/small), `few-shot` (same model), `rag` (a RAG
variant of the same model) and `big` (a prompt variant of openai/big). Each example gets one
plan entry saying how every variant answers it:

- right: everyone is right; broken: everyone but few-shot is right;
- failed: the baseline's call failed; format: it answered outside the label set;
- inconsistent: its two repeats disagree;
- specification / knowledge / capability: it is wrong, and few-shot / rag / big (in that order
  of what fixes it) is the first that is right;
- label_doubt: the gold label is flipped: every variant gives the true label;
- residual: every variant is wrong, rag and big with different answers.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

LABELS = ["card_arrival", "card_lost", "refund"]
VARIANTS = {
    "zero-shot": {"kind": "prompt", "model": "openai/small"},
    "few-shot": {"kind": "prompt", "model": "openai/small", "few_shot": {"k": 2}},
    "rag": {"kind": "rag", "model": "openai/small"},
    "big": {"kind": "prompt", "model": "openai/big"},
}
# Who is right, per planted cause (the baseline's answer is set apart).
RIGHT = {
    "right": {"few-shot", "rag", "big"},
    "broken": {"rag", "big"},  # the baseline is right, few-shot wrong
    "failed": {"few-shot", "rag", "big"},
    "format": {"few-shot", "rag", "big"},
    "inconsistent": {"few-shot", "rag", "big"},
    "specification": {"few-shot", "rag", "big"},
    "knowledge": {"rag", "big"},
    "capability": {"big"},
    "label_doubt": set(),
    "residual": set(),
}


def plan_by_probability(n: int, probs: dict[str, float], seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    causes, weights = zip(*probs.items(), strict=True)
    return rng.choices(causes, weights=weights, k=n)


def make_planted_run(
    root: Path,
    plan: list[str],
    *,
    variants: tuple[str, ...] = tuple(VARIANTS),
    repeats: int = 2,
    cost: dict[str, float] | None = None,
) -> Path:
    """A finished run whose example i is planted as plan[i]; returns the run dir."""
    import pandas as pd

    from harness.data.dataset import _example_id

    cost = cost or {"zero-shot": 0.001, "few-shot": 0.002, "rag": 0.003, "big": 0.006}
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs" / "a.md").write_text("Cards arrive in 5 days.\n", encoding="utf-8")
    truth, rows = [], []
    for i, cause in enumerate(plan):
        true = LABELS[i % 3]
        # A flipped label: the data says the next label, every model says the true one.
        gold = LABELS[(i + 1) % 3] if cause == "label_doubt" else true
        truth.append(true)
        rows.append({"text": f"question {i} about {true}", "category": gold})
    pd.DataFrame(rows).to_csv(data / "test.csv", index=False)
    pd.DataFrame([{"text": f"train {i}", "category": LABELS[i % 3]} for i in range(6)]).to_csv(
        data / "train.csv", index=False
    )
    run_dir = root / "runs" / "planted" / "20261207-230000-ab12"
    (run_dir / "results").mkdir(parents=True)
    specs = []
    for name in variants:
        spec = {"name": name, **VARIANTS[name]}
        if spec["kind"] == "rag":
            spec["retrieval"] = {"corpus": str(root / "docs" / "*.md"), "k": 1}
            spec["user"] = "{{ context }} Q: {{ text }}"
        if name == "zero-shot" and repeats > 1:
            spec["repeats"] = repeats
        specs.append(spec)
    suite = {
        "name": "planted",
        "task": "classification",
        "data": {
            "test": str(data / "test.csv"),
            "train": str(data / "train.csv"),
            "input": "text",
            "target": "category",
        },
        "labels": "from-data",
        "metrics": ["accuracy"],
        "defaults": {"params": {"temperature": 0}, "user": "Q: {{ text }}"},
        "variants": specs,
        "baseline": "zero-shot",
    }
    (run_dir / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    ids = [_example_id(r, ["text", "category"]) for r in rows]
    summary_variants = {}
    for name in variants:
        recs = []
        for i, cause in enumerate(plan):
            gold, true = rows[i]["category"], truth[i]
            wrong, third = LABELS[(i + 1) % 3], LABELS[(i + 2) % 3]
            if gold == wrong:  # a flipped example: its "wrong" answers must avoid the gold one
                wrong = third
            answers = _answers(name, cause, true, gold, wrong, third, repeats)
            for rep, answer in enumerate(answers):
                recs.append(_record(ids[i], rep, VARIANTS[name]["model"], answer, gold, cost[name]))
        (run_dir / "results" / f"{name}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8"
        )
        summary_variants[name] = {
            "kind": VARIANTS[name]["kind"],
            "model": VARIANTS[name]["model"],
            "n_examples": len(plan),
            "cost_usd": cost[name] * len(recs),
        }
    summary = {
        "schema_version": 1,
        "suite": "planted",
        "run_id": run_dir.name,
        "task": "classification",
        "baseline": "zero-shot",
        "n_examples": len(plan),
        "metrics": ["accuracy"],
        "variants": summary_variants,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return run_dir


def _answers(name, cause, true, gold, wrong, third, repeats) -> list:
    """Each call's answer: a label, "FAILED" (an error) or "banana" (outside the label set)."""
    if name == "zero-shot":
        n = max(repeats, 1)
        if cause in ("right", "broken"):
            return [gold] * n
        if cause == "failed":
            return ["FAILED"] * n
        if cause == "format":
            return ["banana"] * n
        if cause == "inconsistent":
            return ([gold, wrong] + [wrong] * (n - 2))[:n]
        if cause == "label_doubt":
            return [true] * n
        return [wrong] * n
    if cause == "label_doubt":
        return [true]
    if name in RIGHT[cause]:
        return [gold]
    if cause == "residual":  # rag and big disagree, so no label doubt
        return [third] if name == "rag" else [wrong]
    return [wrong]


def _record(ex_id, repeat, model, answer, gold, cost):
    failed = answer == "FAILED"
    parsed = None if failed or answer == "banana" else answer
    return {
        "id": ex_id,
        "repeat": repeat,
        "model": model,
        "output": None if failed else json.dumps({"intent": answer}),
        "parsed": parsed,
        "scores": {"correct": float(parsed == gold), "format_ok": float(parsed is not None)},
        "reasons": {},
        "latency_ms": 100.0,
        "tokens_in": 50,
        "tokens_out": 5,
        "cost_usd": cost,
        "cached": False,
        "error": "timeout after 3 retries" if failed else None,
        "retrieved": None,
    }
