"""The decision sections every surface renders: the decision lines that open report.md/html,
the PR comment, the step summary and the MLflow description, and the pre-registered hypotheses.

They read the typed `Summary` (harness.results), so a `guard:` list and a single guard read the
same way everywhere: one line per hypothesis, never a field of "the" hypothesis. Each function
returns plain text lines (markdown-safe: names in backticks); callers add their own framing.
"""

from __future__ import annotations

from typing import Any

from harness.decide.sentence import metric_label
from harness.results import NET_MONTHLY_VALUE, Hypothesis, Summary, Verdict
from harness.stats.numbers import dollars, is_rate, signed, verdict_label, with_ci


def margin_text(h: Hypothesis) -> str:
    """The margin in the metric's unit: "3.0 pts", "$0/month", "0.05"."""
    if h.metric == NET_MONTHLY_VALUE:
        return dollars(h.margin) + "/month"
    if is_rate(h.metric):
        return f"{h.margin * 100:.1f} pts"
    return f"{h.margin:g}"


def hypothesis_text(h: Hypothesis) -> str:
    """ "`ft-mini` vs `gpt-4o`: non-inferiority on `macro_f1`, margin 3.0 pts, confidence 95%"."""
    return (
        f"`{h.candidate}` vs `{h.baseline}`: {h.test} on `{h.metric}`, margin {margin_text(h)}, "
        f"confidence {h.confidence:.0%}"
    )


def hypothesis_lines(s: Summary) -> list[str]:
    """One bullet per pre-registered hypothesis (a single guard is a list of one)."""
    return [f"- {hypothesis_text(h)}" for h in s.hypotheses]


def guard_fingerprint(s: Summary) -> str | None:
    """The guard's fingerprint as summary.json records it (one hash of every hypothesis)."""
    return s.guard.fingerprint if s.guard is not None else None


_NOT_PASSED = {"fail": "fails", "abandon": "is abandoned", "inconclusive": "is undecided"}


def _held_back(h: Hypothesis, v: Verdict, others: list[tuple[Hypothesis, Verdict]]) -> str:
    """A clean pass whose candidate another hypothesis of the family did not pass: "hold", with
    which one, so no line says "switch to X" beside one that says "keep the baseline"."""
    if v.verdict != "pass" or v.flags:
        return ""
    blocking = [
        (h2, v2)
        for h2, v2 in others
        if h2.candidate == h.candidate and (v2.verdict != "pass" or v2.flags)
    ]
    if not blocking:
        return ""
    h2, v2 = blocking[0]
    how = "no worse than" if h.test == "non-inferiority" else "beats"
    state = _NOT_PASSED.get(v2.verdict, "is not counted")
    return (
        f"**hold `{h.candidate}`** — {how} `{h.baseline}` on `{h.metric}`, but its "
        f"`{h2.metric}` hypothesis {state}"
    )


def _action(h: Hypothesis, v: Verdict) -> str:
    """What to do, in words: the first thing the line says."""
    if "error_rate" in v.flags:
        # Named: a guard list can hold several, and the line must say which to fix.
        return f"**cannot judge `{h.candidate}`** — too many provider errors; fix them and rerun"
    if "moved_goalposts" in v.flags:
        return f"**not counted** — `{h.candidate}` was judged under a weakened hypothesis"
    if "amended" in v.flags:
        return (
            f"**not counted** — `{h.candidate}` passed under an amended protocol "
            "(`harness register --amend --why` to accept it)"
        )
    if v.verdict == "pass":
        if h.test == "non-inferiority":
            return f"**switch to `{h.candidate}`** — no worse than `{h.baseline}`"
        return f"**adopt `{h.candidate}`** — beats `{h.baseline}`"
    if v.verdict == "fail":
        return f"**keep `{h.baseline}`** — `{h.candidate}` misses the margin"
    if v.verdict == "abandon":
        why = f" ({v.limit})" if v.limit else ""
        return f"**stop `{h.candidate}`** — lineage abandoned{why}"
    return f"**undecided** on `{h.candidate}` vs `{h.baseline}`"


def _quality(h: Hypothesis, v: Verdict) -> str:
    """Δ with its interval against the threshold: "macro-F1 −2.1 pts [−8.0, +4.0], needs ≥ −3.0"."""
    d = v.delta
    if d.value is None:
        return f"no paired {metric_label(h.metric)} difference"
    text = with_ci(d.model_dump(), h.metric, delta=True)
    thr = d.threshold if d.threshold is not None else 0.0
    bound = "lower bound needs ≥ " + signed(thr, h.metric, unit=True)
    if h.metric == NET_MONTHLY_VALUE:
        return f"net {text}, {bound}"
    return f"{metric_label(h.metric)} {text}, {bound}"


def money_of(s: Summary, h: Hypothesis) -> dict[str, Any] | None:
    """The candidate's net monthly value vs this hypothesis's baseline, where the run has it:
    the hypothesis's own delta (a dollar hypothesis), else the value section's row."""
    if s.value is None or h.baseline != s.baseline:
        return None
    row = (s.value.get("vs_baseline") or {}).get(h.candidate)
    return row if isinstance(row, dict) and row.get("value") is not None else None


def _money(s: Summary, h: Hypothesis, v: Verdict) -> str:
    if h.metric == NET_MONTHLY_VALUE:
        return ""
    why_not = ((s.value or {}).get("not_valued") or {}).get(h.candidate)
    if why_not:
        return f"; no value: {why_not}"
    d = money_of(s, h)
    if d is None:
        return ""
    text = "; " + with_ci(d, NET_MONTHLY_VALUE, delta=True) + " net"
    return text + reconcile(v, d)


def reconcile(v: Verdict, d: dict[str, Any]) -> str:
    """Verdict and dollars in words when they point different ways."""
    net = d.get("value")
    if net is None:
        return ""
    if v.verdict in ("fail", "abandon") and net > 0:
        why = f" ({v.limit})" if v.verdict == "abandon" and v.limit else ""
        return f" — it would save money, but the verdict is {v.verdict}{why}"
    if v.verdict == "pass" and net < 0:
        return " — it passes on quality but costs more a month once errors are priced"
    return ""


def _next(v: Verdict) -> str:
    if v.verdict != "inconclusive" or "error_rate" in v.flags:
        return ""
    if v.required_n:
        return f"; next: ~{v.required_n:,} test examples would decide"
    return "; next: more test examples would decide"


def decision_lines(s: Summary) -> list[str]:
    """One line per decision a manager can act on: what to do, the Δ against the margin, the
    dollars a month with their interval, and the next step when undecided."""
    if s.guard is None:
        return []
    pairs = []
    for key, v in s.guard.verdicts.items():
        h = v.hypothesis or s.hypothesis(key)
        if h is not None:
            pairs.append((h, v))
    out = []
    for h, v in pairs:
        others = [(h2, v2) for h2, v2 in pairs if v2 is not v]
        action = _held_back(h, v, others) or _action(h, v)
        label = verdict_label(v.model_dump())
        out.append(f"- {action} ({label}): {_quality(h, v)}{_money(s, h, v)}{_next(v)}.")
    return out


def plain(line: str) -> str:
    """A markdown decision line as terminal text (no bullets, bold or backticks)."""
    return line.removeprefix("- ").replace("**", "").replace("`", "")


__all__ = [
    "plain",
    "decision_lines",
    "guard_fingerprint",
    "hypothesis_lines",
    "hypothesis_text",
    "margin_text",
    "money_of",
    "reconcile",
]
