"""The sunk-cost ledger: what each lineage (variant name) has cost and achieved across runs.

A run records one compact `ledger_entry` (logged by tracking as a tag of the parent run); the
ledger of a lineage is folded from the entries of earlier runs plus the current one. Iterations
are distinct model ids: re-running the same fine-tuned model is not a new attempt, and its
training cost is counted once. Evaluation spend is counted on every run, because every run paid.

Only an honest pass (under a hypothesis no weaker than the registered one) counts as a pass, and
once a lineage was abandoned it stays abandoned. A smoke run (`--limit`) adds its evaluation spend
and nothing else: no iteration, no training, no best Δ, no pass or abandon. A run excluded with
`harness ledger exclude` keeps its spend (the money is gone) and its iteration (the attempt was
made), and counts for nothing else: its Δ leaves best-so-far, its verdict is no pass or abandon.
`ledger`, `finetune` and `run` all fold the lineage here, so they count alike.
"""

from __future__ import annotations

from typing import Any

from harness.finetune.records import unevaluated
from harness.stats.numbers import money


def ledger_entry(suite, summary: dict[str, Any]) -> dict:
    """This run's contribution to every lineage's ledger (small: it travels as an MLflow tag).

    {"metric": "macro_f1", "limit": None, "variants": {name: {"model", "metric", "training_usd",
    "eval_cost_usd", "delta", "verdict", "honest_pass"}}}; `limit` is --limit's N for a smoke run;
    `delta` is the Δ of the first hypothesis about the variant, on its `metric` (the guard
    metric vs the baseline for others; None without a guard); `verdict` and
    `honest_pass` are None here and filled in by harness.decide.guard.decide once the verdicts
    exist.
    """
    hyps = suite.hypotheses()
    metric = hyps[0].metric if hyps else None
    # A lineage's Δ is that of the first hypothesis about it (the guard metric vs the baseline
    # for a variant no hypothesis names).
    first = {}
    for h in reversed(hyps):
        first[h.candidate] = h
    out: dict[str, dict] = {}
    for v in suite.variants:
        stats = summary.get("variants", {}).get(v.name)
        if stats is None:  # not selected in this run (--variant)
            continue
        h = first.get(v.name)
        delta = (stats.get("delta") or {}).get(metric) if metric else None
        if h is not None:
            delta = _delta_of(suite, summary, h, stats)
        out[v.name] = {
            # A run that could not be judged (provider errors above max_error_rate) adds its
            # spend and nothing else: no iteration, no Δ in the history, no best so far.
            "judged": _judged(suite, summary, v.name),
            "model": v.model,
            "metric": h.metric if h is not None else metric,
            "training_usd": _training_usd(v),
            # Real calls only: a cached answer was paid for by the run that sent it.
            "eval_cost_usd": round(float(stats.get("spent_usd") or 0.0), 6),
            "delta": None if not delta or delta.get("value") is None else round(delta["value"], 6),
            # The interval travels too: the report's iteration history shows Δ with its CI.
            "delta_ci": _ci(delta),
            "verdict": None,
            "honest_pass": None,
            # Each hypothesis on the variant: its own Δ (vs its own baseline) and verdict, so
            # the iteration history of one hypothesis never shows another's.
            "hypotheses": {
                h.key: {
                    "metric": h.metric,
                    "baseline": h.baseline,
                    "delta": _rounded(_delta_of(suite, summary, h, stats)),
                    "delta_ci": _ci(_delta_of(suite, summary, h, stats)),
                    "verdict": None,
                }
                for h in hyps
                if h.candidate == v.name
            },
        }
    return {"metric": metric, "limit": summary.get("limit"), "variants": out}


def _delta_of(suite, summary: dict[str, Any], h, stats: dict[str, Any]) -> dict | None:
    """A hypothesis's Δ: its comparison, else the variant's own Δ vs the suite's baseline."""
    return (summary.get("comparisons") or {}).get(h.key) or (
        (stats.get("delta") or {}).get(h.metric) if h.baseline == suite.baseline else None
    )


def _rounded(delta: dict | None) -> float | None:
    return None if not delta or delta.get("value") is None else round(delta["value"], 6)


def _judged(suite, summary: dict[str, Any], name: str) -> bool:
    """The variant and the suite's baseline answered within max_error_rate."""
    variants = summary.get("variants", {})
    for n in {name, suite.baseline}:
        s = variants.get(n) or {}
        calls = s.get("n_calls") or 0
        if calls and (s.get("n_errors") or 0) / calls > suite.max_error_rate(n):
            return False
    return True


def _training_usd(v) -> float | None:
    """A variant's training cost; None (unknown) for a `training:` or job with no price."""
    if v.training is None:
        return 0.0
    cost = v.training.total_usd()
    return None if cost is None else round(cost, 6)


def spend_text(led: dict) -> str:
    """ "$X spent ($A training + $B evaluation)", saying which iterations have no training price."""
    text = (
        f"{usd(led['spent_usd'])} spent ({usd(led['training_usd'])} training + "
        f"{usd(led['eval_usd'])} evaluation)"
    )
    return text + unknown_training_text(led)


def unknown_training_text(led: dict) -> str:
    unknown = led.get("training_unknown") or []
    if not unknown:
        return ""
    return f"; training cost of {', '.join(unknown)} unknown (no price)"


