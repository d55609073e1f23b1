"""Monte Carlo of the guard over several guarded variants: family-wise false pass and power.

    python benchmarks/guard_family.py [--sims 1000] [--n 300] [--k 10] [--B 1000]

Each simulation draws one baseline's n answers and k variants paired with it (each variant's
true accuracy difference is Δ), takes each variant's paired bootstrap CI at the guard's
confidence (harness.stats.bootstrap, as harness.stats.summary does), applies the guard's rule
(harness.decide.rule.classify) and then Holm across the k variants (harness.decide.rule.holm).
Reported: the family-wise false pass rate (any variant passes) at Δ = margin − 0.02, with and
without Holm, and the power (share of variants that pass; all pass) at Δ = margin + 0.10.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from guard_false_pass import DISCORDANT, MARGIN, P_BASELINE, _table


def draw_family(rng, n: int, k: int, delta: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """One baseline and k variants, each with P(base right, variant wrong) = DISCORDANT and
    P(variant right, base wrong) = DISCORDANT + delta, independent given the baseline."""
    base = rng.random(n) < P_BASELINE
    lose = DISCORDANT / P_BASELINE  # P(variant wrong | base right)
    gain = (DISCORDANT + delta) / (1 - P_BASELINE)  # P(variant right | base wrong)
    variants = [np.where(base, rng.random(n) >= lose, rng.random(n) < gain) for _ in range(k)]
    return base, variants


def simulate(delta, *, sims, n, k, B, margin=MARGIN, confidence=0.95, seed=0) -> dict:
    from harness.decide.rule import classify, holm
    from harness.score.metrics import accuracy
    from harness.stats.bootstrap import paired_bootstrap

    rng = np.random.default_rng(seed)
    any_raw = any_holm = all_holm = 0
    passes_raw = passes_holm = 0
    for s in range(sims):
        base, variants = draw_family(rng, n, k, delta)
        ra = accuracy(_table(base))
        verdicts = {}
        for j, var in enumerate(variants):
            rb = accuracy(_table(var))
            d = paired_bootstrap(
                ra.stats, ra.combine, rb.stats, rb.combine, confidence=confidence, B=B, seed=s
            )
            d = {**d, "threshold": margin, "confidence": confidence}
            status = classify(d["ci_low"], d["ci_high"], margin)
            verdicts[f"v{j}"] = {"delta": d, "status": status, "verdict": status, "flags": []}
        raw = sum(v["verdict"] == "pass" for v in verdicts.values())
        holm(verdicts)
        adjusted = sum(v["verdict"] == "pass" for v in verdicts.values())
        any_raw += raw > 0
        any_holm += adjusted > 0
        all_holm += adjusted == k
        passes_raw += raw
        passes_holm += adjusted
    return {
        "any_pass_unadjusted": any_raw / sims,
        "any_pass_holm": any_holm / sims,
        "all_pass_holm": all_holm / sims,
        "pass_share_unadjusted": passes_raw / (sims * k),
        "pass_share_holm": passes_holm / (sims * k),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--B", type=int, default=1000)
    args = ap.parse_args(argv)
    print(
        f"{args.k} guarded variants, n={args.n}, {args.sims} simulations, B={args.B}, margin {MARGIN}"
    )
    t0 = time.perf_counter()
    miss = simulate(MARGIN - 0.02, sims=args.sims, n=args.n, k=args.k, B=args.B)
    se = (miss["any_pass_holm"] * (1 - miss["any_pass_holm"]) / args.sims) ** 0.5
    print(
        f"true Δ = margin − 0.02: family-wise false pass {miss['any_pass_holm']:.2%} "
        f"(±{1.96 * se:.2%}) with Holm, {miss['any_pass_unadjusted']:.2%} without "
        f"[{time.perf_counter() - t0:.0f}s]"
    )
    t0 = time.perf_counter()
    hit = simulate(MARGIN + 0.10, sims=args.sims, n=args.n, k=args.k, B=args.B, seed=1)
    print(
        f"true Δ = margin + 0.10: power per variant {hit['pass_share_holm']:.2%} with Holm "
        f"({hit['pass_share_unadjusted']:.2%} without), all {args.k} pass {hit['all_pass_holm']:.2%} "
        f"[{time.perf_counter() - t0:.0f}s]"
    )
    ok = miss["any_pass_holm"] <= 0.05
    print("family-wise false pass ≤ 5%" if ok else "FAMILY-WISE FALSE PASS ABOVE 5%")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
