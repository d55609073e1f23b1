"""CONTRIBUTING's how-to, done once: a metric with an option is this one file (plus one import).

A built-in would live in harness/score/ and be imported by harness/score/__init__.py; a test
imports this module instead. Nothing else in the harness changes.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from harness.score.metrics import ratio
from harness.score.registry import Decomposed, metric
from harness.score.table import Table


class StartsWithOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str


@metric("starts_with", options=StartsWithOptions)
def starts_with(table: Table, prefix: str) -> Decomposed | None:
    """Share of answered outputs that start with `prefix` (an error counts as a miss)."""
    if table.n_records == 0:
        return None
    hits = np.array(
        [
            float(r.get("error") is None and str(r.get("output") or "").startswith(prefix))
            for r in table.records
        ]
    )
    stats = np.c_[table.per_example(hits), table.per_example(np.ones_like(hits))]
    return Decomposed(stats, ratio)
