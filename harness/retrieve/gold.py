"""Retrieval quality against `data.gold`: recall@k and MRR per rag variant."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------- metrics


def gold_ids(value: Any) -> set[str]:
    """The gold passage ids of an example: a list, a JSON list in text, or one id."""
    if value is None or (isinstance(value, float) and value != value):
        return set()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            with contextlib.suppress(json.JSONDecodeError):  # not JSON after all: one id
                value = json.loads(text)
    if isinstance(value, (list, tuple, set)):
        return {str(v) for v in value if v is not None and str(v) != ""}
    return {str(value)} if str(value) != "" else set()


def matches_gold(item: dict, golds: set[str] | None) -> set[str]:
    """Gold ids this retrieved chunk stands for (by id, source, file name or file stem); with
    `golds` None, every name it goes by."""
    names = {str(item.get("id")), str(item.get("source"))}
    for n in list(names):
        names |= {Path(n).name, Path(n).stem}
    return names if golds is None else golds & names


def gold_hits(
    retrieved: Sequence[dict] | None, golds: set[str], k: int
) -> tuple[float, float, bool]:
    """(recall@k, reciprocal rank, any gold in top k) for one example's ranked chunks.

    Ranks count chunks as retrieved (position 1 is the best chunk); only the first k are used.
    """
    found: set[str] = set()
    rr = 0.0
    for rank, item in enumerate(list(retrieved or [])[:k], start=1):
        hit = matches_gold(item, golds)
        if hit and rr == 0.0:
            rr = 1.0 / rank
        found |= hit
    return len(found) / len(golds), rr, bool(found)


def retrieval_metrics(records: list[dict], examples: dict[str, Any], k: int) -> dict:
    """recall@k, MRR, and accuracy given gold retrieved / not retrieved, over examples with gold.

    `records` are one variant's result lines (several per example with repeats: retrieval is
    per example, correctness is averaged over its repeats). `examples` maps id -> Example.
    Correctness is `scores["correct"]`; values are None when no example falls in a group.
    """
    per_example: dict[str, list[dict]] = {}
    for r in records:
        per_example.setdefault(r["id"], []).append(r)
    recalls, rrs = [], []
    given = {True: [], False: []}
    for ex_id, recs in per_example.items():
        example = examples.get(ex_id)
        golds = gold_ids(getattr(example, "gold", None)) if example is not None else set()
        if not golds:
            continue
        retrieved = next((r.get("retrieved") for r in recs if r.get("retrieved") is not None), None)
        recall, rr, hit = gold_hits(retrieved, golds, k)
        recalls.append(recall)
        rrs.append(rr)
        correct = [
            float(r["scores"]["correct"])
            for r in recs
            if (r.get("scores") or {}).get("correct") is not None
        ]
        if correct:
            given[hit].append(sum(correct) / len(correct))

    def mean(xs):
        return sum(xs) / len(xs) if xs else None

    return {
        "k": k,
        "n": len(recalls),
        "recall_at_k": mean(recalls),
        "mrr": mean(rrs),
        "accuracy_gold_retrieved": {"value": mean(given[True]), "n": len(given[True])},
        "accuracy_gold_missed": {"value": mean(given[False]), "n": len(given[False])},
    }
