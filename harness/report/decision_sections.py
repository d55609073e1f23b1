"""report.md sections for the manager's question "fine-tune or not?": each lineage's iteration
history, the cost per request at the suite's monthly volume (and when there is no break-even),
why a variant is missing from the cost/quality plot, and the examples on which the candidate and
the baseline disagree.

Each section takes the decision's values as summary.json holds them (harness.decide); nothing
here decides anything."""

from __future__ import annotations

from typing import Any

from harness.decide.costs import cost_per_request, cost_ratio
from harness.decide.history import hypothesis_history
from harness.report.cells import md_cell, md_inline, md_table
from harness.results import figures_of
from harness.rundir.reader import RunFiles
from harness.score.record import example_score, given_answer, judge_text, retrieved_text
from harness.stats.numbers import money, signed, value

DISAGREEMENTS_SHOWN = 5


def iteration_history(s: dict[str, Any]) -> list[str]:
    """One table per hypothesis on a guarded lineage: each counted run's model id, training
    cost, and THIS hypothesis's Δ (vs its own baseline, in its own unit) and verdict
    (harness.decide.history.hypothesis_history); a run that could not be judged is not an
    iteration (harness.decide.ledger)."""
    verdicts = (s.get("guard") or {}).get("verdicts") or {}
    lines: list[str] = []
    for key, v in verdicts.items():
        history = hypothesis_history(s, key)
        if not history:
            continue
        rows = []
        for h in history:
            metric, text = h["metric"], "–"
            if h["delta"] is not None:
                text = signed(h["delta"], metric, unit=True)
                if h["delta_ci"]:
                    ci = h["delta_ci"]
                    text += f" [{signed(ci[0], metric)}, {signed(ci[1], metric)}]"
            rows.append(
                [
                    str(h["iteration"] or "–"),
                    f"`{h['run_id']}` (this run)" if h["this_run"] else f"`{h['run_id']}`",
                    md_cell(h["model"]),
                    money(h["training_usd"]),
                    md_inline(text),
                    md_cell(h["verdict"] or "–"),
                ]
            )
        if not lines:
            lines += ["## Iteration history", ""]
        led, metric = v["ledger"], history[0]["metric"]
        baseline = history[0]["baseline"]
        about = f"{metric} vs {baseline}" if baseline else metric
        lines += [
            f"**{md_inline(key)}** ({md_inline(about)}): {led.get('iterations')} iteration(s), "
            f"{money(led.get('training_usd'))} training + {money(led.get('eval_usd'))} "
            f"evaluation = {money(led.get('spent_usd'))} spent",
            "",
        ]
        header = ["iteration", "run", "model", "training", f"Δ {metric} [CI]", "verdict"]
        lines += md_table(header, rows)
    return lines


def costs_at_volume(s: dict[str, Any], monthly: float | None) -> list[str]:
    """Cost per request, its ratio to the baseline, the monthly cost at `volume.monthly_requests`,
    and an explicit line for each candidate that costs more per request (no break-even)."""
    variants = {n: figures_of(v) for n, v in (s.get("variants") or {}).items()}
    baseline = s.get("baseline")
    base_cpr = cost_per_request(variants.get(baseline or ""))
    rows, dearer = [], []
    for name, v in variants.items():
        cpr = cost_per_request(v)
        ratio = cost_ratio(cpr, base_cpr) if name != baseline else None
        row = [
            f"**{name}** (baseline)" if name == baseline else f"**{name}**",
            money(cpr),
            "1.00×" if name == baseline and cpr is not None else _ratio(ratio),
        ]
        if monthly:
            row.append(money(cpr * monthly) if cpr is not None else "–")
        rows.append(row)
        if ratio is not None and ratio > 1 and name not in (s.get("break_even") or {}):
            dearer.append((name, cpr, ratio))
    if all(r[1] == "–" for r in rows):
        return []
    header = ["variant", "cost / request", "× baseline"]
    if monthly:
        header.append(f"monthly at {monthly:,.0f} requests")
    lines = ["## Cost per request", ""] + md_table(header, rows)
    for name, cpr, ratio in dearer:
        lines.append(
            f"- **no break-even for {md_inline(name)}**: the candidate costs more per request "
            f"than `{md_inline(baseline)}` ({money(cpr)} vs {money(base_cpr)}, {_ratio(ratio)})"
            + (
                f"; it adds {money((cpr - base_cpr) * monthly)} a month at {monthly:,.0f} requests"
                if monthly
                else ""
            )
            + "."
        )
    if not monthly:
        lines.append("- Set `volume: {monthly_requests: N}` in the suite for monthly costs.")
    return lines + [""]


