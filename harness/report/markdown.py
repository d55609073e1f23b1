"""report.md: the run's verdicts, comparison, differences, break-even, judge, retrieval and the
worst examples, as markdown rendered from the run directory's files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.decide.costs import cost_per_request
from harness.decide.sections import decision_lines, guard_fingerprint, hypothesis_lines
from harness.report.cells import as_text, md_cell, md_ci, md_inline, md_money, md_num, md_table
from harness.report.decision_sections import (
    costs_at_volume,
    disagreements,
    example_cells,
    iteration_history,
    plot_gaps,
    record_extras,
    training_costs,
)
from harness.report.diagnosis_section import diagnosis_section
from harness.report.stage_sections import judge_section, retrieval_section
from harness.report.value_section import value_lines
from harness.results import Summary, VariantFigures, figures_of
from harness.rundir.reader import RunFiles
from harness.score.record import example_score, reason_text
from harness.stats.numbers import exit_text, money, p_value, verdict_label
from harness.stats.summary import partial_cost_note, primary_metric

WORST_PER_VARIANT = 5


def cost_per_1k(v: VariantFigures | dict[str, Any]) -> float | None:
    """Dollars per 1,000 requests; None (printed "–") when no call was answered: a variant
    whose calls all failed has no cost figure, never $0."""
    f = figures_of(v)
    if not f.answered:
        return None
    measured = f.metric("cost_per_1k").value
    if measured is not None:
        return measured
    cpr = cost_per_request(f)
    return None if cpr is None else cpr * 1000


# ---------------------------------------------------------------- markdown


def render_markdown(run: RunFiles, plot_paths: list[Path]) -> str:
    s = run.summary
    variants = s.get("variants") or {}
    baseline = s.get("baseline")
    metrics = list(s.get("metrics") or [])
    for v in variants.values():
        metrics += [m for m in v.get("metrics", {}) if m not in metrics]
    lines = [f"# {run.suite_name} — run {s.get('run_id', run.path.name)}", ""]
    facts = [
        f"task: {s.get('task', '?')}",
        f"test examples: {s.get('n_examples', '?')}",
        f"baseline: `{baseline}`",
        f"started {s.get('started_at', '?')}, finished {s.get('finished_at', '?')}",
    ]
    lines += ["; ".join(facts), ""]
    # The decision first: one line a manager can act on per hypothesis.
    decision = decision_lines(run.typed)
    if decision:
        lines += ["## Decision", "", *decision, ""]
    lines += _hypothesis(run.typed)
    lines += _verdicts(s)
    lines += iteration_history(s)
    # The terminal's per-variant notes ("no price for … — set `pricing:`", retries, partial
    # costs) reach the report too; a summary written before they were kept gets the cost one.
    variant_notes = [
        f"{name}: {note}"
        for name, v in variants.items()
        for note in (
            v["notes"]
            if "notes" in v
            else ([partial_cost_note(v)] if v.get("unpriced_calls") else [])
        )
    ]
    lines += _notes(s.get("notes") or [], variant_notes, run.notes)

    lines += _comparison(variants, metrics, baseline)

    delta_rows = []
    for name, v in variants.items():
        for m, d in (v.get("delta") or {}).items():
            delta_rows.append(
                [f"**{name}**", m, md_ci(d, m, delta=True), p_value(d.get("p_value"))]
            )
    if delta_rows:
        lines += [f"## Differences vs baseline `{baseline}` (paired, same examples)", ""]
        lines += md_table(["variant", "metric", "Δ [95% CI]", "p"], delta_rows)

    lines += training_costs(s)
    lines += _break_even(s)
    lines += value_lines(s)
    lines += costs_at_volume(s, (run.suite.get("volume") or {}).get("monthly_requests"))
    lines += judge_section(s)
    lines += retrieval_section(s)

    gaps = plot_gaps(s, primary_metric(s))
    if plot_paths or gaps:
        lines += ["## Plots", ""] + gaps
        for p in plot_paths:
            lines += [f"![{p.stem}](plots/{p.name})", ""]

    lines += disagreements(run)
    lines += diagnosis_section(run)
    lines += _worst(run)
    return "\n".join(lines).rstrip() + "\n"


def _comparison(variants: dict[str, Any], metrics: list[str], baseline: Any) -> list[str]:
    lines: list[str] = []
    lines += ["## Comparison", ""]
    header = [
        "variant",
        "kind",
        "model",
        *metrics,
        "spent (USD)",
        "would cost (USD)",
        "cost / 1k req",
        "errors",
    ]
    rows = []
    for name, raw in variants.items():
        v = figures_of(raw)
        label = f"**{name}** (baseline)" if name == baseline else f"**{name}**"
        errors = f"{v.n_errors} / {v.n_calls}"
        if v.errors_by_reason:
            errors += " (" + ", ".join(f"{k}: {n}" for k, n in v.errors_by_reason.items()) + ")"
        unpriced = {"unpriced_calls": v.unpriced_calls}
        rows.append(
            [label, md_cell(v.kind), md_cell(v.model)]
            + [md_ci((raw.get("metrics") or {}).get(m), m) for m in metrics]
            + [
                md_num(v.spent_usd, "cost"),
                md_money(v.cost_usd, unpriced),
                md_money(cost_per_1k(v), unpriced),
                md_cell(errors),
            ]
        )
    lines += md_table(header, rows)
    lines += ["Values with [95% CI]; rates in percent, their differences in points (pts).", ""]
    return lines


def _hypothesis(s: Summary) -> list[str]:
    """The pre-registered hypotheses, one line each; a weakened one beside what it replaced."""
    if not s.hypotheses:
        return []
    fp = guard_fingerprint(s)
    lines = [
        f"**Hypotheses** (pre-registered{f', fingerprint `{fp}`' if fp else ''}):",
        "",
        *hypothesis_lines(s),
        "",
    ]
    moved = s.guard.moved_goalposts if s.guard is not None else None
    if isinstance(moved, dict) and moved.get("registered"):
        # The loosened hypothesis is not the pre-registered one: show both and the change.
        reg, cur = moved["registered"], moved.get("current") or {}
        which = f" `{moved['key']}`" if moved.get("key") and len(s.hypotheses) > 1 else ""
        lines += [
            f"**Hypothesis{which}** (pre-registered in run `{moved.get('registered_run_id')}`): "
            f"{reg.get('test')} on `{reg.get('metric')}`, margin {reg.get('margin')}, "
            f"confidence {reg.get('confidence')}.",
            "",
            f"**This run's hypothesis** (weaker — it does not count for the ledger): "
            f"{cur.get('test')} on `{cur.get('metric')}`, margin {cur.get('margin')}, "
            f"confidence {cur.get('confidence')}; changed: "
            f"{md_inline('; '.join(str(c) for c in moved.get('changes') or []))}.",
            "",
        ]
    return lines


# What each guard flag means, for the reader of the verdict.
FLAG_TEXT = {
    "error_rate": "provider errors above the guard's max_error_rate: the run could not be judged",
    "moved_goalposts": "the hypothesis is weaker than the one registered first (see below)",
}


def _verdicts(s: dict[str, Any]) -> list[str]:
    guard = s.get("guard") or {}
    verdicts = guard.get("verdicts") or {}
    if not verdicts:
        return []
    lines = ["## Verdicts", ""]
    for name, v in verdicts.items():
        verdict = verdict_label(v) if isinstance(v, dict) else v  # a flagged pass says so
        sentence = v.get("sentence", "") if isinstance(v, dict) else ""
        # The sentence is the product: never cut it (unlike table cells).
        lines.append(f"- **{name} — {verdict}**: {md_inline(sentence)}")
        for flag in (v.get("flags") or []) if isinstance(v, dict) else []:
            lines.append(f"  - ⚠ {md_inline(flag)}: {FLAG_TEXT.get(flag, flag)}")
    lines += _goalposts(guard.get("moved_goalposts"))
    lines.append(f"\n{exit_text(s.get('exit_code', '?'))}")
    return lines + [""]


def _notes(*groups: list[str]) -> list[str]:
    """What weakens or limits this report (e.g. a ledger read from runs/ only); none: nothing."""
    notes = [n for g in groups for n in g]
    if not notes:
        return []
    return ["**Notes**", "", *(f"- {md_inline(n)}" for n in notes), ""]


def _goalposts(moved: Any) -> list[str]:
    if not moved:
        return []
    if not isinstance(moved, dict):
        return [f"- **moved goalposts**: {md_inline(as_text(moved))}"]
    changes = "; ".join(str(c) for c in moved.get("changes") or []) or "the hypothesis changed"
    text = (
        f"- **moved goalposts**: {md_inline(changes)} — registered in run "
        f"`{moved.get('registered_run_id')}`, weakened after the failing run "
        f"`{moved.get('after_failing_run_id')}`"
    )
    return [text]


BREAK_EVEN_COLUMNS = {
    "training_usd": "training",
    "saving_per_request": "saving / request",
    "cost_ratio": "cost ratio",
    "break_even_requests": "break-even requests",
    "payback_months": "payback (months)",
    "monthly_saving_usd": "monthly saving",
}


def _be_num(key: str, x: Any) -> str:
    if not isinstance(x, (int, float)):
        return "–"
    if key.endswith("_usd") or key.endswith("per_request"):
        return money(x)
    if key.endswith("requests"):
        return f"{x:,.0f}"
    return f"{x:.2f}"


def _break_even(s: dict[str, Any]) -> list[str]:
    rows = {k: v for k, v in (s.get("break_even") or {}).items() if isinstance(v, dict)}
    if not rows:
        return []
    lines = ["## Break-even (variants cheaper per request than the baseline)", ""]
    table = [
        [f"**{name}**"] + [_be_num(k, v.get(k)) for k in BREAK_EVEN_COLUMNS]
        for name, v in rows.items()
    ]
    return lines + md_table(["variant", *BREAK_EVEN_COLUMNS.values()], table)


def _worst(run: RunFiles) -> list[str]:
    """The lowest-scored answers of the variants not compared above (the baseline, or all
    without one), with what was expected and what the model gave."""
    compared = {n for n in run.variants if n != run.summary.get("baseline")}
    if run.summary.get("baseline") not in run.records:
        compared = set()
    lines = [f"## Worst examples (up to {WORST_PER_VARIANT} per variant)", ""]
    any_rows = False
    for name in run.variants:
        if name in compared:
            continue
        recs = run.records.get(name) or []
        worst = sorted(recs, key=lambda r: (example_score(r), str(r.get("id"))))[:WORST_PER_VARIANT]
        worst = [r for r in worst if example_score(r) < 1.0]
        if not worst:
            continue
        any_rows = True
        # Judge samples and retrieved passages get a column when the variant has them.
        extra = record_extras(worst)
        rows = []
        for r in worst:
            rows.append(
                example_cells(run, r)
                + [md_num(example_score(r))]
                + [md_cell(f(r)) for f in extra.values()]
                + [md_cell(reason_text(r))]
            )
        lines += [f"### {name}", ""]
        header = ["id", "input", "expected", "got", "score", *extra, "reason"]
        lines += md_table(header, rows)
    if not any_rows:
        shown = [n for n in run.variants if n not in compared]
        if compared and shown:  # the candidates' misses are in the disagreements above
            names = ", ".join(f"`{n}`" for n in shown)
            lines += [f"No example of {names} scored below 1.", ""]
        else:
            lines += ["No example scored below 1.", ""]
    return lines
