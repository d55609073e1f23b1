"""`harness compare RUN_A RUN_B`: did anything regress between two runs of one suite?

For each variant present in both runs, every declared metric is recomputed from the
results/*.jsonl records. When both runs scored the same examples the difference (B − A) gets the
run's own paired interval (harness.stats.paired: Newcombe's score interval for a 0/1 metric, the
paired bootstrap otherwise); on different examples, the independent-samples interval. A quality metric regressed when the whole interval lies
below −tolerance: a drop the data shows, not noise. Operational metrics (latency, cost) are
reported without gating, because their units differ and the tolerance is in metric units.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import SuiteError
from harness.rundir.reader import load_run
from harness.score import registry as M
from harness.score.table import make_table
from harness.stats import bootstrap as S
from harness.stats import paired as P
from harness.stats.numbers import value, with_ci


def compare_runs(
    run_a: str | Path,
    run_b: str | Path,
    *,
    tolerance: float = 0.0,
    confidence: float = 0.95,
    B: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Per-variant metric deltas (B − A) with CIs, the regressions, and the exit code (0 or 1)."""

    if tolerance < 0:
        raise SuiteError(
            f"--tolerance must be >= 0 (got {tolerance}) — it is the drop you accept, in metric units"
        )
    a, b = load_run(run_a), load_run(run_b)
    if a.suite_name != b.suite_name:
        raise SuiteError(
            f"{a.path} is suite {a.suite_name!r} but {b.path} is suite {b.suite_name!r} — "
            "compare two runs of the same suite"
        )
    B = B or S.DEFAULT_B
    seed = S.DEFAULT_SEED if seed is None else seed
    entries = [M.entry_name(e) for e in (b.suite.get("metrics") or a.suite.get("metrics") or [])]
    if not entries:  # an old run without a resolved suite: the summary's metric names
        entries = [(n, {}) for n in (b.summary.get("metrics") or [])]
    variants = {
        name: _compare_variant(a, b, name, entries, tolerance, confidence, B, seed)
        for name in b.variants
        if name in a.records and name in b.records
    }
    regressed = any(v["regressed"] for v in variants.values())
    return {
        "suite": b.suite_name,
        "run_a": str(a.path),
        "run_b": str(b.path),
        "suite_changed": a.summary.get("suite_hash") != b.summary.get("suite_hash"),
        "data_changed": a.summary.get("data_hashes") != b.summary.get("data_hashes"),
        "tolerance": tolerance,
        "confidence": confidence,
        "variants": variants,
        "only_in_a": [v for v in a.records if v not in b.records],
        "only_in_b": [v for v in b.records if v not in a.records],
        "exit_code": 1 if regressed else 0,
    }


def _compare_variant(a, b, name, entries, tolerance, confidence, B, seed) -> dict[str, Any]:
    """One variant's rows (B − A) and whether the two runs scored the same examples."""
    targets_a = {k: v.get("expected") for k, v in a.examples.items()}
    targets_b = {k: v.get("expected") for k, v in b.examples.items()}
    recs_a, recs_b = a.records[name], b.records[name]
    ids_a = {r["id"] for r in recs_a if r.get("id") in targets_a}
    ids_b = {r["id"] for r in recs_b if r.get("id") in targets_b}
    common = ids_a & ids_b
    # Paired when both runs scored the same examples with the same expected answers.
    paired = bool(common) and ids_a == ids_b and all(targets_a[i] == targets_b[i] for i in common)
    ta = make_table(recs_a, targets_a, a.labels or b.labels)
    tb = make_table(recs_b, targets_b, b.labels or a.labels)
    rows: dict[str, dict] = {}
    for metric, args in entries:
        mdef = M.lookup(metric)
        if mdef is None:
            continue
        row = _metric_row(
            mdef,
            M.compute(metric, ta, args),
            M.compute(metric, tb, args),
            paired,
            confidence,
            B,
            seed,
        )
        row["regressed"] = _regressed(row, tolerance)
        rows[metric] = row
    return {
        "paired": paired,
        "n_a": len(ids_a),
        "n_b": len(ids_b),
        "n_common": len(common),
        "metrics": rows,
        "regressed": [m for m, r in rows.items() if r["regressed"]],
    }


def _metric_row(mdef, ra, rb, paired: bool, confidence: float, B: int, seed: int) -> dict:
    va, vb = M.value_of(ra), M.value_of(rb)
    row = {
        "a": va,
        "b": vb,
        "value": None if va is None or vb is None else vb - va,
        "ci_low": None,
        "ci_high": None,
        "p_value": None,
        "quality": mdef.quality,
        "higher_is_better": mdef.higher_is_better,
    }
    if isinstance(ra, M.Decomposed) and isinstance(rb, M.Decomposed) and row["value"] is not None:
        # Same examples in the same (id) order; the per-class columns may differ.
        interval = P.paired_interval if paired else P.independent_interval
        bounds = M.figure_bounds(mdef.name, difference=True)
        d = interval(ra, rb, confidence=confidence, B=B, seed=seed, bounds=bounds)
        row.update(
            ci_low=d["ci_low"], ci_high=d["ci_high"], p_value=d["p_value"], interval=d["interval"]
        )
        if d.get("degenerate"):
            row["degenerate"] = True
    return row


def _regressed(row: dict, tolerance: float) -> bool:
    """A quality metric whose interval lies wholly below −tolerance (point value without a CI)."""
    if not row["quality"] or row["value"] is None:
        return False
    sign = 1.0 if row["higher_is_better"] else -1.0
    bound = row["ci_high"] if sign > 0 else row["ci_low"]
    worst_case = row["value"] if bound is None else bound
    return sign * worst_case < -tolerance


def render(result: dict[str, Any]) -> str:
    """Plain-text table of the comparison for the terminal."""
    lines = [
        f"{result['suite']}: {result['run_b']} vs {result['run_a']} (B − A, {result['confidence']:.0%} CI)"
    ]
    if result["suite_changed"]:
        lines.append("  note: the suite changed between the runs")
    if result["data_changed"]:
        lines.append("  note: the data files changed between the runs")
    for name, v in result["variants"].items():
        how = "paired" if v["paired"] else f"unpaired ({v['n_a']} vs {v['n_b']} examples)"
        lines.append(f"  {name} [{how}]")
        for metric, r in v["metrics"].items():
            if r["value"] is None:
                lines.append(f"    {metric:<20} n/a")
                continue
            mark = "  REGRESSED" if r["regressed"] else ""
            delta = with_ci(r, metric, delta=True)
            lines.append(
                f"    {metric:<20} {value(r['a'], metric)} → {value(r['b'], metric)}  Δ {delta}{mark}"
            )
    for side in ("only_in_a", "only_in_b"):
        if result[side]:
            lines.append(f"  {side.replace('_', ' ')}: {', '.join(result[side])}")
    if result["exit_code"]:
        worst = [
            f"{n}: {', '.join(v['regressed'])}"
            for n, v in result["variants"].items()
            if v["regressed"]
        ]
        lines.append(f"regression beyond tolerance {result['tolerance']:g} — {'; '.join(worst)}")
    else:
        lines.append(f"no regression beyond tolerance {result['tolerance']:g}")
    return "\n".join(lines)
