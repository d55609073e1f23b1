"""Monte Carlo of the guard: how often does a variant that truly misses the margin pass?

    python benchmarks/guard_false_pass.py [--sims 1000] [--n 400] [--B 2000]

Each simulation draws a test set of n paired answers (baseline, variant) whose true accuracy
difference is Δ, scores both with harness.score.registry.accuracy, takes the paired interval of
harness.stats.paired at the guard's confidence (exactly what harness.stats.summary computes for the
guard metric: Newcombe's score interval for this 0/1 metric), and applies the guard's rule (harness.decide.rule.classify). Reported per true Δ: share of
pass / fail / inconclusive. The claim checked: at Δ = margin − 0.02 the false pass rate is ≤ 2.5%
at confidence 0.95 (by construction it is a one-sided test at 2.5%, so ≈ 2.5% even at Δ = margin).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

MARGIN = 0.05
P_BASELINE = 0.70
DISCORDANT = 0.08  # P(baseline right, variant wrong); P(variant right, baseline wrong) = this + Δ


def draw_pair(rng: np.random.Generator, n: int, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Paired 0/1 correctness with true accuracy difference `delta` (variant − baseline)."""
    q10, q01 = DISCORDANT, DISCORDANT + delta
    q11 = P_BASELINE - q10
    q00 = 1 - q11 - q10 - q01
    cell = rng.choice(4, size=n, p=[q11, q10, q01, q00])
    base = np.isin(cell, (0, 1))
    var = np.isin(cell, (0, 2))
    return base, var


def _table(correct: np.ndarray):
    from harness.score.table import make_table

    ids = [f"e{i:05d}" for i in range(len(correct))]
    targets = dict.fromkeys(ids, "yes")
    recs = [
        {"id": i, "repeat": 0, "parsed": "yes" if c else "no", "error": None}
        for i, c in zip(ids, correct, strict=True)
    ]
    return make_table(recs, targets, ["yes", "no"])


def simulate(
    delta: float,
    *,
    sims: int,
    n: int,
    B: int,
    margin: float = MARGIN,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Share of pass / fail / inconclusive verdicts over `sims` simulated test sets."""
    from harness.decide.rule import classify
    from harness.score.metrics import accuracy
    from harness.stats.paired import paired_interval

    rng = np.random.default_rng(seed)
    counts = {"pass": 0, "fail": 0, "inconclusive": 0}
    for s in range(sims):
        base, var = draw_pair(rng, n, delta)
        ra, rb = accuracy(_table(base)), accuracy(_table(var))
        d = paired_interval(ra, rb, confidence=confidence, B=B, seed=seed + s)
        counts[classify(d["ci_low"], d["ci_high"], margin)] += 1
    return {k: v / sims for k, v in counts.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--B", type=int, default=2000)
    ap.add_argument("--confidence", type=float, default=0.95)
    args = ap.parse_args(argv)
    print(
        f"n={args.n} examples, {args.sims} simulations, B={args.B}, margin {MARGIN}, confidence {args.confidence}"
    )
    ok = True
    for delta in (MARGIN - 0.02, MARGIN, MARGIN + 0.05):
        t0 = time.perf_counter()
        r = simulate(delta, sims=args.sims, n=args.n, B=args.B, confidence=args.confidence)
        se = (r["pass"] * (1 - r["pass"]) / args.sims) ** 0.5
        print(
            f"true Δ = {delta:+.2f}: pass {r['pass']:.2%} (±{1.96 * se:.2%}), fail {r['fail']:.2%}, "
            f"inconclusive {r['inconclusive']:.2%}  [{time.perf_counter() - t0:.1f}s]"
        )
        if delta < MARGIN and r["pass"] > 0.025:
            ok = False
    print("false pass rate at Δ = margin − 0.02 is ≤ 2.5%" if ok else "FALSE PASS RATE ABOVE 2.5%")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
