"""How one record (a line of results/<variant>.jsonl) reads to a person: its score and reasons.

The report's worst-examples table and MLflow's per-example table show the same words.
"""

from __future__ import annotations

from typing import Any

# The per-record 0/1 score that says right or wrong, by the task that writes it.
RIGHT_SCORES = ("correct", "exact_record", "exact_match")


def example_score(record: dict[str, Any]) -> float:
    """One number per record for ranking: `correct` when scored, else the mean score; errors 0."""
    if record.get("error"):
        return 0.0
    scores = {k: v for k, v in (record.get("scores") or {}).items() if isinstance(v, (int, float))}
    if "correct" in scores:
        return float(scores["correct"])
    return sum(scores.values()) / len(scores) if scores else 0.0


def right_score(record: dict[str, Any]) -> float | None:
    """The record's right/wrong score; None when the task scores neither (e.g. a judged text)."""
    if record.get("error"):
        return 0.0
    scores = record.get("scores") or {}
    for key in RIGHT_SCORES:
        if isinstance(scores.get(key), (int, float)):
            return float(scores[key])
    return None


def given_answer(record: dict[str, Any]) -> Any:
    """What the model answered: the parsed answer, else its raw output, else the error."""
    if record.get("error") is not None:
        return f"error: {record['error']}"
    return record.get("parsed") if record.get("parsed") is not None else record.get("output")


def reason_text(record: dict[str, Any]) -> str:
    if record.get("error"):
        return f"error: {record['error']}"
    reasons = record.get("reasons") or {}
    return "; ".join(f"{k}: {v}" for k, v in reasons.items() if v)


def judge_text(record: dict[str, Any]) -> str:
    """The judge's raw scores of one record, e.g. "4, 5 (1-5); second judge: 3"."""
    j = record.get("judge") or {}
    if not j:
        return ""
    samples = ", ".join(str(x) for x in j.get("samples") or []) or "none"
    text = f"{samples} ({j.get('scale', '?')})"
    if j.get("second"):
        text += "; second judge: " + ", ".join(str(x) for x in j["second"])
    if j.get("errors"):
        text += f"; {j['errors']} judge error(s)"
    return text


def retrieved_text(record: dict[str, Any]) -> str:
    """The passages retrieved for one record: "id (score), ..." in rank order."""
    out = []
    for p in record.get("retrieved") or []:
        if isinstance(p, dict):
            score = p.get("score")
            out.append(
                f"{p.get('id')} ({score:.3g})"
                if isinstance(score, (int, float))
                else str(p.get("id"))
            )
    return ", ".join(out)
