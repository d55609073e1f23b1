"""Variant kinds and retrieval methods: the names a suite may use, and what a kind means.

Code that behaves differently per kind asks this table (`KINDS[v.kind].retrieves`), never the
kind's name, so a new kind is one entry here plus its name in `VariantSpec.kind`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    retrieves: bool = (
        False  # its prompt gets `context` (retrieved passages) and it needs retrieval settings
    )
    trained: bool = False  # a fine-tuned model: needs base_model; readiness and export look at it


KINDS: dict[str, Kind] = {
    "prompt": Kind("prompt"),
    "rag": Kind("rag", retrieves=True),
    "fine-tuned": Kind("fine-tuned", trained=True),
}


# `retrieval.method` names. harness.retrieve.indexes registers each index class under its name
# here too (`@index("bm25")`), so the YAML layer accepts a new method without importing retrieval.
# "gold" is not an index: it hands each example its own gold passages (data.gold), the upper
# bound of retrieval (harness.retrieve.retrievers.GoldRetriever, `harness diagnose --probe gold`).
RETRIEVAL_METHODS: list[str] = ["bm25", "tfidf", "embedding", GOLD_METHOD := "gold"]
