"""`harness ledger SUITE`: a lineage's record as lines a person reads (runs, models, spend, Δ,
verdicts, exclusions), and each guarded variant's folded ledger."""

from __future__ import annotations

from harness.decide.ledger import lineage, spend_text, usd
from harness.stats.numbers import signed


def ledger_lines(
    suite, history: list[dict], lineage_key: str | None, jobs: list[dict] | None = None
) -> list[str]:
    """`jobs` are the lineage's fine-tuning jobs (harness.finetune.records), shown after the runs."""
    hyps = suite.hypotheses()
    metric_of = {}
    for h in reversed(hyps):
        metric_of[h.candidate] = h.metric
    lines = [
        f"ledger of {suite.name} (lineage {lineage_key or 'unknown'}: the test data's hash): "
        f"{len(history)} run(s)"
    ]
    for run in history:
        lines += _run_lines(suite, run)
    if jobs:
        lines.append(f"{len(jobs)} fine-tuning job(s):")
    lines += [_job_line(job) for job in jobs or []]
    for name in suite.guarded():
        mine = [j for j in jobs or [] if j.get("variant") == name]
        led = lineage(name, history, {"metric": metric_of[name], "variants": {}}, mine)
        best = (
            signed(led["best_delta"], metric_of[name], unit=True)
            if led["best_delta"] is not None
            else "—"
        )
        text = f"{name}: {led['iterations']} iteration(s), {spend_text(led)}, best so far {best}"
        # Jobs paid for but not evaluated by a run yet are in no run's ledger entry: said here,
        # not left out of the spend (the next `harness finetune` counts them against the limits).
        unseen = [
            j
            for j in jobs or []
            if j.get("variant") == name and j.get("model_id") not in led.get("models", ())
        ]
        if unseen:
            trained = sum(1 for j in unseen if j.get("status") == "succeeded")
            costs = [j.get("cost_usd") for j in unseen if j.get("cost_usd") is not None]
            unknown = len(costs) < len(unseen)
            text += (
                f"; plus {len(unseen)} fine-tuning job(s) no run has evaluated yet "
                f"({trained} trained model(s), {usd(sum(costs))}"
                + (" + cost unknown" if unknown else "")
                + " spent)"
            )
        if led["passed_before"]:
            text += ", passed"
        if led["abandoned_in"]:
            text += f", abandoned in run {led['abandoned_in']}"
        lines.append(text)
    return lines


def _run_lines(suite, run: dict) -> list[str]:
    """One earlier run's ledger entry: a line per variant (not the baseline) with its model,
    spend, Δ and verdict, marked when it was a smoke run, excluded or under another name."""
    le = run.get("ledger_entry") or {}
    marks = []
    if le.get("limit") is not None:
        marks.append(f"smoke run --limit {le['limit']}")
    if run.get("excluded"):
        marks.append(f"excluded: {run['excluded'].get('why')}")
    if run.get("suite") and run["suite"] != suite.name:
        marks.append(f"as suite {run['suite']}")
    tail = f" [{'; '.join(marks)}]" if marks else ""
    lines = []
    for name, e in (le.get("variants") or {}).items():
        if name == suite.baseline:
            continue
        delta = e.get("delta")
        m = e.get("metric", le.get("metric"))
        shown = signed(delta, m, unit=True) if delta is not None and m else "—"
        spend = float(e.get("training_usd") or 0) + float(e.get("eval_cost_usd") or 0)
        priced = "" if e.get("training_usd", 0) is not None else " + training cost unknown"
        lines.append(
            f"  {run.get('run_id')}  {name}  {e.get('model')}  {usd(spend)}{priced}  Δ {shown}  "
            f"{_entry_verdict(e)}{tail}"
        )
    return lines


def _entry_verdict(e: dict) -> str:
    """A run's verdict on a variant, a pass flagged when it does not count."""
    verdict = e.get("verdict") or "—"
    if verdict == "pass" and e.get("forgetting"):
        return f"pass (flagged: forgetting check {e['forgetting']})"
    if verdict == "pass" and e.get("honest_pass") is False:
        return "pass (flagged: goalposts moved)"
    return verdict


def _job_line(job: dict) -> str:
    cost = job.get("cost_usd")
    shown_cost = usd(float(cost)) if cost is not None else "cost unknown"
    tail = f"  error: {job['error']}" if job.get("error") else ""
    return (
        f"  job {job['job_id']}  {job.get('variant')}  {job.get('status')}  "
        f"{job.get('model_id') or '—'}  {job.get('n_train')} rows, "
        f"{job.get('trained_tokens') or 0} trained tokens, {shown_cost}  "
        f"{job.get('created_at')}{tail}"
    )
