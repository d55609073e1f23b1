"""`harness plan`: how many test examples each hypothesis needs, before spending on the calls.

One sample-size method everywhere (harness.stats.bootstrap.required_n): the guard passes when
the lower bound of its interval clears the threshold, so n is what makes that happen with
`power` when the true Δ is `expect_delta` (default: one margin beyond the threshold, the run's
assumption). Each hypothesis is sized at the one-sided level it is sure to be tested at
(harness.decide.rule.planned_alpha: α/m under Holm). The per-example sd of the paired difference
is a pilot run's (read from its interval, as the run's "~N test examples would decide" reads its
own, harness.decide.rule.required_n) or, without one, the assumed 0.5 of a 0/1 difference — so
with the pilot's run directory `plan` says exactly what that run said.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.decide.rule import planned_alpha, required_n, threshold_of
from harness.errors import SuiteError
from harness.stats.bootstrap import POWER, sd_from_interval
from harness.stats.bootstrap import required_n as size_n
from harness.suite import NET_MONTHLY_VALUE, Hypothesis, Suite

ASSUMED_SD = 0.5  # a 0/1 paired difference at its widest


@dataclass
class Sizing:
    hypothesis: Hypothesis
    alpha: float  # one-sided level it is sized at
    gap: float  # true Δ beyond the threshold it is sized to show
    sd: float | None
    sd_source: str  # "assumed" or "pilot run <id>"
    n: int | None
    why_not: str | None = None  # when n is None

    def to_dict(self) -> dict:
        h = self.hypothesis
        return {
            "key": h.key,
            "candidate": h.candidate,
            "baseline": h.baseline,
            **h.as_dict(),
            "alpha": self.alpha,
            "gap": self.gap,
            "sd": self.sd,
            "sd_source": self.sd_source,
            "n": self.n,
            "why_not": self.why_not,
        }


def read_pilot(run_dir: str | Path) -> dict:
    """A finished run's summary.json (the pilot's intervals)."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise SuiteError(
            f"--pilot {run_dir}: no summary.json there — point it at a finished run directory "
            "(runs/<suite>/<run-id>)"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SuiteError(f"--pilot {path}: not readable JSON ({e}) — run it again") from None


def check_pilot(
    suite: Suite, pilot: dict, run_dir: str | Path, labels: list[str] | None = None
) -> None:
    """A pilot says something about this suite's spread only if it measured the same thing and
    measured anything at all: the same lineage (suite) — or the same task, labels and metric —
    and answered calls on the variants it is read for. Otherwise a SuiteError (exit 2) naming
    what is wrong. `labels`: this suite's labels, to compare with a foreign pilot's."""
    where = f"--pilot {run_dir}: run {pilot.get('run_id')}"
    hyps = suite.hypotheses()
    if pilot.get("suite") != suite.name:
        wrong = []
        if pilot.get("task") != suite.task:
            wrong.append(f"its task is {pilot.get('task')!r}, not {suite.task!r}")
        theirs = _pilot_labels(run_dir, pilot)
        if labels and theirs is not None and sorted(theirs) != sorted(labels):
            wrong.append(
                f"its labels are {', '.join(sorted(theirs))}, not {', '.join(sorted(labels))}"
            )
        missing = [h.metric for h in hyps if h.metric not in (pilot.get("metrics") or [])]
        if missing:
            wrong.append(f"it has no {missing[0]} metric")
        if wrong:
            raise SuiteError(
                f"{where} is suite {pilot.get('suite')!r}, not {suite.name!r}, and "
                f"{'; '.join(wrong)} — give a pilot run of this suite (or of one with the same "
                "task, labels and metric)"
            )
    variants = pilot.get("variants") or {}
    for name in dict.fromkeys(n for h in hyps for n in (h.baseline, h.candidate)):
        v = variants.get(name)
        if v and v.get("n_calls") and (v.get("n_errors") or 0) >= v["n_calls"]:
            raise SuiteError(
                f"{where}: every one of {name}'s {v['n_calls']:,} calls failed — it answered "
                "no example, so it shows no spread; give a pilot run whose calls were answered"
            )
    answered = [v for v in variants.values() if (v.get("n_calls") or 0) > (v.get("n_errors") or 0)]
    if not answered:
        raise SuiteError(
            f"{where}: no variant answered any example — it shows no spread; give a pilot "
            "run whose calls were answered"
        )


def _pilot_labels(run_dir: str | Path, pilot: dict) -> list[str] | None:
    """The pilot's labels: its resolved suite.yaml's list, else the classes its test targets
    had (per_class support), else unknown (None)."""
    import yaml

    try:
        path = Path(run_dir) / "suite.yaml"
        labels = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("labels")
    except (OSError, yaml.YAMLError, AttributeError):
        labels = None
    if isinstance(labels, list):
        return [str(x) for x in labels]
    seen: dict[str, None] = {}
    for v in (pilot.get("variants") or {}).values():
        for label, row in (v.get("per_class") or {}).items():
            if (row or {}).get("support"):
                seen[str(label)] = None
    return list(seen) or None


