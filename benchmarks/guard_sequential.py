"""Monte Carlo of `guard.sequential`: false-pass rate and spend against the fixed design.

    python benchmarks/guard_sequential.py [--sims 300] [--n 400] [--looks 4] [--B 500]

Each simulation draws n paired answers (baseline, variant) with true accuracy difference Δ
(benchmarks/guard_false_pass.draw_pair) in the order the run would call them, and looks after
each of `looks` equal stages: the paired interval on the examples so far (harness.stats.paired,
as harness.stats.summary does: Newcombe's score interval for this 0/1 metric), the guard's rule
(harness.decide.rule.classify), then the look's decision with its share of α from the
O'Brien–Fleming-type spending function (harness.decide.rule.spending_levels and
decided_at_look, exactly what the run calls). It stops at the first look where the hypothesis
is decided. Reported per true Δ: pass rate and the mean share of the test set called (spend),
next to the fixed design (one look on all n at the full α).

The edge case of issue #28 (`--concordant-first`): n = 200, Δ = margin + 0.10, and every pair of
the first look agrees (drawn from the concordant cells only; the rest as usual). The sequential
guard's false-fail rate (a fail although the target holds) must not exceed the fixed design's
on the same answers.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from guard_false_pass import MARGIN, _table, draw_pair


def _verdict(base, var, confidence, B, seed, margin):
    from harness.decide.rule import classify
    from harness.score.metrics import accuracy
    from harness.stats.paired import paired_interval

    ra, rb = accuracy(_table(base)), accuracy(_table(var))
    d = paired_interval(ra, rb, confidence=confidence, B=B, seed=seed)
    d = {**d, "threshold": margin, "confidence": confidence}
    status = classify(d["ci_low"], d["ci_high"], margin)
    return {"delta": d, "status": status, "verdict": status, "flags": []}


def concordant_first(rng, n: int, delta: float, first: int):
    """draw_pair, with the first `first` pairs redrawn until every one of them agrees."""
    base, var = draw_pair(rng, n, delta)
    for i in range(first):
        while base[i] != var[i]:
            b, v = draw_pair(rng, 1, delta)
            base[i], var[i] = b[0], v[0]
    return base, var


def simulate(
    delta, *, sims, n, looks, B, margin=MARGIN, confidence=0.95, seed=0, concordant=False
) -> dict:
    from harness.decide.rule import decided_at_look, holm, look_sizes, spending_levels

    rng = np.random.default_rng(seed)
    sizes = look_sizes(n, looks)
    levels = spending_levels((1 - confidence) / 2, looks)
    seq_pass = fixed_pass = seq_fail = fixed_fail = first_look_fail = 0
    called = 0
    for s in range(sims):
        if concordant:
            base, var = concordant_first(rng, n, delta, sizes[0])
        else:
            base, var = draw_pair(rng, n, delta)
        for k, size in enumerate(sizes):
            v = {"h": _verdict(base[:size], var[:size], confidence, B, s, margin)}
            if k == looks - 1:
                holm(v, alpha=levels[k])
                break
            if decided_at_look(v, "holm", levels[k]):
                break
        seq_pass += v["h"]["verdict"] == "pass"
        seq_fail += v["h"]["verdict"] == "fail"
        first_look_fail += v["h"]["verdict"] == "fail" and k == 0
        called += size
        fixed = {"h": _verdict(base, var, confidence, B, s, margin)}
        holm(fixed)
        fixed_pass += fixed["h"]["verdict"] == "pass"
        fixed_fail += fixed["h"]["verdict"] == "fail"
    return {
        "sequential_pass": seq_pass / sims,
        "fixed_pass": fixed_pass / sims,
        "sequential_fail": seq_fail / sims,
        "fixed_fail": fixed_fail / sims,
        "first_look_fail": first_look_fail / sims,
        "spend": called / (sims * n),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=300)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--looks", type=int, default=4)
    ap.add_argument("--B", type=int, default=500)
    ap.add_argument("--concordant-sims", type=int, default=300)
    args = ap.parse_args(argv)
    print(f"{args.looks} looks, n={args.n}, {args.sims} simulations, B={args.B}, margin {MARGIN}")
    ok = True
    for delta, label in [
        (MARGIN - 0.02, "margin − 0.02 (a false pass)"),
        (MARGIN + 0.15, "margin + 0.15 (large)"),
    ]:
        t0 = time.perf_counter()
        r = simulate(delta, sims=args.sims, n=args.n, looks=args.looks, B=args.B)
        print(
            f"true Δ = {label}: pass {r['sequential_pass']:.2%} sequential vs "
            f"{r['fixed_pass']:.2%} fixed; spend {r['spend']:.0%} of the fixed design's calls "
            f"[{time.perf_counter() - t0:.0f}s]"
        )
        if delta < MARGIN:
            ok = r["sequential_pass"] <= 0.025
    print("sequential false pass ≤ 2.5%" if ok else "SEQUENTIAL FALSE PASS ABOVE 2.5%")
    n, sims, delta = 200, args.concordant_sims, MARGIN + 0.10
    t0 = time.perf_counter()
    r = simulate(delta, sims=sims, n=n, looks=args.looks, B=args.B, concordant=True)
    print(
        f"first look of {n // args.looks} fully concordant, n={n}, true Δ = margin + 0.10, "
        f"{sims} simulations: fail {r['sequential_fail']:.2%} sequential ({r['first_look_fail']:.2%} "
        f"at look 1) vs {r['fixed_fail']:.2%} fixed; pass {r['sequential_pass']:.2%} vs "
        f"{r['fixed_pass']:.2%}; spend {r['spend']:.0%} [{time.perf_counter() - t0:.0f}s]"
    )
    fair = r["sequential_fail"] <= r["fixed_fail"] and r["first_look_fail"] == 0
    print(
        "sequential false fail ≤ the fixed design's, none at look 1"
        if fair
        else "SEQUENTIAL FALSE FAIL ABOVE THE FIXED DESIGN'S"
    )
    return 0 if ok and fair else 1


if __name__ == "__main__":
    sys.exit(main())
