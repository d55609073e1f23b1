"""What the judge is asked and how its answers are read (scores, winners, votes)."""

from __future__ import annotations

import json
from typing import Any

from harness.score.judge.config import JudgeConfig
from harness.score.scorer import parse_json_lenient

# ---------------------------------------------------------------- prompts and answers


def score_format(scale: str, model: str = "") -> dict:
    """response_format asking for {score, reason} on the scale (llama.cpp turns it into a grammar)."""
    values = [0, 1] if scale == "pass_fail" else [1, 2, 3, 4, 5]
    return _json_schema(
        "judgement",
        {"score": {"type": "integer", "enum": values}, "reason": _reason_schema(model)},
        ["score", "reason"],
    )


def preference_format(model: str = "") -> dict:
    return _json_schema(
        "preference",
        {"winner": {"type": "string", "enum": ["A", "B", "tie"]}, "reason": _reason_schema(model)},
        ["winner", "reason"],
    )


def _reason_schema(model: str) -> dict:
    # The local model writes the (alphabetically first) reason until max_tokens runs out and never
    # reaches the score; a length cap in its grammar stops that. Providers' strict structured
    # outputs may reject maxLength, so only local models get it.
    if model.startswith("local/"):
        return {"type": "string", "maxLength": 160}
    return {"type": "string"}


def _json_schema(name: str, props: dict, required: list[str]) -> dict:
    schema = {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


def _inputs_text(example: Any) -> str:
    inputs = example.inputs or {}
    if len(inputs) == 1:
        return str(next(iter(inputs.values())))
    return "\n".join(f"{k}: {v}" for k, v in inputs.items())


def _reference_block(example: Any) -> str:
    t = getattr(example, "target", None)
    return "" if t in (None, "") else f"\n\n[REFERENCE ANSWER]\n{t}"


def judge_messages(cfg: JudgeConfig, example: Any, output: str) -> list[dict]:
    scale = (
        "score 1 if the response meets the rubric, 0 if it does not"
        if cfg.scale == "pass_fail"
        else "score from 1 (does not meet the rubric at all) to 5 (meets it fully)"
    )
    system = (
        "You are a strict evaluator. Grade the RESPONSE against the RUBRIC only. "
        f'Answer only JSON {{"score": ..., "reason": "one sentence"}}: {scale}.'
    )
    user = (
        f"[RUBRIC]\n{cfg.rubric}\n\n[INPUT]\n{_inputs_text(example)}"
        f"{_reference_block(example)}\n\n[RESPONSE]\n{output}"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def preference_messages(cfg: JudgeConfig, example: Any, first: str, second: str) -> list[dict]:
    system = (
        "You compare two responses to the same input against the RUBRIC. "
        'Answer only JSON {"winner": "A" | "B" | "tie", "reason": "one sentence"}.'
    )
    user = (
        f"[RUBRIC]\n{cfg.rubric}\n\n[INPUT]\n{_inputs_text(example)}"
        f"{_reference_block(example)}\n\n[RESPONSE A]\n{first}\n\n[RESPONSE B]\n{second}"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_score(text: str | None, scale: str) -> tuple[int, str]:
    """(score, reason) from the judge's JSON; ValueError with the reason when it is not valid."""
    obj = _json_object(text)
    score = obj.get("score")
    allowed = (0, 1) if scale == "pass_fail" else (1, 2, 3, 4, 5)
    if isinstance(score, str) and score.strip().lower() in ("pass", "fail"):
        score = int(score.strip().lower() == "pass")
    if isinstance(score, float) and score.is_integer():
        score = int(score)
    if isinstance(score, bool) or score not in allowed:
        raise ValueError(f"judge_invalid: score {score!r} is not one of {list(allowed)}")
    return int(score), str(obj.get("reason", ""))[:300]


def parse_winner(text: str | None) -> tuple[str, str]:
    """("A" | "B" | "tie", reason); ValueError when the answer is not one of them."""
    obj = _json_object(text)
    w = str(obj.get("winner", "")).strip()
    w = {"a": "A", "b": "B", "tie": "tie"}.get(w.lower(), w)
    if w not in ("A", "B", "tie"):
        raise ValueError(f"judge_invalid: winner {obj.get('winner')!r} is not A, B or tie")
    return w, str(obj.get("reason", ""))[:300]


def _json_object(text: str | None) -> dict:
    try:  # small models put raw newlines inside strings: strict=False accepts control characters
        value = json.loads(text or "", strict=False)
    except json.JSONDecodeError:
        value, _ = parse_json_lenient(text or "")
    if not isinstance(value, dict):
        raise ValueError(f"judge_invalid: not a JSON object: {str(text)[:80]!r}")
    return value


def normalized(score: float, scale: str) -> float:
    """A judge score as a fraction (metric values are fractions): 1-5 -> (s - 1) / 4."""
    return float(score) if scale == "pass_fail" else (float(score) - 1.0) / 4.0


def vote(winner: str, variant_side: str) -> float:
    """One order's vote for the variant: 1 win, 0.5 tie, 0 loss."""
    return 0.5 if winner == "tie" else float(winner == variant_side)
