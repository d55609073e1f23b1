"""Readiness checklist: the prerequisites before spending on fine-tuning, checked instead of remembered.

Each line is (status, name, detail) with status pass | warn | fail and a reason a reader can act
on. Nothing here calls a model; the numbers come from the suite and the loaded data only.
The thresholds are the usual guidance: a test set of 50–100+ examples, a prompt-engineered
baseline, a pre-registered hypothesis, 200–2000 training examples for a fine-tune, a budget.
"""

from __future__ import annotations

from harness.check.plan import plan
from harness.data.dataset import Dataset
from harness.score.registry import entry_name, is_quality
from harness.stats.bootstrap import min_detectable_difference
from harness.suite import Suite
from harness.suite.kinds import KINDS

PASS, WARN, FAIL = "pass", "warn", "fail"
Line = tuple[str, str, str]

MIN_TEST = 50
GOOD_TEST = 100
MIN_TRAIN = 200
MAX_TRAIN = 2000


def metric_names(suite: Suite) -> list[str]:
    return [entry_name(entry)[0] for entry in suite.spec.metrics]


def readiness_lines(suite: Suite, dataset: Dataset) -> list[Line]:
    return [
        _metric_line(suite),
        _test_size_line(len(dataset.test)),
        _baseline_line(suite),
        _hypothesis_line(suite),
        *_training_lines(suite, dataset),
        _budget_line(suite),
    ]


def power_lines(suite: Suite, n_test: int) -> list[Line]:
    """What the guard can decide with this many test examples, and how many each hypothesis
    needs: `harness plan`'s sizing (harness.check.plan), the method of the run's "~N test
    examples would decide"."""
    hyps = suite.hypotheses()
    confidence = hyps[0].confidence if hyps else 0.95
    pct = f"{confidence:.0%}"
    if n_test < 2:
        return [(WARN, "power", f"{n_test} test example(s) — too few for any comparison")]
    mdd = min_detectable_difference(n_test, confidence=confidence)
    lines: list[Line] = [
        (
            PASS,
            "power",
            f"with {n_test} test examples the guard's {pct} interval clears its threshold with "
            f"80% power when the true Δ is {mdd:.3f} beyond it (assumed sd 0.5 of a paired "
            "difference; the run's figure uses the spread it observes)",
        )
    ]
    for row in plan(suite):
        h = row.hypothesis
        name = "power for margin" if len(hyps) == 1 else f"power for {h.key}"
        if row.n is None:
            lines.append((WARN, name, row.why_not or "cannot be sized"))
            continue
        holm = len(hyps) if len(hyps) > 1 and suite.correction == "holm" else 1
        its = h.max_iterations or 1  # each iteration passes at α / max_iterations
        if holm > 1 and its > 1:
            level = f" at Holm's α/{holm}, split over {its} iterations (α/{holm * its} each)"
        elif holm > 1:
            level = f" at Holm's α/{holm}"
        elif its > 1:
            level = f" at α/{its} per iteration (max_iterations {its})"
        else:
            level = ""
        need = f"margin {h.margin:g} needs ≥ {row.n} test examples{level}; you have {n_test}"
        if n_test >= row.n:
            lines.append(
                (PASS, name, need + " (80% power when the true Δ is a margin beyond the threshold)")
            )
        else:
            lines.append(
                (WARN, name, need + " — add test examples or expect an inconclusive verdict")
            )
    return lines


# ---------------------------------------------------------------- individual lines


def _metric_line(suite: Suite) -> Line:
    names = metric_names(suite)
    quality = [m for m in names if is_quality(m)]
    if not quality:
        return (
            WARN,
            "metric",
            f"only operational metrics ({', '.join(names)}) — declare a quality metric such as "
            "accuracy or macro_f1",
        )
    # guard.metric itself is validated when the suite loads (it must be a declared quality metric).
    return (PASS, "metric", ", ".join(quality))


def _test_size_line(n: int) -> Line:
    if n < MIN_TEST:
        return (
            WARN,
            "test set size",
            f"{n} examples — below {MIN_TEST}; collect 50–100 or more before comparing variants",
        )
    if n < GOOD_TEST:
        return (
            PASS,
            "test set size",
            f"{n} examples (≥ {MIN_TEST}; 50–100 is the usual minimum, more narrows the CIs)",
        )
    return (PASS, "test set size", f"{n} examples (≥ {MIN_TEST})")


def _baseline_line(suite: Suite) -> Line:
    base = suite.variant(suite.baseline)
    if not KINDS[base.kind].trained:
        return (PASS, "prompt baseline", f"{base.name} ({base.kind})")
    prompts = [v.name for v in suite.variants if not KINDS[v.kind].trained]
    if prompts:
        return (
            WARN,
            "prompt baseline",
            f"the baseline {base.name!r} is {base.kind} — make a prompt variant ({', '.join(prompts)}) "
            "the `baseline:`",
        )
    return (
        WARN,
        "prompt baseline",
        "no prompt-engineered variant — add a `kind: prompt` variant and make it the `baseline:`",
    )


def _hypothesis_line(suite: Suite) -> Line:
    hyps = suite.hypotheses()
    if not suite.guards:
        return (
            WARN,
            "hypothesis",
            "no `guard:` — pre-register the metric, test and margin before running candidates",
        )
    if not hyps:
        return (
            WARN,
            "hypothesis",
            "the guard applies to no variant — add a fine-tuned variant or `guard.applies_to`",
        )
    if not isinstance(suite.spec.guard, list):
        h = hyps[0]
        return (
            PASS,
            "hypothesis",
            f"{h.metric} {h.test}, margin {h.margin:g} at {h.confidence:.0%} confidence "
            f"({', '.join(suite.guarded())})",
        )
    family = "Holm" if suite.correction == "holm" else "no correction"
    return (
        PASS,
        "hypothesis",
        f"{len(hyps)} hypotheses ({family}): "
        + "; ".join(
            f"{h.candidate} vs {h.baseline} {h.metric} {h.test} margin {h.margin:g} at "
            f"{h.confidence:.0%}"
            for h in hyps
        ),
    )


def _training_lines(suite: Suite, dataset: Dataset) -> list[Line]:
    tuned = [v.name for v in suite.variants if KINDS[v.kind].trained]
    if not tuned:
        return []
    n = len(dataset.train)
    if not suite.spec.data.train:
        return [
            (
                WARN,
                "training data",
                "a fine-tuned variant exists but no `data.train` — point it at the training examples "
                "so they can be checked and exported",
            )
        ]
    if n < MIN_TRAIN:
        return [
            (
                WARN,
                "training data",
                f"{n} examples — below {MIN_TRAIN}: few-shot prompting is likely sufficient",
            )
        ]
    if n > MAX_TRAIN:
        return [
            (
                PASS,
                "training data",
                f"{n} examples (above the usual {MIN_TRAIN}–{MAX_TRAIN}; a subset may train as well for less)",
            )
        ]
    return [(PASS, "training data", f"{n} examples (within {MIN_TRAIN}–{MAX_TRAIN})")]


def _budget_line(suite: Suite) -> Line:
    guard = suite.guards[0] if suite.guards else None
    limits = []
    if guard and guard.max_iterations is not None:
        limits.append(f"max {guard.max_iterations} iterations")
    if guard and guard.budget_usd is not None:
        limits.append(f"${guard.budget_usd:g} budget")
    if limits:
        return (PASS, "iteration budget", " and ".join(limits) + " per lineage")
    return (
        WARN,
        "iteration budget",
        "none — set `guard.max_iterations` or `guard.budget_usd` so a lineage that keeps missing is abandoned",
    )
