"""The table a metric reads: the scored records of one variant, grouped by example."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


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
