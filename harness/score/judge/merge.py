"""Judgements onto the records (scores, reasons, raw samples) and the summary's judge section."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.score import registry as M
from harness.score.judge.config import configs
from harness.score.judge.metrics import agreement, position_bias
from harness.score.judge.prompts import normalized, vote
from harness.score.table import make_table

# ---------------------------------------------------------------- merging and summary


def latest_by_key(records: list[dict]) -> dict[tuple, dict]:
    """Records by (id, repeat); the last line wins (as harness.score.registry.make_table)."""
    return {(r["id"], r.get("repeat", 0)): r for r in records}


def merge_scores(suite: Any, records: dict[str, list[dict]], lines: dict[str, list[dict]]) -> None:
    """Put the judgements on the variant records (in place) so the metrics can read them."""
    cfgs = {c.kind: c for c in configs(suite)}
    baseline = suite.baseline
    for variant, recs in records.items():
        by_rec: dict[tuple, list[dict]] = {}
        for line in lines.get(variant, []):
            by_rec.setdefault((line["id"], line["repeat"]), []).append(line)
        base = latest_by_key(records.get(baseline, []))
        for r in recs:
            got = by_rec.get((r["id"], r.get("repeat", 0)), [])
            scores = r.setdefault("scores", {})
            reasons = r.setdefault("reasons", {})
            if "judge" in cfgs:
                _merge_judge(cfgs["judge"], r, got, scores, reasons)
            if "preference" in cfgs and baseline in records:
                b = base.get((r["id"], r.get("repeat", 0))) or base.get((r["id"], 0))
                _merge_preference(variant == baseline, r, b, got, scores, reasons)


def _merge_judge(cfg, r, got, scores, reasons) -> None:
    if r.get("error") is not None:
        scores["judge"], reasons["judge"] = 0.0, f"error: {r['error']}"
        return
    mine = [g for g in got if g["kind"] == "judge"]
    primary = sorted(
        (g for g in mine if g["model"] == cfg.model and g.get("error") is None),
        key=lambda g: g["judge_repeat"],
    )
    second = [g for g in mine if g["model"] == cfg.second_model and g.get("error") is None]
    r["judge"] = {
        "scale": cfg.scale,
        "samples": [g["score"] for g in primary],
        "second": [g["score"] for g in second] if cfg.second_model else None,
        "errors": sum(1 for g in mine if g.get("error") is not None),
    }
    if primary:  # a judge error leaves the record unscored: never a pass
        scores["judge"] = float(np.mean([normalized(g["score"], cfg.scale) for g in primary]))
        reasons["judge"] = primary[0].get("reason", "")
    else:
        scores.pop("judge", None)
        reasons["judge"] = "judge error: " + "; ".join(
            {str(g.get("error")) for g in mine} or {"not judged"}
        )


def _merge_preference(is_baseline, r, b, got, scores, reasons) -> None:
    if is_baseline:
        scores["preference"] = 0.5  # the baseline against itself: a tie by definition
        return
    if b is None:
        scores.pop("preference", None)
        reasons["preference"] = "the baseline has no answer for this example: not scored"
        return
    if r.get("error") is not None or b.get("error") is not None:
        # An error is a wrong answer: losing to an answer, beating a baseline error.
        mine_err, base_err = r.get("error") is not None, b.get("error") is not None
        scores["preference"] = 0.5 if (mine_err and base_err) else float(base_err)
        reasons["preference"] = "decided by a variant error, without a judge"
        return
    if (r.get("output") or "").strip() == (b.get("output") or "").strip():
        scores["preference"] = 0.5
        reasons["preference"] = "the same answer as the baseline: a tie"
        return
    votes = {g["order"]: g for g in got if g["kind"] == "preference" and g.get("error") is None}
    if set(votes) != {"AB", "BA"}:
        scores.pop("preference", None)
        reasons["preference"] = "judge error in one or both orders: not scored"
        return
    ab, ba = vote(votes["AB"]["winner"], "A"), vote(votes["BA"]["winner"], "B")
    scores["preference"] = (ab + ba) / 2
    reasons["preference"] = f"variant shown first: {_word(ab)}; shown second: {_word(ba)}"


def _word(v: float) -> str:
    return {1.0: "preferred", 0.5: "tie", 0.0: "not preferred"}[v]


# The stage's metrics shown in summary["judge"]; their values and CIs are the summary's own.
SECTION_METRICS = ("judge", "preference", "judge_agreement", "style_consistency")


def judge_section(suite, dataset, records, lines) -> dict:
    """summary["judge"]: cost, calls, errors (apart from the variants'), agreement and, per
    variant, a slot for each declared judge metric that the summary fills with its interval."""

    all_lines = [line for ls in lines.values() for line in ls]
    costs = [line.get("cost_usd") for line in all_lines if line.get("error") is None]
    errors = [line for line in all_lines if line.get("error") is not None]
    by_reason: dict[str, int] = {}
    for line in errors:
        kind = str(line["error"]).split(":", 1)[0]
        by_reason[kind] = by_reason.get(kind, 0) + 1
    targets = {e.id: e.target for e in dataset.test}
    per_variant: dict[str, dict] = {}
    for variant, recs in records.items():
        table = make_table(recs, targets)
        out: dict[str, Any] = {}
        for name in SECTION_METRICS:
            if _declared(suite, name):
                out[name] = None  # the summary's value and CI (harness.stats.summary.judge_section)
        if _declared(suite, "judge"):
            out["agreement"] = agreement(table)
            out["unscored"] = sum(
                1 for r in table.records if r.get("error") is None and "judge" not in r["scores"]
            )
        if _declared(suite, "preference") and variant != suite.baseline:
            prefs = [r["scores"].get("preference") for r in table.records]
            out["wins"] = sum(1 for p in prefs if p == 1.0)
            out["losses"] = sum(1 for p in prefs if p == 0.0)
            out["ties_or_split"] = sum(1 for p in prefs if p is not None and 0 < p < 1)
            out["unscored_preference"] = sum(1 for p in prefs if p is None)
            out["position_bias"] = position_bias(lines.get(variant, []))
        per_variant[variant] = out
    return {
        "models": sorted({m for c in configs(suite) for m in c.models}),
        "calls": len(all_lines),
        "cached_calls": sum(1 for line in all_lines if line.get("cached")),
        "errors": len(errors),
        "errors_by_reason": by_reason,
        "cost_usd": None if any(c is None for c in costs) else float(sum(costs)),
        "tokens_in": int(sum(line.get("tokens_in") or 0 for line in all_lines)),
        "tokens_out": int(sum(line.get("tokens_out") or 0 for line in all_lines)),
        "variants": per_variant,
    }


def _declared(suite, name: str) -> bool:
    names = [M.entry_name(e)[0] for e in suite.spec.metrics]
    if name == "judge_agreement":
        return "judge" in names and name in names
    return name in names