def lineage(name: str, history: list[dict], current: dict, jobs: list[dict] | None = None) -> dict:
    """Fold the entries of `name` from earlier runs (oldest first) and this run's entry.

    `current` is this run's `ledger_entry(...)`. Returns iterations, the distinct model ids in
    order, training / evaluation / total spend, the best Δ so far on the current guard metric
    (earlier runs on another metric are not comparable), whether an earlier run passed honestly
    and the run that abandoned the lineage, if one did. Smoke runs (`limit` set) add their
    evaluation spend only. `jobs`: the variant's fine-tuning jobs (harness.finetune.records):
    a model trained but superseded before any run evaluated it is an iteration, and it and the
    failed jobs no run charged are spend — the same count in `ledger`, `finetune` and `run`.
    """
    same = retrained_models(jobs or [])
    entries = _entries(name, history, current)
    this = current.get("variants", {}).get(name)

    models: list[str] = []
    training = 0.0
    evaluation = 0.0
    best: float | None = None
    passed_before = False
    abandoned_in = None
    charged: set = set()  # model ids whose training is counted
    unknown: list[str] = []  # model ids whose training had no price
    rows: list[dict] = []  # the iteration history, one row per counted run
    for le, e, run_id, is_current, excluded in entries:
        evaluation += float(e.get("eval_cost_usd") or 0.0)
        if le.get("limit") is not None:
            continue
        trained: float | None = 0.0
        if e.get("model") not in charged:
            charged.add(e.get("model"))
            trained = e.get("training_usd")
            if trained is None and "training_usd" in e:
                unknown.append(e.get("model"))
            else:
                trained = float(trained or 0.0)
                training += trained
        # A lost model trained again is the iteration it replaces (its training still paid).
        iteration = same.get(e.get("model"), e.get("model"))
        if excluded:
            # Its iteration still counts toward max_iterations (the attempt was made); its Δ,
            # pass or abandon count for nothing.
            if iteration not in models:
                models.append(iteration)
            continue
        if e.get("judged") is False:  # every call failed: its spend counts, it is no iteration
            continue
        rows.append(
            {
                "run_id": run_id,  # None: this run
                "model": e.get("model"),
                "training_usd": trained,
                "delta": e.get("delta"),
                "delta_ci": e.get("delta_ci"),
                "metric": le.get("metric"),
                "verdict": e.get("verdict"),
                "hypotheses": e.get("hypotheses"),  # None: a run from before they were kept
            }
        )
        if iteration not in models:
            models.append(iteration)
        d = e.get("delta")
        same_metric = e.get("metric", le.get("metric")) == (
            (this or {}).get("metric", current.get("metric"))
        )
        if d is not None and same_metric and (best is None or d > best):
            best = d
        if is_current:
            continue
        # Entries written before `honest_pass` existed cannot tell: their pass counts.
        if e.get("honest_pass", e.get("verdict") == "pass"):
            passed_before = True
        if e.get("verdict") == "abandon" and abandoned_in is None:
            abandoned_in = run_id
    if jobs:
        extra, paid = unevaluated(jobs, charged)
        models += [m for m in extra if m not in models]
        training += paid
    return {
        "iterations": len(models),
        "models": models,
        "runs": len(entries),
        "training_usd": round(training, 6),  # the priced iterations'
        "training_unknown": unknown,
        "eval_usd": round(evaluation, 6),
        "spent_usd": round(training + evaluation, 6),
        "best_delta": best,
        "passed_before": passed_before,
        "abandoned_in": abandoned_in,
        "history": rows,
    }


def _entries(name: str, history: list[dict], current: dict) -> list[tuple]:
    """(ledger entry, the variant's part, run id, is this run, excluded) of every run that
    evaluated `name`, oldest first, this run last."""
    entries = []
    for run in history:
        le = run.get("ledger_entry") or {}
        entry = (le.get("variants") or {}).get(name)
        if isinstance(entry, dict):
            entries.append((le, entry, run.get("run_id"), False, bool(run.get("excluded"))))
    this = current.get("variants", {}).get(name)
    if this:
        entries.append((current, this, None, True, False))
    return entries


def retrained_models(jobs: list[dict]) -> dict[str, str]:
    """{model id: the model id of the iteration it belongs to} for models trained again because
    the earlier one was lost from this disk (a job's `retrain_of`), following chains of them."""
    model_of = {j["job_id"]: j.get("model_id") for j in jobs if j.get("job_id")}
    parent = {j["job_id"]: j["retrain_of"] for j in jobs if j.get("retrain_of")}
    out: dict[str, str] = {}
    for job_id in parent:
        first = job_id
        for _ in range(len(parent)):  # bounded: a damaged store's cycle cannot hang the ledger
            if first not in parent or parent[first] not in model_of:
                break
            first = parent[first]
        if model_of.get(job_id) and model_of.get(first) and first != job_id:
            out[model_of[job_id]] = model_of[first]
    return out


def _ci(delta: dict | None) -> list[float] | None:
    if not delta or delta.get("ci_low") is None or delta.get("ci_high") is None:
        return None
    return [round(delta["ci_low"], 6), round(delta["ci_high"], 6)]


def limit_reached(ledger: dict, max_iterations: int | None, budget_usd: float | None) -> str | None:
    """Why the lineage must stop ("3 of 3 iterations", "$512 of $500 budget"), or None."""
    reasons = []
    if max_iterations is not None and ledger["iterations"] >= max_iterations:
        reasons.append(f"{ledger['iterations']} of {max_iterations} iterations")
    if budget_usd is not None and ledger["spent_usd"] >= budget_usd:
        reasons.append(f"{usd(ledger['spent_usd'])} of {usd(budget_usd)} budget")
    return ", ".join(reasons) or None


def usd(x: float) -> str:
    """Dollars for a sentence, as every display writes them (harness.stats.numbers.money)."""
    return money(x)
