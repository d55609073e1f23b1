"""Synthetic run directories in the CONTRIBUTING.md formats, for report and tracking tests.

Metric values are computed with scikit-learn from the records written, so tests can compare what
the report/MLflow show against independent numbers.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import yaml

LABELS = ["card_arrival", "card_lost", "refund"]


def _variant_spec(name: str, i: int, count: int) -> dict:
    if i == count - 1 and count > 1:
        return {
            "name": name,
            "kind": "fine-tuned",
            "model": "openai/ft:gpt-4o-mini:acme::x1",
            "base_model": "openai/gpt-4o-mini",
            "training": {"cost_usd": 12.0},
        }
    if i > 0:
        return {
            "name": name,
            "kind": "prompt",
            "model": "openai/gpt-4o-mini",
            "few_shot": {"k": 4, "select": "random", "seed": i},
        }
    return {"name": name, "kind": "prompt", "model": "openai/gpt-4o-mini"}


def make_run_dir(
    root: Path,
    *,
    n: int = 30,
    variants: dict[str, float] | None = None,
    labels: list[str] = LABELS,
    run_id: str = "20261125-132501-ab12",
    suite: str = "quickstart",
    seed: int = 0,
    verdict: str = "inconclusive",
) -> Path:
    """A finished run of a classification suite: data file, suite.yaml, results/*.jsonl, summary.json.

    variants maps name -> probability that an answer is correct; the first is the baseline.
    """
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    variants = variants or {"zero-shot": 0.5, "few-shot": 0.7, "ft-mini": 0.8}
    rng = random.Random(seed)
    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "text": f"question {i} | about *{labels[i % len(labels)]}*",
            "category": labels[i % len(labels)],
        }
        for i in range(n)
    ]
    test = data_dir / "test.csv"
    import pandas as pd

    pd.DataFrame(rows).to_csv(test, index=False)
    train = data_dir / "train.csv"
    pd.DataFrame(
        [{"text": f"train {i}", "category": labels[i % len(labels)]} for i in range(12)]
    ).to_csv(train, index=False)

    run_dir = root / "runs" / suite / run_id
    (run_dir / "results").mkdir(parents=True)
    names = list(variants)
    baseline = names[0]
    suite_doc = {
        "name": suite,
        "task": "classification",
        "data": {"test": str(test), "train": str(train), "input": "text", "target": "category"},
        "labels": "from-data",
        "metrics": ["accuracy", "macro_f1"],
        "defaults": {
            "params": {"temperature": 0, "max_tokens": 16},
            "system": "Route.",
            "user": "Q: {{ text }}",
        },
        "variants": [_variant_spec(name, i, len(names)) for i, name in enumerate(names)],
        "baseline": baseline,
        "guard": {
            "metric": "macro_f1",
            "test": "superiority",
            "margin": 0.05,
            "confidence": 0.95,
            "applies_to": names[-1:],
        },
    }
    (run_dir / "suite.yaml").write_text(
        yaml.safe_dump(suite_doc, sort_keys=False), encoding="utf-8"
    )

    from harness.data.dataset import _example_id  # ids exactly as the data loader makes them

    ids = [_example_id(r, ["text", "category"]) for r in rows]
    summary_variants = {}
    truth = [r["category"] for r in rows]
    preds_by_variant = {}
    for vi, (name, p) in enumerate(variants.items()):
        recs, preds = [], []
        for i, r in enumerate(rows):
            ok = rng.random() < p
            pred = r["category"] if ok else labels[(labels.index(r["category"]) + 1) % len(labels)]
            error = "timeout after 3 retries" if (not ok and i % 11 == 0) else None
            output = None if error else json.dumps({"intent": pred})
            parsed = None if error else pred
            preds.append(parsed or "")
            recs.append(
                {
                    "id": ids[i],
                    "repeat": 0,
                    "model": suite_doc["variants"][vi]["model"],
                    "output": output,
                    "parsed": parsed,
                    "scores": {
                        "correct": float(parsed == r["category"]),
                        "format_ok": 0.0 if error else 1.0,
                    },
                    "reasons": {"format_ok": "no answer" if error else "valid"},
                    "latency_ms": 100.0 + 10 * i,
                    "tokens_in": 80,
                    "tokens_out": 8,
                    "cost_usd": 0.00002 * (vi + 1),
                    "cached": False,
                    "error": error,
                    "retrieved": None,
                }
            )
        preds_by_variant[name] = preds
        with open(run_dir / "results" / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for rec in recs:
                f.write(json.dumps(rec) + "\n")
        acc = accuracy_score(truth, preds)
        mf1 = f1_score(truth, preds, labels=labels, average="macro", zero_division=0)
        pr, rc, f1, sup = precision_recall_fscore_support(
            truth, preds, labels=labels, zero_division=0
        )
        n_err = sum(1 for r in recs if r["error"])
        answered_ms = [r["latency_ms"] for r in recs if not r["error"]]
        summary_variants[name] = {
            "kind": suite_doc["variants"][vi]["kind"],
            "model": suite_doc["variants"][vi]["model"],
            "base_model": suite_doc["variants"][vi].get("base_model"),
            "n_examples": n,
            "n_calls": n,
            "n_errors": n_err,
            "error_rate": n_err / n,
            "cached_calls": 0,
            "cost_usd": sum(r["cost_usd"] for r in recs),
            "spent_usd": sum(r["cost_usd"] for r in recs),  # nothing cached
            "tokens_in": 80 * n,
            "tokens_out": 8 * n,
            # As stats.summary writes them: percentiles of the answered calls' latency.
            "latency_p50_ms": float(np.percentile(answered_ms, 50)),
            "latency_p95_ms": float(np.percentile(answered_ms, 95)),
            "metrics": {
                "accuracy": {
                    "value": acc,
                    "ci_low": max(0.0, acc - 0.1),
                    "ci_high": min(1.0, acc + 0.1),
                },
                "macro_f1": {
                    "value": mf1,
                    "ci_low": max(0.0, mf1 - 0.12),
                    "ci_high": min(1.0, mf1 + 0.12),
                },
            },
            "per_class": {
                lab: {"precision": pr[j], "recall": rc[j], "f1": f1[j], "support": int(sup[j])}
                for j, lab in enumerate(labels)
            },
            "errors_by_reason": {"timeout": n_err} if n_err else {},
        }
    base = summary_variants[baseline]["metrics"]
    for name in names[1:]:
        m = summary_variants[name]["metrics"]
        summary_variants[name]["delta"] = {
            k: {
                "value": m[k]["value"] - base[k]["value"],
                "ci_low": m[k]["value"] - base[k]["value"] - 0.08,
                "ci_high": m[k]["value"] - base[k]["value"] + 0.08,
                "p_value": 0.04,
            }
            for k in m
        }
    guarded = names[-1]
    summary = {
        "schema_version": 1,
        "suite": suite,
        "run_id": run_id,
        "started_at": "2026-11-25T13:25:01+00:00",
        "finished_at": "2026-11-25T13:26:41+00:00",
        "suite_hash": "0123456789abcdef",
        "data_hashes": {"data/test.csv": "f" * 64},
        "task": "classification",
        "baseline": baseline,
        "n_examples": n,
        "metrics": ["accuracy", "macro_f1"],
        "hypothesis": {
            "metric": "macro_f1",
            "test": "superiority",
            "margin": 0.05,
            "confidence": 0.95,
        },
        "variants": summary_variants,
        "guard": {
            "verdicts": {
                guarded: {
                    "verdict": verdict,
                    "sentence": f"{guarded}: +3.1 pts macro-F1 vs {baseline}; target +5.0 not shown — {verdict}.",
                    "required_n": 420,
                    # As harness.decide.ledger.lineage folds it: an earlier iteration, then this run.
                    "ledger": {
                        "iterations": 2,
                        "models": [
                            "openai/ft:gpt-4o-mini:acme::x0",
                            "openai/ft:gpt-4o-mini:acme::x1",
                        ],
                        "training_usd": 20.0,
                        "eval_usd": 0.01,
                        "spent_usd": 20.01,
                        "best_delta": 0.031,
                        "history": [
                            {
                                "run_id": "20261120-101500-cd34",
                                "model": "openai/ft:gpt-4o-mini:acme::x0",
                                "training_usd": 8.0,
                                "delta": -0.012,
                                "delta_ci": [-0.09, 0.066],
                                "metric": "macro_f1",
                                "verdict": "fail",
                            },
                            {
                                "run_id": None,
                                "model": "openai/ft:gpt-4o-mini:acme::x1",
                                "training_usd": 12.0,
                                "delta": 0.031,
                                "delta_ci": [-0.049, 0.111],
                                "metric": "macro_f1",
                                "verdict": None,
                            },
                        ],
                    },
                }
            }
        },
        "ledger_entry": {
            "metric": "macro_f1",
            "variants": {
                guarded: {"model": suite_doc["variants"][-1]["model"], "training_usd": 12.0}
            },
        },
        "break_even": {},
        "exit_code": 1,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return run_dir


RETRIEVED = [
    {"id": "docs/a.md", "source": "docs/a.md:1", "score": 7.25},
    {"id": "docs/b.md", "source": "docs/b.md:3", "score": 3.5},
]


def add_retrieval(run_dir: Path, gold_missed: dict, variant: str = "ft-mini") -> None:
    """Make `variant` a RAG variant: a summary "retrieval" section (gold passages: k 2, 28 gold,
    recall 0.75, MRR 0.607, 21 retrieved) and RETRIEVED on every record."""
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["variants"][variant]["retrieval"] = {
        "k": 2,
        "n": 28,
        "recall_at_k": 0.75,
        "mrr": 0.6071428571,
        "accuracy_gold_retrieved": {"value": 0.9047619, "n": 21},
        "accuracy_gold_missed": gold_missed,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    path = run_dir / "results" / f"{variant}.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    for r in recs:
        r["retrieved"] = RETRIEVED
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
