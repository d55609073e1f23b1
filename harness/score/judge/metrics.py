"""The judge's metrics (registered like any other) and its agreement statistics."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.score import registry as M
from harness.score.judge.config import check_args
from harness.score.metrics import mean_score, ratio
from harness.score.table import Table

# ---------------------------------------------------------------- agreement


def position_bias(lines: list[dict]) -> float | None:
    """Share of judged pairs where the judge picked the same position (A or B) in both orders:
    its verdict followed the order shown, not the answers (the swap turns those into ties)."""
    pairs: dict[tuple, dict[str, str]] = {}
    for line in lines:
        if line.get("kind") == "preference" and line.get("error") is None:
            pairs.setdefault((line["id"], line["repeat"]), {})[line["order"]] = line["winner"]
    both = [p for p in pairs.values() if set(p) == {"AB", "BA"}]
    if not both:
        return None
    return sum(1 for p in both if p["AB"] == p["BA"] != "tie") / len(both)


def kappa(a: list[int], b: list[int], scale: str) -> float | None:
    """Cohen's kappa (scikit-learn); quadratic weights on 1-5. None when undefined (< 2 pairs,
    or both raters constant on the same value)."""
    if len(a) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    if len(set(a) | set(b)) < 2:
        return None  # perfect agreement on one value: kappa is 0/0
    k = cohen_kappa_score(a, b, weights=None if scale == "pass_fail" else "quadratic")
    return None if np.isnan(k) else float(k)


def agreement(table: Table) -> dict:
    """{"repeats": kappa of sample 0 vs 1, "second_model": kappa of primary vs second, n pairs}."""
    rep_a, rep_b, sec_a, sec_b = [], [], [], []
    scale = "pass_fail"
    for r in table.records:
        j = r.get("judge")
        if not j:
            continue
        scale = j["scale"]
        s = j["samples"]
        if len(s) >= 2:
            rep_a.append(s[0])
            rep_b.append(s[1])
        if s and j.get("second"):
            sec_a.append(s[0])
            sec_b.append(j["second"][0])
    return {
        "repeats": kappa(rep_a, rep_b, scale) if rep_a else None,
        "repeats_pairs": len(rep_a),
        "second_model": kappa(sec_a, sec_b, scale) if sec_a else None,
        "second_model_pairs": len(sec_a),
    }


# ---------------------------------------------------------------- metrics


@M.metric("judge", tasks=(M.GENERATION,), check=check_args)
def judge_metric(table: Table, **_: Any) -> M.Decomposed | None:
    """Mean judge score as a fraction (pass_fail: pass rate; 1-5: (s-1)/4); judge errors excluded."""
    return mean_score(table, "judge")


@M.metric("preference", tasks=(M.GENERATION,), check=check_args)
def preference_metric(table: Table, **_: Any) -> M.Decomposed | None:
    """Win rate against the baseline's output, both orders, ties half (baseline: 0.5)."""
    return mean_score(table, "preference")


@M.metric("judge_agreement", quality=False, tasks=(M.GENERATION,))
def judge_agreement(table: Table, **_: Any) -> float | None:
    """Cohen's kappa between judge samples (repeats), else between the two judge models."""
    a = agreement(table)
    return a["repeats"] if a["repeats"] is not None else a["second_model"]


@M.metric("style_consistency", tasks=(M.GENERATION,))
def style_consistency(table: Table, **_: Any) -> M.Decomposed | None:
    """Share of examples (>= 2 variant samples) whose samples the judge rates within one point
    of each other (pass_fail: all the same verdict)."""
    per_ex: dict[int, list[float]] = {}
    scale = None
    for e, r in zip(table.ex.tolist(), table.records, strict=True):
        j = r.get("judge")
        if j and j["samples"]:
            scale = j["scale"]
            per_ex.setdefault(e, []).append(float(np.mean(j["samples"])))
        elif r.get("error") is not None:
            per_ex.setdefault(e, []).append(float("nan"))  # an error breaks consistency
    stats = np.zeros((table.n_examples, 2))
    tol = 0.0 if scale == "pass_fail" else 1.0
    for e, vals in per_ex.items():
        if len(vals) >= 2:
            v = np.array(vals)
            ok = not np.isnan(v).any() and (v.max() - v.min()) <= tol + 1e-9
            stats[e] = (float(ok), 1.0)
    if stats[:, 1].sum() == 0:
        return None
    return M.Decomposed(stats, ratio)
