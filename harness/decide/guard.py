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
    decided_at_look,
    fingerprint,
    holm,
    required_n,
    reuse_iterations,
    threshold_of,
)
from harness.decide.sentence import headline, p_phrase, sentence, suite_number
from harness.results import family_fingerprint, figures_of

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
            changes.append(f"margin: {suite_number(rm)} → {suite_number(cm)}")
    rc, cc = registered.get("confidence"), current.get("confidence")
    if rc is not None and cc is not None and cc < rc:
        changes.append(f"confidence: {suite_number(rc)} → {suite_number(cc)}")
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


def registered_for(hypothesis: dict | None, key: str | None) -> dict | None:
    """One hypothesis of a run's `hypothesis` field: a single guard's mapping is every key's;
    a list's entry is found by its key."""
    if not hypothesis:
        return None
    if "hypotheses" not in hypothesis:
        return hypothesis
    return next((h for h in hypothesis["hypotheses"] if h.get("key") == key), None)


def moved_goalposts(
    hypothesis: dict | None, history: list[dict], key: str | None = None
) -> dict | None:
    """Flag a hypothesis weaker than the first registered one, set after a non-passing run.
    `key`: which hypothesis of a list (its verdict is the one that must not have passed)."""
    if not hypothesis:
        return None
    history = counted(history)
    first = next(
        (i for i, run in enumerate(history) if registered_for(run.get("hypothesis"), key)), None
    )
    if first is None:
        return None
    registered = registered_for(history[first]["hypothesis"], key)
    changes = weakening(registered, hypothesis)
    if not changes:
        return None

    def outcomes(run: dict) -> list[str]:
        verdicts = run.get("verdicts") or {}
        if key in verdicts:
            verdicts = {key: verdicts[key]}
        return _verdict_values(verdicts)

    failing = [r for r in history[first:] if any(v != PASS for v in outcomes(r))]
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


# ---------------------------------------------------------------- the whole decision


def _error_problem(summary: dict, names: list[str], max_rate: float) -> dict | None:
    for n in names:
        s = (summary.get("variants") or {}).get(n)
        if s and figures_of(s).error_rate > max_rate:
            return {"variant": n, "rate": figures_of(s).error_rate}
    return None


