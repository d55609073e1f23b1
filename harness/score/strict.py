"""`strict_accuracy`: right *and* in the label format (a metric added the way a plugin adds one).

`accuracy` is forgiving on purpose: `{"intent": "Pay Bill"}` counts for the label `pay_bill`
after normalisation, which is what the answer means. A system downstream that matches labels
exactly would route it nowhere, so `strict_accuracy` counts an answer only when it is right and
states the label exactly as the label set spells it (bare, as a JSON string, or as a string field
of a JSON object, with no code fence or repair), and, when the suite has an `output_schema`,
the output validates against it. Classification suites only: the label set is the format.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from harness.score.metrics import C_ONLY, ratio
from harness.score.registry import Decomposed, metric
from harness.score.scorer import Seen, record_score
from harness.score.table import Table


@record_score("strict_accuracy")
def strict_correct(seen: Seen) -> float | None:
    """1 when the parsed label is the target and the output states it verbatim."""
    if seen.target is None:
        return None
    label = str(seen.target)
    return float(seen.answer == label and label in _stated(seen.output))


def _stated(output: str) -> list[str]:
    """The answers an output states as written: the bare text, or a strict JSON document's
    string (or its object's string fields)."""
    text = output.strip()
    try:
        value: Any = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return [text]
    if isinstance(value, dict):
        return [v for v in value.values() if isinstance(v, str)]
    return [value] if isinstance(value, str) else []


@metric("strict_accuracy", tasks=C_ONLY)
def strict_accuracy(table: Table) -> Decomposed | None:
    """Share of calls right and in format: the label spelled exactly, the schema (if any) met."""
    if table.n_records == 0:
        return None
    # format_ok is schema validity when the suite has an output_schema (label membership,
    # implied by an exact spelling, otherwise); errors score 0 on both.
    hits = np.array(
        [
            (r.get("scores") or {}).get("strict_accuracy", 0.0)
            * (r.get("scores") or {}).get("format_ok", 1.0)
            for r in table.records
        ],
        dtype=float,
    )
    stats = np.c_[table.per_example(hits), table.per_example(np.ones(table.n_records))]
    return Decomposed(stats, ratio, binary=bool(np.all(stats[:, 1] == 1)))
