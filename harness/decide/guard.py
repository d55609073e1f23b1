"""The sunk-cost guard: the pre-registered hypothesis turned into a verdict and an exit code.

For each guarded variant the paired CI of (variant − baseline) on the guard metric is compared
with a threshold: +margin (superiority) or −margin (non-inferiority).
  pass          the lower bound clears the threshold
  fail          the upper bound is below it (the target is ruled out)
  inconclusive  the interval straddles it; we say how many test examples would decide
  abandon       not a pass, and the lineage used up max_iterations or budget_usd
A two-sided CI at `confidence` makes "pass" a one-sided test at α = (1 − confidence) / 2, so a
variant that truly misses the margin passes rarely (see benchmarks/guard_false_pass.py). With
several guarded variants, passes are controlled family-wise by Holm's step-down at α (`holm`).
A pass under a hypothesis weaker than the registered one is flagged (exit 1) and never counts
as a pass for the sunk-cost ledger.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from harness.decide.costs import break_even_table, cost_per_request, cost_ratio
from harness.decide.ledger import ledger_entry, limit_reached, lineage, usd
from harness.score.registry import is_quality
from harness.stats.bootstrap import required_n as stats_required_n
from harness.stats.bootstrap import sd_from_interval

PASS, FAIL, INCONCLUSIVE, ABANDON = "pass", "fail", "inconclusive", "abandon"

# Metrics measured in their own units (not rates); everything else is shown in points (×100).
_NAMES = {
    "macro_f1": "macro-F1",
    "micro_f1": "micro-F1",
    "weighted_f1": "weighted-F1",
    "f1": "F1",
    "exact_match": "exact match",
    "format_compliance": "format compliance",
    "win_rate": "win rate",
}


def is_rate(metric: str) -> bool:
    """A rate (shown in points) rather than a unit figure: the registry's quality flag."""
    return is_quality(metric)


def metric_label(metric: str) -> str:
    return _NAMES.get(metric, metric.replace("_", " "))