def training_costs(s: dict[str, Any]) -> list[str]:
    """What each trained variant's training cost and how it was measured: a provider's job
    (trained tokens × its price per 1M), a self-hosted one (wall-clock × price per hour), or a
    declared `training:` cost; unknown where nothing prices it, never $0. Where a provider row
    exists, the self-hosted jobs' trained tokens are priced at its rate too."""
    trained = {n: v["training"] for n, v in (s.get("variants") or {}).items() if v.get("training")}
    if not any(t.get("job") for t in trained.values()):
        return []
    rows = []
    for name, t in trained.items():
        job = t.get("job") or {}
        where = "declared (`training:`)"
        if job:
            where = f"{'self-hosted' if job['self_hosted'] else 'provider'} ({job['provider']})"
        price = "–"
        if job.get("price_per_hour") is not None:
            price = f"{money(job['price_per_hour'])} / hour"
        elif job.get("price_per_1m") is not None:
            price = f"{money(job['price_per_1m'])} / 1M tokens"
        wall = job.get("wall_s")
        rows.append(
            [
                f"**{md_inline(name)}**",
                where,
                md_cell(job.get("method")),
                "–" if job.get("trained_tokens") is None else f"{job['trained_tokens']:,}",
                "–" if wall is None else f"{wall / 60:.1f} min",
                price,
                _training_cost(t),
            ]
        )
    header = ["variant", "trained by", "method", "trained tokens", "wall-clock", "price", "cost"]
    lines = ["## Training cost", "", *md_table(header, rows)]
    for name, t in trained.items():
        job = t.get("job") or {}
        if job.get("device"):
            gpu = f", {job['gpu_hours']:.4g} GPU-hours" if job.get("gpu_hours") else ""
            served = f"; served at {job['served_precision']}" if job.get("served_precision") else ""
            lines.append(
                f"- **{md_inline(name)}** trained on {job['device']} in "
                f"{job.get('precision') or '?'}{gpu}{served}."
            )
    providers = [
        (n, t["job"]) for n, t in trained.items() if t.get("job") and not t["job"]["self_hosted"]
    ]
    for name, t in trained.items():
        job = t.get("job") or {}
        if not job.get("self_hosted") or job.get("trained_tokens") is None:
            continue
        for pname, pjob in providers:
            if pjob.get("price_per_1m") is None:
                continue
            at = job["trained_tokens"] * pjob["price_per_1m"] / 1e6
            lines.append(
                f"- **{md_inline(name)}** at {md_inline(pname)}'s price ({money(pjob['price_per_1m'])}"
                f" / 1M trained tokens): {money(at)} for its {job['trained_tokens']:,} trained "
                "tokens (counted by its own tokenizer)."
            )
    return lines + [""]


def _training_cost(t: dict[str, Any]) -> str:
    cost, own = t.get("cost_usd"), (t.get("job") or {}).get("cost_usd")
    if cost is None:
        return "unknown (no price)"
    if own is not None and round(cost - own, 6) > 0:
        return f"{money(cost)} (with {money(cost - own)} of failed jobs)"
    return money(cost)


def _ratio(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}×"


def plot_gaps(s: dict[str, Any], metric: str | None) -> list[str]:
    """Why a variant is missing from the cost/quality plot (never silently)."""
    if not metric:
        return []
    out = []
    for name, raw in (s.get("variants") or {}).items():
        v = figures_of(raw)
        if v.n_calls and not v.answered:
            out.append(
                f"- `{md_inline(name)}` is not in the cost/quality plot: all of its {v.n_calls} "
                "calls failed — no answer, so no cost or quality figure"
            )
        elif cost_per_request(v) is None:
            out.append(
                f"- `{md_inline(name)}` is not in the cost/quality plot: none of its "
                f"{v.n_calls} calls has a price — set `pricing:` on the variant"
            )
        elif v.metric(metric).value is None:
            out.append(f"- `{md_inline(name)}` is not in the cost/quality plot: no {metric} value")
    return out + [""] if out else []


def disagreements(run: RunFiles) -> list[str]:
    """Examples on which a candidate and the baseline disagree, the candidate's losses first:
    what decides "is it better", with the input, the expected answer and both answers."""
    baseline = run.summary.get("baseline")
    base = {(r.get("id"), r.get("repeat", 0)): r for r in run.records.get(baseline) or []}
    if not base:
        return []
    lines: list[str] = []
    for name in run.variants:
        if name == baseline:
            continue
        lost, won = [], []
        for r in run.records.get(name) or []:
            b = base.get((r.get("id"), r.get("repeat", 0)))
            if b is None:
                continue
            gap = example_score(b) - example_score(r)
            if gap > 0:
                lost.append((gap, r, b))
            elif gap < 0:
                won.append((-gap, r, b))
        if not lost and not won:
            continue
        if not lines:
            lines += [
                f"## Where the candidates and the baseline `{md_inline(baseline)}` disagree",
                "",
            ]
        for title, group in (
            (f"{name} wrong, {baseline} right", lost),
            (f"{name} right, {baseline} wrong", won),
        ):
            group.sort(key=lambda t: (-t[0], str(t[1].get("id"))))
            if not group:
                continue
            lines += [f"### {md_inline(title)} ({len(group)})", ""]
            shown = group[:DISAGREEMENTS_SHOWN]
            extra = record_extras([r for _, r, _ in shown])
            rows = []
            for _, r, b in shown:
                rows.append(
                    example_cells(run, r)
                    + [
                        md_cell(given_answer(b)),
                        f"{value(example_score(r))} / {value(example_score(b))}",
                    ]
                    + [md_cell(f(r)) for f in extra.values()]
                )
            header = ["id", "input", "expected", f"{name} got", f"{baseline} got", "score"]
            lines += md_table([md_inline(h) for h in [*header, *extra]], rows)
    return lines


def record_extras(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Columns the shown records have: the judge's samples, the retrieved passages."""
    extra = {
        "judge": judge_text if any(r.get("judge") for r in records) else None,
        "retrieved": retrieved_text if any(r.get("retrieved") for r in records) else None,
    }
    return {k: f for k, f in extra.items() if f is not None}


def example_cells(run: RunFiles, r: dict[str, Any]) -> list[str]:
    """id, input, expected (re-read from the data) and what the model gave, as table cells."""
    ex = run.examples.get(r.get("id"), {})
    return [
        md_cell(r.get("id")),
        md_cell(ex.get("input")),
        md_cell(ex.get("expected")),
        md_cell(given_answer(r)),
    ]