def too_many_errors(suite, summary: dict) -> list[str]:
    """One line per variant whose provider errors exceed max_error_rate (the guard's, else its
    default), with the count and the top reasons. Any such line makes the run unjudgeable
    (exit 3), guarded or not: a metric over a third of failed calls is no measurement."""
    lines = []
    for name, raw in (summary.get("variants") or {}).items():
        s = figures_of(raw)
        max_rate = suite.max_error_rate(name)
        n, errors = s.n_calls, s.n_errors
        if not n or errors / n <= max_rate:
            continue
        reasons = sorted(s.errors_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
        top = ", ".join(f"{r} ×{c}" for r, c in reasons[:3])
        # The provider's own words: "bad_request ×750" alone does not say what to fix.
        said = list((s.top_errors or {}).items())[:3]
        if said:
            top += "; the provider said: " + "; ".join(f"“{m}” ×{c}" for m, c in said)
        lines.append(
            f"{name}: {errors} of {n} calls failed ({errors / n:.1%} > max_error_rate "
            f"{max_rate:.0%}){': ' + top if top else ''} — the run cannot be judged; fix the "
            "provider, then retry the failed calls with --resume"
        )
    return lines


def _all_failed(summary: dict) -> bool:
    figures = [figures_of(s) for s in (summary.get("variants") or {}).values()]
    called = [f for f in figures if f.n_calls > 0]
    return bool(called) and all(f.answered <= 0 for f in called)


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
    look: dict | None = None,
    protocol: dict | None = None,
    jobs: list[dict] | None = None,
) -> Decision:
    """Guard verdicts, break-even, the ledger entry and the exit code of a summarised run.

    `history`: earlier parent runs of the suite, oldest first (harness.decide.history.gather).
    One verdict per hypothesis (suite.hypotheses(): a single `guard:` is a list of one), keyed
    by the hypothesis key (the candidate's name where unique); Holm across all of them unless
    `correction: none`. Each delta is read as is: harness.stats.summary computes the paired CI
    of every hypothesis at its confidence ("comparisons"). `look`: a sequential run's last look
    ({"look", "looks", "alpha", "n_examples"}): passes need p at its share of α. `protocol`:
    the run against its lineage's registered protocol (harness.decide.protocol.review): a pass
    under an amendment not accepted is flagged, a subset of the family is tested at the family's
    Holm levels, and accepted amendments are named. `jobs`: the lineage's fine-tuning jobs
    (harness.finetune.records.JobStore.jobs), whose models no run evaluated still count.
    """
    history = [r for r in (history or []) if r.get("run_id") != summary.get("run_id")]
    table = break_even_table(suite, summary)
    entry = ledger_entry(suite, summary)
    hypothesis = suite.hypothesis()
    errors = too_many_errors(suite, summary)
    if not suite.guards:
        code = 3 if _all_failed(summary) or errors else 0
        return Decision(hypothesis, table, None, entry, code, errors)

    verdicts: dict[str, dict] = {}
    for h in suite.hypotheses():
        stats = summary.get("variants", {}).get(h.candidate)
        if stats is not None:  # None: not selected with --variant
            verdicts[h.key] = _verdict(suite, summary, h, stats, history, entry, table, jobs)
    hyps = {h.key: h for h in suite.hypotheses()}
    family = list(dict.fromkeys([*(protocol or {}).get("family", []), *hyps]))
    reuse = reuse_iterations(suite.hypotheses())
    holm(verdicts, suite.correction, alpha=_level(suite, look, reuse), family=len(family))
    unevaluated = [k for k in family if k not in verdicts and k in hyps]
    amended = [a for a in (protocol or {}).get("amendments") or []]
    moved_any = None
    for key, v in verdicts.items():
        h = hyps[key]
        moved = moved_goalposts(h.as_dict(), history, key)
        v["moved_goalposts"] = moved
        moved_any = moved_any or (moved and {**moved, "key": key})
        v["amended"] = bool(amended) and v["status"] == PASS
        _ledger_rule(v, moved or v["amended"])
        v["required_n"] = _required(v, h)
        v["sentence"] = sentence(h.candidate, h.baseline, v, h)
        v["sentence"] += _look_note(v, look)
        if moved:
            v["flags"].append("moved_goalposts")
            v["sentence"] += (
                f" Goalposts moved after a failing run: {'; '.join(moved['changes'])} "
                f"(registered in run {moved['registered_run_id']}); the registered hypothesis "
                "still decides the ledger, so a pass under this one does not count."
            )
        v["sentence"] += _reuse_note(v, reuse)
        if unevaluated:
            v["sentence"] += (
                f" Not evaluated in this run: {', '.join(unevaluated)} — tested at the Holm "
                f"levels of the registered family of {len(family)} hypotheses."
            )
        if v["amended"]:
            v["flags"].append("amended")
            v["sentence"] += (
                " Amended protocol: "
                + "; ".join(f"{a['key']}: {a['old']} → {a['new']}" for a in amended)
                + "; a pass under it does not count until `harness register --amend` accepts it."
            )
        for a in (protocol or {}).get("accepted") or []:
            v["sentence"] += (
                f" Protocol amended by hand at {a['at']}: {a['why']} ({'; '.join(a['changes'])})."
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
        v["headline"] = headline(v, moved, amended)
    _lineage_verdicts(entry, verdicts, hyps)
    top = hypothesis if "hypotheses" not in hypothesis else {"hypotheses": hypothesis["hypotheses"]}
    section = {
        **top,
        "correction": suite.correction,
        # A list's fingerprint hashes every hypothesis (a single guard's, its mapping).
        "fingerprint": fingerprint(hypothesis)
        if "hypotheses" not in hypothesis
        else family_fingerprint(hypothesis["hypotheses"]),
        "allow_inconclusive": allow_inconclusive,
        "verdicts": verdicts,
        "moved_goalposts": moved_any,
    }
    flagged = moved_any or any(v["amended"] for v in verdicts.values())
    code = exit_code(verdicts, flagged, allow_inconclusive, _all_failed(summary))
    if errors:  # also a variant the guard does not judge (unguarded, or left out by --variant)
        code = 3
    return Decision(hypothesis, table, section, entry, code, errors)


def _level(suite, look: dict | None, reuse: int) -> float | None:
    """The family's one-sided level: the sequential look's share, else the confidence's, over
    the iterations that reuse the test set (rule.reuse_iterations); None: holm's default."""
    if reuse <= 1:
        return look["alpha"] if look else None
    base = look["alpha"] if look else min((1 - h.confidence) / 2 for h in suite.hypotheses())
    return base / reuse


def _look_note(v: dict[str, Any], look: dict | None) -> str:
    """A sequential run's look, said after the verdict's sentence ("" for a fixed design)."""
    if not look:
        return ""
    spent = f"({look['n_examples']:,} test examples), one-sided α = {look['alpha']:.4g} spent at"
    if v["verdict"] == INCONCLUSIVE and look["look"] == look["looks"]:
        return f" Sequential: not decided after all {look['looks']} looks {spent} the last look."
    return f" Sequential: decided at look {look['look']} of {look['looks']} {spent} this look."


def _reuse_note(v: dict[str, Any], reuse: int) -> str:
    """The level of a pass or inconclusive verdict when iterations reuse the test set (a fail
    or abandon reads the same at any α, so it gets none)."""
    if reuse <= 1 or v["delta"].get("value") is None or v["verdict"] not in (PASS, INCONCLUSIVE):
        return ""
    level = v["holm"]["alpha"]
    return (
        f" Test-set reuse: up to {reuse} iterations are selected on these test "
        f"examples, so each is tested at one-sided α = {level * reuse:.4g}/{reuse} = "
        f"{level:.4g} (p {p_phrase(v['holm']['p_value'])})."
    )


def settled(suite, summary: dict[str, Any], alpha: float) -> bool:
    """A sequential look of the run: every hypothesis decided at one-sided `alpha`
    (rule.decided_at_look) on the examples called so far."""
    verdicts = {}
    entry = ledger_entry(suite, summary)
    for h in suite.hypotheses():
        stats = summary.get("variants", {}).get(h.candidate)
        if stats is not None:
            verdicts[h.key] = _verdict(suite, summary, h, stats, [], entry, {})
    return decided_at_look(verdicts, suite.correction, alpha / reuse_iterations(suite.hypotheses()))


def _lineage_verdicts(entry: dict, verdicts: dict[str, dict], hyps: dict) -> None:
    """The ledger is per lineage however many hypotheses name it: its verdict is its worst one
    (abandon, then fail, then inconclusive), an honest pass is every one of them passing."""
    worst = [ABANDON, FAIL, INCONCLUSIVE, PASS]
    by_name: dict[str, list[dict]] = {}
    for key, v in verdicts.items():
        by_name.setdefault(hyps[key].candidate, []).append(v)
    for name, vs in by_name.items():
        verdict = min((v["verdict"] for v in vs), key=worst.index)
        entry["variants"][name]["verdict"] = verdict
        for key in hyps:
            own = (entry["variants"][name].get("hypotheses") or {}).get(key)
            if own is not None and key in verdicts:
                own["verdict"] = verdicts[key]["verdict"]
        entry["variants"][name]["honest_pass"] = verdict == PASS and not any(
            v["moved_goalposts"] or v.get("amended") for v in vs
        )


def _required(v: dict, h) -> int | None:
    """The test-set size that would decide an inconclusive verdict, at the level Holm tests it
    with all hypotheses left (`harness plan`'s level, rule.planned_alpha)."""
    if v["verdict"] != INCONCLUSIVE or "error_rate" in v["flags"] or not v["delta"].get("metric"):
        return None
    return required_n(v["delta"], v["n_examples"], h.margin, v["holm"]["planned_alpha"])


def _ledger_rule(v: dict, moved) -> None:
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


def _delta_of(summary: dict, h, stats: dict) -> dict | None:
    """The hypothesis's paired delta: summary["comparisons"], else (a summary from before
    comparisons existed) the candidate's delta vs the suite's baseline."""
    d = (summary.get("comparisons") or {}).get(h.key)
    if d is None and h.baseline == summary.get("baseline"):
        d = (stats.get("delta") or {}).get(h.metric)
    return d


def _verdict(suite, summary, h, stats, history, entry, table, jobs=None) -> dict[str, Any]:
    """One hypothesis's verdict by the rule on its delta (the ledger's rule comes after Holm),
    with its lineage's ledger and error rate."""
    base_stats = summary.get("variants", {}).get(h.baseline) or {}
    base_cpr = cost_per_request(base_stats) if base_stats else None
    thr = threshold_of(h.test, h.margin)
    flags: list[str] = []
    delta = _delta_of(summary, h, stats)
    d = None
    if delta is not None and delta.get("value") is not None:
        d = {
            "metric": h.metric,
            "value": delta.get("value"),
            "ci_low": delta.get("ci_low"),
            "ci_high": delta.get("ci_high"),
            "p_value": delta.get("p_value"),
            "confidence": h.confidence,
            "threshold": thr,
        }
        for k in (
            "interval",
            "table",
            "degenerate",
            "api_saving_usd",
            "extra_errors_usd",
            "extra_errors_ci_low",
            "extra_errors_ci_high",
            "extra_training_usd",
        ):
            if k in delta:
                d[k] = delta[k]
    status = classify(d["ci_low"], d["ci_high"], thr) if d else INCONCLUSIVE
    n = stats.get("n_examples") or summary.get("n_examples") or 0
    led = lineage(
        h.candidate, history, entry, [j for j in jobs or [] if j.get("variant") == h.candidate]
    )
    limit = limit_reached(led, h.max_iterations, h.budget_usd)
    v: dict[str, Any] = {
        "verdict": status,
        "status": status,
        "hypothesis": {
            "key": h.key,
            "candidate": h.candidate,
            "baseline": h.baseline,
            **h.as_dict(),
        },
        "delta": d
        or {"metric": h.metric, "value": None, "threshold": thr, "confidence": h.confidence},
        "required_n": None,
        "n_examples": n,
        "ledger": led,
        "limit": limit,
        "cost_ratio": cost_ratio(cost_per_request(stats), base_cpr),
        "break_even": table.get(h.candidate) if h.baseline == suite.baseline else None,
        "flags": flags,
    }
    problem = _error_problem(summary, [h.baseline, h.candidate], h.max_error_rate)
    if problem:
        v["verdict"] = v["status"] = INCONCLUSIVE
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