def fingerprint(hypothesis: dict | None) -> str | None:
    """Stable short hash of (metric, test, margin, confidence): the pre-registration."""
    if not hypothesis:
        return None
    keys = ("metric", "test", "margin", "confidence")
    canonical = json.dumps({k: hypothesis.get(k) for k in keys}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


# ---------------------------------------------------------------- the decision rule (pure)


def classify(ci_low: float | None, ci_high: float | None, threshold: float) -> str:
    """pass / fail / inconclusive for an interval against a threshold (no interval: undecided)."""
    if ci_low is not None and ci_low >= threshold:
        return PASS
    if ci_high is not None and ci_high < threshold:
        return FAIL
    return INCONCLUSIVE


def threshold_of(test: str, margin: float) -> float:
    return margin if test == "superiority" else -margin


def required_n(delta: dict, n: int, margin: float, confidence: float) -> int | None:
    """Test-set size that decides with 80% power, by `harness check`'s method (stats.bootstrap):
    the true Δ one margin beyond the threshold (0 for non-inferiority), and this run's observed
    spread (from its interval) in place of check's assumed sd 0.5. None without an interval or
    with a zero margin (no size shows a difference of 0)."""
    if delta.get("ci_low") is None or delta.get("ci_high") is None or not n or margin <= 0:
        return None
    sd = sd_from_interval(delta["ci_low"], delta["ci_high"], n, confidence)
    return stats_required_n(margin, sd=sd, confidence=confidence)


# ---------------------------------------------------------------- moved goalposts


def _num(x: float) -> str:
    """A margin or confidence as written in a suite: 0.20, 0.03, 0.025."""
    return f"{x:.2f}" if round(x, 2) == x else f"{x:g}"


def weakening(registered: dict, current: dict) -> list[str]:
    """Lines of the hypothesis that changed in the easier direction ("margin: 0.05 → 0.02")."""
    changes = []
    if current.get("metric") != registered.get("metric"):
        changes.append(f"metric: {registered.get('metric')} → {current.get('metric')}")
    if current.get("test") != registered.get("test"):
        changes.append(f"test: {registered.get('test')} → {current.get('test')}")
    rm, cm = registered.get("margin"), current.get("margin")
    if rm is not None and cm is not None and cm != rm:
        # A smaller superiority margin, or a wider non-inferiority margin, is easier to meet;
        # once the test itself changed, any margin change is part of the new hypothesis.
        easier = cm < rm if current.get("test") == "superiority" else cm > rm
        if easier or current.get("test") != registered.get("test"):
            changes.append(f"margin: {_num(rm)} → {_num(cm)}")
    rc, cc = registered.get("confidence"), current.get("confidence")
    if rc is not None and cc is not None and cc < rc:
        changes.append(f"confidence: {_num(rc)} → {_num(cc)}")
    return changes


def _verdict_values(verdicts: dict | None) -> list[str]:
    # Tracking may store {variant: "fail"} or {variant: {"verdict": "fail", ...}}.
    out = []
    for v in (verdicts or {}).values():
        out.append(v.get("verdict") if isinstance(v, dict) else v)
    return [v for v in out if v]


def counted(history: list[dict]) -> list[dict]:
    """The runs that can register a hypothesis: smoke runs (`--limit`) and runs excluded with
    `harness ledger exclude` never do."""
    return [
        r
        for r in history
        if (r.get("ledger_entry") or {}).get("limit") is None and not r.get("excluded")
    ]


def moved_goalposts(hypothesis: dict | None, history: list[dict]) -> dict | None:
    """Flag a hypothesis weaker than the first registered one, set after a non-passing run."""
    if not hypothesis:
        return None
    history = counted(history)
    first = next((i for i, run in enumerate(history) if run.get("hypothesis")), None)
    if first is None:
        return None
    registered = history[first]["hypothesis"]
    changes = weakening(registered, hypothesis)
    if not changes:
        return None
    failing = [
        r for r in history[first:] if any(v != PASS for v in _verdict_values(r.get("verdicts")))
    ]
    if not failing:
        return None
    return {
        "registered": {k: registered.get(k) for k in ("metric", "test", "margin", "confidence")},
        "registered_run_id": history[first].get("run_id"),
        "registered_fingerprint": fingerprint(registered),
        "current": dict(hypothesis),
        "current_fingerprint": fingerprint(hypothesis),
        "after_failing_run_id": failing[-1].get("run_id"),
        "changes": changes,
    }


# ---------------------------------------------------------------- sentences


def _signed(x: float, metric: str, unit: bool = False) -> str:
    s = (f"{x * 100:+.1f}" + (" pts" if unit else "")) if is_rate(metric) else f"{x:+.3g}"
    return s.replace("-", "−")


def _count(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e4:
        return f"{n / 1e3:.0f}k"
    return f"{n:,.0f}"


def sentence(name: str, baseline: str, v: dict, guard) -> str:
    """One plain sentence a manager can read, e.g.
    "ft-mini: +3.1 pts macro-F1 [−0.8, +7.0] vs zero-shot; target +5.0 not shown — inconclusive,
    ~420 test examples would decide. 2 of 3 iterations, $61 spent."
    """
    metric = guard.metric
    label = metric_label(metric)
    if "error_rate" in v["flags"]:
        e = v["errors"]
        return (
            f"{name}: cannot be judged — {e['rate']:.1%} provider errors on {e['variant']} "
            f"(max {guard.max_error_rate:.1%}); fix the provider or its rate limits and run again."
        )
    d = v["delta"]
    missing = d is None or d.get("value") is None
    if missing:
        head = f"{name}: no paired {label} difference vs {baseline}"
    else:
        ci = ""
        if d.get("ci_low") is not None and d.get("ci_high") is not None:
            ci = f" [{_signed(d['ci_low'], metric)}, {_signed(d['ci_high'], metric)}]"
        head = f"{name}: {_signed(d['value'], metric, unit=True)} {label}{ci} vs {baseline}"
    thr = _signed(d["threshold"], metric)
    superiority = guard.test == "superiority"
    target = f"target {thr}" if superiority else f"no worse than {thr}"
    status = v["status"]  # the rule's outcome before the ledger could turn it into abandon
    shown = {
        PASS: "shown",
        FAIL: "ruled out" if superiority else "not met",
        INCONCLUSIVE: "not shown",
    }[status]
    verdict = v["verdict"]
    text = f"{head}; {target} {shown} — {verdict}"
    if verdict == INCONCLUSIVE and missing:
        text += f": run the baseline too (--variant {baseline} --variant {name})"
    elif verdict == INCONCLUSIVE:
        n = v.get("required_n")
        if not n:
            text += ", a larger test set is needed to decide"
        elif n > v.get("n_examples", 0):
            text += f", ~{n:,} test examples would decide"
        else:  # large enough for the planned Δ: this Δ sits near the threshold
            text += (
                f"; the interval spans the threshold although ~{n:,} test examples suffice "
                "when the true Δ is a margin beyond it"
            )
    holm_ = v.get("holm") or {}
    if holm_.get("m", 1) > 1:
        text += (
            f" (Holm across {holm_['m']} guarded variants: tested at one-sided "
            f"α = {holm_['alpha']:.4g}, p = {holm_['p_value']:.3g})"
        )
    if not superiority and v.get("cost_ratio") is not None:
        text += f", at {v['cost_ratio']:.2f}× the baseline's cost per request"
        be = v.get("break_even")
        # A payback period only where training may go ahead: not for fail or abandon.
        if be and verdict in (PASS, INCONCLUSIVE):
            text += f", training pays back after {_count(be['break_even_requests'])} requests"
            if be.get("payback_months") is not None:
                text += f" ({be['payback_months']:.1f} months)"
    led = v["ledger"]
    if verdict == ABANDON:
        text += (
            f": {v['limit']} without a pass; {usd(led['spent_usd'])} sunk "
            f"({usd(led['training_usd'])} training + {usd(led['eval_usd'])} evaluation)"
        )
        if led.get("best_delta") is not None:
            text += f", best so far {_signed(led['best_delta'], metric, unit=True)}"
        text += "."
    else:
        its = (
            f"{led['iterations']} of {guard.max_iterations}"
            if guard.max_iterations
            else f"{led['iterations']}"
        )
        word = "iteration" if led["iterations"] == 1 and not guard.max_iterations else "iterations"
        spent = (
            f"{usd(led['spent_usd'])} of {usd(guard.budget_usd)} budget"
            if guard.budget_usd is not None
            else usd(led["spent_usd"])
        )
        text += f". {its} {word}, {spent} spent."
    return text


# ---------------------------------------------------------------- the whole decision


def _error_problem(summary: dict, names: list[str], max_rate: float) -> dict | None:
    for n in names:
        s = summary.get("variants", {}).get(n)
        if s and (s.get("error_rate") or 0.0) > max_rate:
            return {"variant": n, "rate": float(s["error_rate"])}
    return None


def _all_failed(summary: dict) -> bool:
    vs = [s for s in summary.get("variants", {}).values() if (s.get("n_calls") or 0) > 0]
    return bool(vs) and all((s.get("n_errors") or 0) >= s["n_calls"] for s in vs)


@dataclass
class Decision:
    """The verdict step's result: what it adds to summary.json (`apply` writes it there)."""

    hypothesis: dict[str, Any] | None
    break_even: dict[str, Any]
    guard: dict[str, Any] | None
    ledger_entry: dict[str, Any]
    exit_code: int

    def apply(self, summary: dict[str, Any]) -> dict[str, Any]:
        """summary.json's guard fields, in their contract order; returns `summary`."""
        summary["break_even"] = self.break_even
        summary.setdefault("hypothesis", self.hypothesis)
        summary["guard"] = self.guard
        summary["ledger_entry"] = self.ledger_entry
        summary["exit_code"] = self.exit_code
        return summary


def decide(
    suite,
    summary: dict[str, Any],
    history: list[dict] | None = None,
    *,
    allow_inconclusive: bool = False,
) -> Decision:
    """Guard verdicts, break-even, the ledger entry and the exit code of a summarised run.

    `history`: earlier parent runs of the suite, oldest first (harness.decide.history.gather).
    The guard metric's delta is read as is: harness.stats.summary computes its paired CI at the
    guard's confidence.
    """
    history = [r for r in (history or []) if r.get("run_id") != summary.get("run_id")]
    guard = suite.spec.guard
    table = break_even_table(suite, summary)
    entry = ledger_entry(suite, summary)
    hypothesis = suite.hypothesis()
    if guard is None:
        code = 3 if _all_failed(summary) else 0
        return Decision(hypothesis, table, None, entry, code)

    moved = moved_goalposts(hypothesis, history)
    verdicts: dict[str, dict] = {}
    for name in suite.guarded():
        stats = summary.get("variants", {}).get(name)
        if stats is not None:  # None: not selected with --variant
            verdicts[name] = _verdict(suite, summary, name, stats, history, entry, table)
    holm(verdicts, guard.confidence)
    for name, v in verdicts.items():
        _ledger_rule(v, moved, guard)
        v["sentence"] = sentence(name, suite.baseline, v, guard)
        if moved:
            v["flags"].append("moved_goalposts")
            v["sentence"] += (
                f" Goalposts moved after a failing run: {'; '.join(moved['changes'])} "
                f"(registered in run {moved['registered_run_id']}); the registered hypothesis "
                "still decides the ledger, so a pass under this one does not count."
            )
        if entry.get("limit") is not None:
            v["sentence"] += (
                f" Smoke run (--limit {entry['limit']}): not an iteration — no training charged, "
                "the hypothesis not registered, best so far unchanged."
            )
        for r in history:
            if r.get("excluded"):
                v["sentence"] += (
                    f" Run {r.get('run_id')} excluded from the ledger by hand: "
                    f"{r['excluded'].get('why')}."
                )
        v["headline"] = headline(v, moved)
        entry["variants"][name]["verdict"] = v["verdict"]
        entry["variants"][name]["honest_pass"] = v["verdict"] == PASS and not moved
    section = {
        **hypothesis,
        "fingerprint": fingerprint(hypothesis),
        "allow_inconclusive": allow_inconclusive,
        "verdicts": verdicts,
        "moved_goalposts": moved,
    }
    code = exit_code(verdicts, moved, allow_inconclusive, _all_failed(summary))
    return Decision(hypothesis, table, section, entry, code)


def headline(v: dict, moved: dict | None) -> str:
    """What the terminal puts before the sentence: the verdict, and why a pass still exits 1."""
    if v["verdict"] == PASS and moved:
        changes = ", ".join(c.replace(":", "", 1) for c in moved["changes"])
        return (
            f"PASS — flagged: goalposts moved ({changes}); exit 1: a pass under a hypothesis "
            "weaker than the registered one does not count"
        )
    return v["verdict"].upper()


def one_sided_p(d: dict | None, confidence: float) -> float:
    """p-value of "Δ ≤ threshold" from the reported CI, read as a normal interval: the level at
    which the one-sided lower bound would just reach the threshold. 1.0 without an interval."""
    if not d or d.get("value") is None or d.get("ci_low") is None or d.get("ci_high") is None:
        return 1.0
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    se = (d["ci_high"] - d["ci_low"]) / (2 * z)
    if se <= 0:
        return 0.0 if d["ci_low"] >= d["threshold"] else 1.0
    return 1 - NormalDist().cdf((d["value"] - d["threshold"]) / se)


def holm(verdicts: dict[str, dict], confidence: float) -> None:
    """Holm's step-down over the guarded variants' passes, family-wise at the guard's one-sided
    α = (1 − confidence) / 2.

    Exactly Holm on the one-sided p-values (`one_sided_p`): with r hypotheses left, every one with
    p ≤ α/r is a pass (the smallest would be, and each pass only raises the next level α/(r−1)),
    then r shrinks; the first step with none stops. A pass the CI showed but Holm did not becomes
    inconclusive; fail (the upper bound below the threshold) is not a pass claim and stays. One
    guarded variant: α/1, the plain rule. Each verdict gets {"m", "alpha", "p_value"}.
    """
    m = len(verdicts)
    alpha = (1 - confidence) / 2
    ps = {
        n: 1.0 if "error_rate" in v["flags"] else one_sided_p(v["delta"], confidence)
        for n, v in verdicts.items()
    }
    left = set(verdicts)
    level = {n: alpha / m for n in verdicts} if m else {}
    while left:
        step = alpha / len(left)
        passed = {n for n in left if ps[n] <= step}
        for n in left:
            level[n] = step
        if not passed:
            break
        left -= passed
    for n, v in verdicts.items():
        v["holm"] = {"m": m, "alpha": level[n], "p_value": ps[n]}
        if m > 1 and v["status"] == PASS and n in left:
            v["status"] = v["verdict"] = INCONCLUSIVE


def _ledger_rule(v: dict, moved: dict | None, guard) -> None:
    """Abandon: the lineage reached its limit without an honest pass, or was abandoned before."""
    led = v["ledger"]
    honest = v["status"] == PASS and not moved
    if "error_rate" in v["flags"]:
        return
    if led.get("abandoned_in"):
        v["verdict"] = ABANDON
        v["limit"] = v["limit"] or f"abandoned in run {led['abandoned_in']}"
    elif not honest and v["limit"] and not led["passed_before"]:
        v["verdict"] = ABANDON
    if v["verdict"] == ABANDON:
        v["required_n"] = None


def _verdict(suite, summary, name, stats, history, entry, table) -> dict[str, Any]:
    """One guarded variant's verdict by the rule on its delta (the ledger's rule comes after
    Holm), with its ledger and error rate."""
    guard = suite.spec.guard
    base_stats = summary.get("variants", {}).get(suite.baseline) or {}
    base_cpr = cost_per_request(base_stats) if base_stats else None
    thr = threshold_of(guard.test, guard.margin)
    flags: list[str] = []
    delta = (stats.get("delta") or {}).get(guard.metric)
    d = None
    if delta is not None:
        d = {
            "metric": guard.metric,
            "value": delta.get("value"),
            "ci_low": delta.get("ci_low"),
            "ci_high": delta.get("ci_high"),
            "p_value": delta.get("p_value"),
            "confidence": guard.confidence,
            "threshold": thr,
        }
    status = classify(d and d["ci_low"], d and d["ci_high"], thr) if d else INCONCLUSIVE
    n = stats.get("n_examples") or summary.get("n_examples") or 0
    led = lineage(name, history, entry)
    limit = limit_reached(led, guard.max_iterations, guard.budget_usd)
    v: dict[str, Any] = {
        "verdict": status,
        "status": status,
        "delta": d or {"metric": guard.metric, "value": None, "threshold": thr},
        "required_n": (
            required_n(d, n, guard.margin, guard.confidence)
            if (d and status == INCONCLUSIVE)
            else None
        ),
        "n_examples": n,
        "ledger": led,
        "limit": limit,
        "cost_ratio": cost_ratio(cost_per_request(stats), base_cpr),
        "break_even": table.get(name),
        "flags": flags,
    }
    problem = _error_problem(summary, [suite.baseline, name], guard.max_error_rate)
    if problem:
        v["verdict"] = v["status"] = INCONCLUSIVE
        v["required_n"] = None
        v["errors"] = problem
        flags.append("error_rate")
    return v


def exit_code(
    verdicts: dict[str, dict],
    moved: dict | None,
    allow_inconclusive: bool,
    all_failed: bool = False,
) -> int:
    """3 unjudgeable; 1 anything flagged; 0 every guarded variant passed."""
    if all_failed or any("error_rate" in v["flags"] for v in verdicts.values()):
        return 3
    if moved:
        return 1
    for v in verdicts.values():
        if v["verdict"] in (FAIL, ABANDON):
            return 1
        if v["verdict"] == INCONCLUSIVE and not allow_inconclusive:
            return 1
    return 0
