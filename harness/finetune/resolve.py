"""A trained variant for `harness run`: the model id and training cost of its latest succeeded job.

The suite names how a variant is trained (`finetune:`), never a model id someone copied; this
builds the variant the run evaluates from the job store, so every iteration reaches the ledger
with the cost the provider's trained tokens give.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import SuiteError
from harness.finetune.backends import BACKENDS, finetune_spec
from harness.finetune.records import (
    JobStore,
    iteration_cost,
    job_cost_text,
    self_check,
    suite_lineage,
    train_split_hash,
)
from harness.suite import Suite, Variant
from harness.suite.model import Guard, Training, TrainingJob


def resolve_trained(
    suite: Suite, selected: list[Variant], runs_dir: str | Path, *, checkpoints: bool = False
) -> tuple[Suite, list[Variant], list[str]]:
    """(suite, selected, notes) with each selected `finetune:` variant's model id and training
    cost from its latest succeeded job. SuiteError (exit 2, nothing called) when one has none.

    With `checkpoints`, the job's intermediate checkpoints join as variants `<name>.step-<N>`:
    evaluated and reported, never guarded (their training is the variant's, charged once)."""
    # Every variant's: a wrong key is exit 2 before anything runs.
    specs = {v.name: finetune_spec(suite, v) for v in suite.variants if v.finetune is not None}
    trained = [v for v in selected if v.finetune is not None]
    if not trained:
        return suite, selected, []
    key = suite_lineage(suite, runs_dir)
    store = JobStore(runs_dir, key) if key else None
    replaced: dict[str, Variant] = {}
    extra: dict[str, list[Variant]] = {}
    notes = []
    for v in trained:
        jobs = store.jobs(v.name) if store else []
        done = [j for j in jobs if j.get("status") == "succeeded" and j.get("model_id")]
        if not done:
            latest = jobs[-1] if jobs else None
            state = (
                f"its latest job {latest['job_id']} is {latest['status']}"
                if latest
                else "it has no job yet"
            )
            raise SuiteError(
                f"{v.name} has no trained model: {state} — run `harness finetune "
                f"{suite.display_path} --variant {v.name}`, or leave it out with --variant"
            )
        job = _trained_for(done, specs[v.name], train_split_hash(suite))
        notes += _stale(suite, v.name, job, specs[v.name])
        short = self_check(job)
        if short is not None:
            notes.append(
                f"{v.name}: WARNING — the served model {job['model_id']} gave the training-time "
                f"greedy answer on only {short[0]} of {short[1]} examples when job {job['job_id']} "
                "checked it: this run may not evaluate the trained model"
            )
        cost = iteration_cost(jobs, job["job_id"])
        training = Training(cost_usd=cost, job=training_job(job))
        replaced[v.name] = v.model_copy(
            update={"model": job["model_id"], "training": training, "finetune": None}
        )
        own = job.get("cost_usd")
        notes.append(
            f"{v.name}: {job['model_id']} from job {job['job_id']} ({job.get('trained_tokens')} "
            f"trained tokens, training {'' if own is not None else 'cost '}"
            f"{job_cost_text(job, own)}"
            + (f"; with the failed jobs before it ${cost:.4f}" if cost not in (None, own) else "")
            + ")"
        )
        if checkpoints:
            extra[v.name] = [
                v.model_copy(
                    update={
                        "name": f"{v.name}.step-{c['step']}",
                        "model": c["model_id"],
                        "training": Training(cost_usd=0.0),
                        "finetune": None,
                    }
                )
                for c in job.get("checkpoints") or []
            ]

    def expand(variants: list[Variant]) -> list[Variant]:
        return [x for v in variants for x in (replaced.get(v.name, v), *extra.get(v.name, []))]

    update: dict = {"variants": expand(suite.variants)}
    g = suite.spec.guard
    # Only a single guard with the default (every fine-tuned variant) would pick the checkpoints
    # up; list entries name their candidate.
    if (
        any(extra.values())
        and isinstance(g, Guard)
        and g.applies_to is None
        and g.candidate is None
    ):
        # The guard keeps judging the variants it judged; the checkpoints are only measured.
        applies_to = suite.guarded()
        guard = g.model_copy(update={"applies_to": applies_to})
        update["spec"] = suite.spec.model_copy(update={"guard": guard})
        update["raw"] = {**suite.raw, "guard": {**suite.raw["guard"], "applies_to": applies_to}}
    return suite.model_copy(update=update), expand(selected), notes


def _trained_for(done: list[dict], spec, train_sha: str | None) -> dict:
    """The latest succeeded job trained as the suite now says (settings and train split): two
    suites on one test file share a job store, and a variant of the same name there may be
    another suite's, on another base model. None such: the latest, with `_stale`'s notes."""
    same = [
        j
        for j in done
        if j.get("settings") == spec.settings() and j.get("train_sha256") in (None, train_sha)
    ]
    return (same or done)[-1]


def _stale(suite: Suite, name: str, job: dict, spec) -> list[str]:
    """What changed in the suite since the job trained: the model is still evaluated, and the
    terminal and report say that it is not the suite's current training."""
    again = f"`harness finetune {suite.display_path} --variant {name}` trains on the current ones"
    out = []
    before = job.get("train_sha256")
    if before is not None and before != train_split_hash(suite):
        out.append(
            f"{name}: the train split changed after job {job['job_id']} trained on it — this "
            f"run evaluates the model of the old rows; {again}"
        )
    if job.get("settings") is not None and job["settings"] != spec.settings():
        out.append(
            f"{name}: the `finetune:` settings changed after job {job['job_id']} — this run "
            f"evaluates the model of the old settings; {again}"
        )
    return out


def training_job(job: dict) -> TrainingJob:
    """The facts of a job record the report's training-cost table shows."""
    provider = job.get("provider") or "openai"
    options = (job.get("settings") or {}).get("options") or {}
    registered = BACKENDS.get(provider)
    return TrainingJob(
        job_id=job["job_id"],
        provider=provider,
        self_hosted=registered.self_hosted if registered else False,
        method=options.get("method"),
        trained_tokens=job.get("trained_tokens"),
        cost_usd=job.get("cost_usd"),
        wall_s=job.get("wall_s"),
        price_per_hour=options.get("price_per_hour"),
        price_per_1m=options.get("price_per_1m"),
        device=job.get("device"),
        gpu_hours=job.get("gpu_hours"),
        precision=job.get("precision"),
        served_precision=job.get("served_precision"),
    )


def check_resumed_models(run_dir: str | Path, selected: list[Variant]) -> None:
    """A resumed run keeps the model ids it started with: a job that succeeded since would mix
    two models' answers in one variant (exit 2, nothing called)."""
    import yaml

    doc = yaml.safe_load((Path(run_dir) / "suite.yaml").read_text(encoding="utf-8")) or {}
    before = {
        v.get("name"): v.get("model") for v in doc.get("variants") or [] if isinstance(v, dict)
    }
    for v in selected:
        if before.get(v.name) not in (None, v.model):
            raise SuiteError(
                f"--resume: {v.name} is now {v.model} but run {Path(run_dir).name} evaluated "
                f"{before[v.name]} — start a new run (without --resume) to evaluate the new model"
            )
