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

from dataclasses import dataclass, field
from typing import Any

from harness.decide.costs import break_even_table, cost_per_request, cost_ratio
from harness.decide.ledger import ledger_entry, limit_reached, lineage
from harness.decide.rule import (
    ABANDON,
    FAIL,
    INCONCLUSIVE,
    PASS,
    classify,
    fingerprint,
    holm,
    required_n,
    threshold_of,
)
from harness.decide.sentence import _num, headline, sentence
from harness.suite.model import DEFAULT_MAX_ERROR_RATE

# ---------------------------------------------------------------- the decision rule (pure)


# ---------------------------------------------------------------- moved goalposts


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


# ---------------------------------------------------------------- the whole decision


def _error_problem(summary: dict, names: list[str], max_rate: float) -> dict | None:
    for n in names:
        s = summary.get("variants", {}).get(n)
        if s and (s.get("error_rate") or 0.0) > max_rate:
            return {"variant": n, "rate": float(s["error_rate"])}
    return None


def too_many_errors(suite, summary: dict) -> list[str]:
    """One line per variant whose provider errors exceed max_error_rate (the guard's, else its
    default), with the count and the top reasons. Any such line makes the run unjudgeable
    (exit 3), guarded or not: a metric over a third of failed calls is no measurement."""
    guard = suite.spec.guard
    max_rate = guard.max_error_rate if guard is not None else DEFAULT_MAX_ERROR_RATE
    lines = []
    for name, s in (summary.get("variants") or {}).items():
        n, errors = s.get("n_calls") or 0, s.get("n_errors") or 0
        if not n or errors / n <= max_rate:
            continue
        reasons = sorted((s.get("errors_by_reason") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
        top = ", ".join(f"{r} ×{c}" for r, c in reasons[:3])
        lines.append(
            f"{name}: {errors} of {n} calls failed ({errors / n:.1%} > max_error_rate "
            f"{max_rate:.0%}){': ' + top if top else ''} — the run cannot be judged; fix the "
            "provider, then retry the failed calls with --resume"
        )
    return lines


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
    notes: list[str] = field(default_factory=list)  # why the run cannot be judged, if it cannot

    def apply(self, summary: dict[str, Any]) -> dict[str, Any]:
        """summary.json's guard fields, in their contract order; returns `summary`."""
        if self.notes:
            summary.setdefault("notes", []).extend(self.notes)
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
    errors = too_many_errors(suite, summary)
    if guard is None:
        code = 3 if _all_failed(summary) or errors else 0
        return Decision(hypothesis, table, None, entry, code, errors)

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
    if errors:  # also a variant the guard does not judge (unguarded, or left out by --variant)
        code = 3
    return Decision(hypothesis, table, section, entry, code, errors)


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
