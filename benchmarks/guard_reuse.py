"""Monte Carlo of adaptive test-set reuse: how often does a lineage that tries every iteration
pass, when every candidate truly misses the margin?

    python benchmarks/guard_reuse.py [--sims 500] [--n 400] [--B 1000] [--iterations 3]

Each simulated lineage has one test set and one baseline's answers; each of its `iterations`
candidates answers the same examples (paired with the baseline, true Δ = margin − 0.02). Each
iteration is judged by the guard: the paired interval of harness.stats.paired (Newcombe's, for
accuracy), the rule
(harness.decide.rule.classify) and the level the guard tests it at (harness.decide.rule.holm at
α / max_iterations, what harness.decide.guard.decide passes it). The lineage passes falsely when
any iteration passes. Printed: that rate with the reuse level, and without it (each iteration at
α, as before the protocol): the claim is ≤ 2.5% (one-sided α at confidence 0.95).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from guard_false_pass import DISCORDANT, MARGIN, P_BASELINE, _table


def candidate(rng: np.random.Generator, base: np.ndarray, delta: float) -> np.ndarray:
    """A candidate's 0/1 answers on the baseline's examples, true Δ = `delta`: wrong where the
    baseline is right with P(DISCORDANT | right), right where it is wrong with P(DISCORDANT + Δ |
    wrong) (the discordant cells of guard_false_pass.draw_pair)."""
    u = rng.random(len(base))
    lose = DISCORDANT / P_BASELINE
    win = (DISCORDANT + delta) / (1 - P_BASELINE)
    return np.where(base, u >= lose, u < win)


def interval(base, var, *, B: int, seed: int, confidence: float) -> dict:
    """The interval of (candidate − baseline) accuracy as the run computes it: accuracy is a 0/1
    metric, so harness.stats.paired gives Newcombe's paired score interval (B and seed matter
    only for a metric that is bootstrapped)."""
    from harness.score.metrics import accuracy
    from harness.stats.paired import paired_interval

    d = paired_interval(
        accuracy(_table(base)), accuracy(_table(var)), confidence=confidence, B=B, seed=seed
    )
    return {**d, "threshold": MARGIN, "confidence": confidence}


def verdict(d: dict, alpha: float | None) -> str:
    """The guard's verdict of one iteration: its CI against +margin, a pass at one-sided `alpha`
    (None: the confidence's own α, as with a single iteration)."""
    from harness.decide.rule import classify, holm

    status = classify(d["ci_low"], d["ci_high"], MARGIN)
    v = {"status": status, "verdict": status, "flags": [], "delta": d}
    holm({"ft": v}, "holm", alpha=alpha)
    return v["verdict"]


def simulate(
    delta: float, *, sims: int, n: int, B: int, iterations: int, confidence: float, seed: int = 0
):
    """(false-pass rate with the reuse level, without it) over `sims` lineages at true Δ."""
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    reuse = naive = 0
    for s in range(sims):
        base = rng.random(n) < P_BASELINE
        ds = [
            interval(
                base,
                candidate(rng, base, delta),
                B=B,
                seed=seed + s * iterations + k,
                confidence=confidence,
            )
            for k in range(iterations)
        ]
        naive += any(verdict(d, None) == "pass" for d in ds)
        reuse += any(verdict(d, alpha / iterations) == "pass" for d in ds)
    return reuse / sims, naive / sims


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=500)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--B", type=int, default=1000)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--confidence", type=float, default=0.95)
    args = ap.parse_args(argv)
    alpha = (1 - args.confidence) / 2
    print(
        f"{args.sims} lineages × {args.iterations} iterations on one test set each, n={args.n}, "
        f"B={args.B}, margin {MARGIN}, confidence {args.confidence}"
    )
    ok = True
    for delta in (MARGIN - 0.02, MARGIN):
        t0 = time.perf_counter()
        reuse, naive = simulate(
            delta,
            sims=args.sims,
            n=args.n,
            B=args.B,
            iterations=args.iterations,
            confidence=args.confidence,
        )
        se = (reuse * (1 - reuse) / args.sims) ** 0.5
        print(
            f"true Δ = {delta:+.2f}: lineage false pass at α/{args.iterations} per iteration "
            f"{reuse:.2%} (±{1.96 * se:.2%}); each at α (no reuse accounting) {naive:.2%}  "
            f"[{time.perf_counter() - t0:.0f}s]"
        )
        if delta < MARGIN:  # the claim; at Δ = margin the union bound gives ≈ α itself
            ok = ok and reuse <= alpha
    print(f"false pass ≤ {alpha:.1%} (one-sided α)" if ok else f"FALSE PASS ABOVE {alpha:.1%}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