def pilot_delta(pilot: dict, h: Hypothesis) -> tuple[dict | None, int]:
    """The pilot's paired delta for `h` (with its confidence) and its number of examples."""
    d = (pilot.get("comparisons") or {}).get(h.key)
    stats = (pilot.get("variants") or {}).get(h.candidate) or {}
    if d is None and h.baseline == pilot.get("baseline"):
        d = (stats.get("delta") or {}).get(h.metric)
    if d is None or d.get("metric", h.metric) != h.metric:
        return None, 0
    if d.get("confidence") is None:
        d = {**d, "confidence": 0.95}
    return d, int(stats.get("n_examples") or pilot.get("n_examples") or 0)


def size(
    h: Hypothesis,
    *,
    m: int,
    correction: str,
    power: float = POWER,
    expect_delta: float | None = None,
    pilot: dict | None = None,
) -> Sizing:
    # The run tests each iteration at α / max_iterations (decide.rule.reuse_iterations).
    alpha = planned_alpha(h.confidence, m, correction) / (h.max_iterations or 1)
    gap = h.margin if expect_delta is None else expect_delta - threshold_of(h.test, h.margin)
    d, n_pilot = pilot_delta(pilot, h) if pilot is not None else (None, 0)
    source = f"pilot run {pilot.get('run_id')}" if d is not None else "assumed"
    if pilot is not None and d is None:
        source = f"assumed (pilot run {pilot.get('run_id')} has no {h.key} on {h.metric})"
    row = Sizing(h, alpha, gap, None if d is None else 0.0, source, None)
    if gap <= 0:
        row.why_not = (
            "the expected Δ does not clear the threshold — no test set shows it"
            if expect_delta is not None
            else "margin 0 — no test-set size shows a difference of 0; size it with `harness plan --expect-delta D`"
        )
        return row
    if d is not None:
        if d.get("ci_low") is None or d.get("ci_high") is None or not n_pilot:
            row.sd, row.why_not = None, f"the {source} has no interval for it"
            return row
        if d.get("degenerate") or d["ci_high"] - d["ci_low"] <= 1e-12:
            # Zero spread is no measurement of the spread: sized on it, any n would "do".
            raise SuiteError(
                f"--pilot: {source} shows no spread for {h.key} on {h.metric} (interval "
                f"[{d['ci_low']:+.3g}, {d['ci_high']:+.3g}] on {n_pilot:,} examples) — give a "
                "pilot run with more examples, or plan without --pilot"
            )
        # The very function behind the run's "~N test examples would decide".
        row.n = required_n(d, n_pilot, gap, alpha, power)
        row.sd = sd_from_interval(d["ci_low"], d["ci_high"], n_pilot, d["confidence"])
        return row
    if h.metric == NET_MONTHLY_VALUE:
        row.sd, row.why_not = None, "dollars have no assumed spread — give a pilot run (--pilot)"
        return row
    row.sd = ASSUMED_SD
    row.n = size_n(gap, sd=ASSUMED_SD, alpha=alpha, power=power)
    return row


def plan(
    suite: Suite,
    *,
    power: float = POWER,
    expect_delta: float | None = None,
    pilot: dict | None = None,
) -> list[Sizing]:
    """One sizing per hypothesis of the suite."""
    hyps = suite.hypotheses()
    return [
        size(
            h,
            m=len(hyps),
            correction=suite.correction,
            power=power,
            expect_delta=expect_delta,
            pilot=pilot,
        )
        for h in hyps
    ]


def plan_lines(suite: Suite, rows: list[Sizing], n_test: int, power: float) -> list[str]:
    """What `harness plan` prints."""
    hyps = len(rows)
    family = (
        f"Holm across {hyps} hypotheses (each sized at α/{hyps}, the level it is sure to get)"
        if suite.correction == "holm" and hyps > 1
        else ("no correction (correction: none)" if hyps > 1 else "one hypothesis")
    )
    out = [f"plan for {suite.name}: {n_test} test examples now; {power:.0%} power; {family}"]
    if not rows:
        out.append("  no hypothesis — add a `guard:` to size the test set for it")
    for r in rows:
        h = r.hypothesis
        pair = f"{h.candidate} vs {h.baseline}"
        name = h.key if h.key.startswith(pair) else f"{h.key}: {pair}"
        head = (
            f"  {name}: {h.metric} {h.test} margin {h.margin:g} at {h.confidence:.0%} "
            f"(one-sided α = {r.alpha:.4g}), "
        )
        if r.n is None:
            out.append(head + f"cannot be sized: {r.why_not}")
            continue
        tail = f"sd {r.sd:.3g} ({r.sd_source}), true Δ {r.gap:+.4g} beyond the threshold"
        verdict = (
            f"enough (you have {n_test:,})"
            if n_test >= r.n
            else f"you have {n_test:,} — add {r.n - n_test:,}"
        )
        out.append(head + f"{tail} → ≥ {r.n:,} test examples; {verdict}")
    return out
