"""`harness finetune SUITE.yaml`: train a `finetune:` variant under the guard, then watch it.

Before anything is uploaded the training is priced (tokens × epochs × price) and checked against
the lineage's `budget_usd` and `max_iterations` (runs in the ledger plus jobs it has not seen);
over a limit, no job: exit 1 and one sentence. Then the training rows (the train split's targets,
or a teacher's correct answers on the train split with `data: {distill: NAME}`) are shuffled with
the seed, split into train/validation, checked with the export's chat-format validator, uploaded,
and the job is created with metadata naming the suite, lineage and hypothesis fingerprint. Its
id is in the job store (harness.finetune.records) the moment it exists: running the command again
watches the same job, Ctrl-C leaves it running, `--cancel` cancels it.
"""

from __future__ import annotations

import hashlib
import json
import random
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.calls._litellm import count_tokens
from harness.data.dataset import load_dataset
from harness.decide.history import LocalHistory, gather
from harness.decide.ledger import lineage, usd
from harness.decide.rule import fingerprint
from harness.errors import ProviderError, RunInterrupted, SuiteError
from harness.export.finetune import export_finetune, validate_chat_jsonl
from harness.finetune.backends import TERMINAL, FinetuneSpec, JobState, finetune_spec, make_backend
from harness.finetune.records import (
    STORE_DIR,
    JobStore,
    iteration_cost,
    job_cost_text,
    self_check,
    suite_lineage,
    train_split_hash,
)
from harness.run.options import RunOptions
from harness.run.pipeline import run_suite
from harness.score.registry import validate_suite
from harness.suite import Suite, load_suite
from harness.suite.model import SuiteFile
from harness.suite.resolve import resolve
from harness.track.history import MlflowHistory


@dataclass
class FinetuneOptions:
    variant: str | None = None
    cancel: bool = False
    runs_dir: str | Path = "runs"
    tracking_uri: str | None = None
    poll_interval: float = 10.0
    echo: Callable[[str], None] = print
    show_progress: bool | None = None  # the distillation run's progress bar


@dataclass
class FinetuneOutcome:
    record: dict[str, Any]
    exit_code: int = 0
    lines: list[str] = field(default_factory=list)


class OverLimit(SuiteError):
    """The lineage's budget or iterations would be exceeded: no job (exit 1)."""

    exit_code = 1


def finetune(suite_path: str | Path, opts: FinetuneOptions) -> FinetuneOutcome:
    suite = validate_suite(load_suite(suite_path))
    variant = _pick(suite, opts.variant)
    spec = finetune_spec(suite, variant)
    key = suite_lineage(suite, opts.runs_dir)
    if key is None:
        raise suite.fail(
            "test file not found — the job store's lineage is its hash", ("data", "test")
        )
    store = JobStore(opts.runs_dir, key)
    backend = make_backend(spec)
    watch = _Watch(store, backend, opts, _resume_command(suite_path, spec.variant, opts))
    active = _active(store, spec, suite)
    if opts.cancel:
        if active is None:
            raise SuiteError(f"{spec.variant} has no queued or running job to cancel")
        state = backend.cancel(active["job_id"])
        record = store.append({**active, **state.to_dict()})
        opts.echo(f"cancel requested for job {active['job_id']}: {state.status}")
        return FinetuneOutcome(record)
    # From here to the job's record is one step under the job store's lock: the training files,
    # the limits, the job's creation and its record. Another `harness finetune` of the lineage
    # waits, then watches this job instead of creating one more.
    with store.lock():
        latest = _active(store, spec, suite)
        if latest is not None:
            opts.echo(f"resuming job {latest['job_id']} ({latest['status']}) — no new job created")
            record = latest
        else:
            prepared = _prepare(suite, spec, key, opts)
            retrain_of = None
            for job in store.jobs(spec.variant):
                if job.get("status") == "succeeded" and job.get("inputs") == prepared["inputs"]:
                    # A self-hosted model lives on this disk: deleted, it is written again from
                    # the weights kept beside it, or (those gone too) trained again as the same
                    # iteration.
                    restore = getattr(backend, "restore", None)
                    if restore is not None and not restore(job["job_id"], opts.echo):
                        retrain_of = job["job_id"]
                        opts.echo(
                            f"{spec.variant}'s trained model {job['model_id']} (job "
                            f"{job['job_id']}) is gone from this disk — training it again on the "
                            "same rows and settings: the same iteration (not counted against "
                            "max_iterations), its time paid"
                        )
                        continue
                    opts.echo(
                        f"{spec.variant} is already trained on these rows and settings: "
                        f"{job['model_id']} (job {job['job_id']}) — change the data or "
                        "`finetune:` settings to train a new iteration"
                    )
                    return FinetuneOutcome(job)
            estimate = backend.estimate_usd(spec, prepared["train_tokens"])
            cap = _check_limits(
                suite, spec, store, estimate, opts, backend, retrain=retrain_of is not None
            )
            record = _create(suite, spec, store, prepared, estimate, cap, opts, backend, retrain_of)
    return watch.until_done(record)


def _active(store: JobStore, spec: FinetuneSpec, suite: Suite) -> dict[str, Any] | None:
    """The variant's latest queued or running job when it trains what the suite now asks for:
    two suites on one test file share a job store (its lineage), and a variant of the same name
    on another base model, method, hyper-parameters or train split is not this one's job."""
    for job in reversed(store.jobs(spec.variant)):
        if job.get("status") in TERMINAL:
            continue
        before = job.get("train_sha256")
        if job.get("settings") == spec.settings() and before in (None, train_split_hash(suite)):
            return job
    return None


def _create(
    suite, spec, store, prepared, estimate, cap, opts, backend, retrain_of: str | None = None
) -> dict[str, Any]:
    """Submit (or adopt) the job and record it; the caller holds the store's lock."""
    key = store.lineage
    opts.echo(
        f"{prepared['n_train']} training rows ({prepared['n_val']} for validation), "
        f"{prepared['train_tokens']} tokens × {spec.epochs or 1} epoch(s): estimated "
        + (usd(estimate) if estimate is not None else "cost unknown")
    )
    if cap is not None:
        opts.echo(
            f"capped at {usd(cap)}, what is left of budget_usd: the trainer is stopped once its "
            "wall-clock has cost that"
        )
    hyp = suite.hypothesis()
    metadata = {
        "harness_suite": suite.name,
        "harness_variant": spec.variant,
        "harness_lineage": key[:16],
        "harness_hypothesis": fingerprint(hyp) or "none",
        "harness_inputs": prepared["inputs"][:16],
    }
    # A command killed between the provider creating the job and the line below left no record:
    # the provider still knows the job by its metadata, so it is adopted, never created twice.
    find = getattr(backend, "find", None)
    job_id = find_id = find(metadata) if find is not None else None
    if job_id is not None:
        opts.echo(f"found job {job_id} at {spec.provider} for these rows and settings; adopting it")
    else:
        job_id = backend.submit(
            spec, prepared["train_path"], prepared["val_path"], metadata, max_cost_usd=cap
        )
    base = {
        "provider": spec.provider,
        "variant": spec.variant,
        "suite": suite.name,
        "lineage": key,
        "base_model": spec.base_model,
        "settings": spec.settings(),
        "inputs": prepared["inputs"],
        "metadata": metadata,
    }
    _record_duplicates(store, backend, job_id, base, opts)
    record = store.append(
        {
            "job_id": job_id,
            **base,
            # What `harness run` checks the trained model against (a later edit is a note).
            "train_sha256": train_split_hash(suite),
            "n_train": prepared["n_train"],
            "n_val": prepared["n_val"],
            "train_tokens": prepared["train_tokens"],
            "estimate_usd": estimate,
            "distill_usd": prepared["distill_usd"],
            "skipped": prepared["skipped"],
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "status": "queued",
            **({"retrain_of": retrain_of} if retrain_of else {}),
        }
    )
    opts.echo(
        f"{'adopted' if find_id else 'created'} job {job_id} ({spec.provider}, "
        f"{spec.base_model}); recorded in {store.path}"
    )
    return record


def _record_duplicates(store: JobStore, backend, job_id: str, base: dict, opts) -> None:
    """Jobs a retried create (or an older harness's blind SDK retry) left at the provider for the
    same metadata besides `job_id`: each is paid training nobody asked for, so it is cancelled
    and recorded in the job store, where the budget and the ledger count what it cost."""
    for dup in getattr(backend, "duplicates", None) or []:
        try:
            state = backend.cancel(dup)
        except ProviderError:
            state = backend.poll(dup)
        store.append(
            {**base, "job_id": dup, "duplicate_of": job_id, "created_at": None, **state.to_dict()}
        )
        opts.echo(
            f"job {dup} is a duplicate of {job_id} (same rows and settings, created by a retried "
            f"request): {state.status}, recorded in {store.path} and counted in the budget"
        )


def _pick(suite: Suite, name: str | None):
    if name is not None:
        return suite.variant(name)
    trainable = [v for v in suite.variants if v.finetune is not None]
    if len(trainable) == 1:
        return trainable[0]
    if not trainable:
        raise SuiteError(
            f"{suite.display_path}: no variant has a `finetune:` block — add one to a "
            "`kind: fine-tuned` variant"
        )
    names = [v.name for v in trainable]
    raise SuiteError(f"several variants train ({names}) — choose one with --variant NAME")


def _resume_command(suite_path, variant: str, opts: FinetuneOptions) -> str:
    cmd = ["harness", "finetune", str(suite_path), "--variant", variant]
    if str(opts.runs_dir) != "runs":
        cmd += ["--runs-dir", str(opts.runs_dir)]
    return shlex.join(cmd)


# ---------------------------------------------------------------- the training files


def _prepare(suite: Suite, spec: FinetuneSpec, key: str, opts: FinetuneOptions) -> dict[str, Any]:
    """Write train.jsonl (and val.jsonl), shuffled with the seed and validated; count tokens."""
    work = Path(opts.runs_dir) / STORE_DIR / key / spec.variant
    work.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(suite)
    teacher_run, distill_usd = None, 0.0
    if spec.teacher is not None:
        teacher_run, distill_usd = _distill(suite, spec, opts)
    exported = export_finetune(
        suite,
        work / "all.jsonl",
        variant=spec.variant,
        from_variant=spec.teacher,
        run_dir=teacher_run,
        runs_dir=opts.runs_dir,
        dataset=dataset,
    )
    if spec.teacher is not None:
        kept = exported.n_examples
        dropped = ", ".join(f"{n} {why}" for why, n in exported.skipped.items()) or "none"
        opts.echo(
            f"distilled {kept} rows from {spec.teacher} on the train split; dropped: {dropped}"
        )
    elif exported.skipped:
        opts.echo(
            "dropped from the train split: "
            + ", ".join(f"{n} {why}" for why, n in exported.skipped.items())
        )
    rows = (work / "all.jsonl").read_text(encoding="utf-8").splitlines()
    random.Random(spec.seed).shuffle(rows)
    n_val = round(len(rows) * spec.validation)
    val_rows, train_rows = rows[:n_val], rows[n_val:]
    train_path = work / "train.jsonl"
    train_path.write_text("".join(r + "\n" for r in train_rows), encoding="utf-8")
    val_path = None
    problems = [f"{train_path}: {p}" for p in validate_chat_jsonl(train_path)]
    if val_rows:
        val_path = work / "val.jsonl"
        val_path.write_text("".join(r + "\n" for r in val_rows), encoding="utf-8")
        # The minimum example count is the training file's rule, not the validation file's.
        problems += [
            f"{val_path}: {p}" for p in validate_chat_jsonl(val_path) if p.startswith("line ")
        ]
    if problems:
        shown = "\n".join(problems[:10])
        raise SuiteError(f"the training data breaks the chat fine-tuning format:\n{shown}")
    tokens = sum(count_tokens(spec.base_model, json.loads(r)["messages"]) for r in train_rows)
    digest = hashlib.sha256()
    for part in (train_path.read_bytes(), val_path.read_bytes() if val_path else b""):
        digest.update(hashlib.sha256(part).digest())
    digest.update(json.dumps(spec.settings(), sort_keys=True).encode())
    return {
        "train_path": train_path,
        "val_path": val_path,
        "n_train": len(train_rows),
        "n_val": len(val_rows),
        "train_tokens": tokens,
        "inputs": digest.hexdigest(),
        "distill_usd": round(distill_usd, 6),
        "skipped": exported.skipped,
    }


def _distill(suite: Suite, spec: FinetuneSpec, opts: FinetuneOptions) -> tuple[Path, float]:
    """Run the teacher over the train split (never the test split): a suite whose test split is
    the train file, with the teacher alone and no guard. Returns its run and what it spent."""
    teacher = suite.variant(spec.teacher)
    if not suite.spec.data.train:
        raise suite.fail(
            "distill runs the teacher over the train split — add `data.train`", ("data",)
        )
    if teacher.few_shot is not None:
        raise suite.fail(
            f"teacher {teacher.name} draws few-shot examples from the train split it would be "
            "answering — distill from a variant without few_shot",
            ("variants", teacher.index, "few_shot"),
        )
    raw = json.loads(json.dumps(suite.raw, default=str))
    data = {k: v for k, v in raw["data"].items() if k not in ("train", "sample")}
    data["test"] = raw["data"]["train"]
    raw.update(name=f"{suite.name}.distill", data=data, baseline=teacher.name)
    for k in ("guard", "volume"):
        raw.pop(k, None)
    derived = validate_suite(resolve(suite.path, raw, SuiteFile.model_validate(raw), {}))
    try:
        outcome = run_suite(
            derived,
            RunOptions(
                variants=[teacher.name],
                runs_dir=opts.runs_dir,
                tracking_uri=opts.tracking_uri,
                show_progress=opts.show_progress,
            ),
        )
    except RunInterrupted:
        # The derived suite has no file to `--resume`; its answers are in the response cache.
        raise RunInterrupted(
            f"interrupted while {teacher.name} answered the train split — no job was created; "
            "its answers so far are cached, so running the same harness finetune command again "
            "continues without paying for them twice"
        ) from None
    spent = outcome.summary["variants"][teacher.name].get("spent_usd") or 0.0
    opts.echo(f"teacher {teacher.name} answered the train split: run {outcome.run_dir}")
    return outcome.run_dir, float(spent)


# ---------------------------------------------------------------- limits


def _check_limits(
    suite, spec, store: JobStore, estimate: float | None, opts, backend, retrain: bool = False
) -> float | None:
    """Refuse a job the guard's limits do not allow (OverLimit); return what is left of
    budget_usd where the backend stops a job at a cost (self-hosted: wall-clock × price), so
    that a slower-than-estimated or unestimated job cannot spend past the budget."""
    # The lineage's limits are those of the first hypothesis about it (a `guard:` list may name
    # a variant more than once; its ledger is one).
    guard = next((h for h in suite.hypotheses() if h.candidate == spec.variant), None)
    if guard is None:
        return None
    key = store.lineage
    history, _ = gather(
        suite.name, MlflowHistory.at(opts.tracking_uri, key), LocalHistory(opts.runs_dir, key)
    )
    # One count with `harness run` and `harness ledger` (decide.ledger.lineage): models no run
    # evaluated yet and failed jobs are in it; a queued or running job will be an iteration.
    jobs = store.jobs(spec.variant)
    led = lineage(spec.variant, history, {"metric": guard.metric, "variants": {}}, jobs)
    iterations, spent = led["iterations"], led["spent_usd"]
    for job in jobs:
        if job.get("status") not in TERMINAL:
            iterations += 1
            spent += float(job.get("estimate_usd") or 0.0)
    v = spec.variant
    if led["abandoned_in"]:
        raise OverLimit(f"{v} was abandoned in run {led['abandoned_in']} — no new job.")
    if not retrain and guard.max_iterations is not None and iterations >= guard.max_iterations:
        raise OverLimit(
            f"{v} has used {iterations} of {guard.max_iterations} iterations "
            f"(max_iterations) — no new job."
        )
    if guard.budget_usd is None:
        return None
    caps = getattr(backend, "caps_cost", None)
    capped = caps is not None and caps(spec)
    left = guard.budget_usd - spent
    if left <= 0:
        raise OverLimit(
            f"{v} has spent {usd(spent)} of its {usd(guard.budget_usd)} budget — no new job."
        )
    if estimate is None and not capped:
        hint = " Set finetune.price_per_hour to price and cap it." if caps is not None else ""
        raise OverLimit(
            f"{v}: the training cost cannot be estimated, so budget_usd cannot be checked — "
            f"no job.{hint}"
        )
    if estimate is not None and spent + estimate > guard.budget_usd:
        raise OverLimit(
            f"{v} would spend {usd(spent + estimate)} ({usd(spent)} so far + {usd(estimate)} "
            f"estimated for this job) of its {usd(guard.budget_usd)} budget — no new job."
        )
    return left if capped else None


# ---------------------------------------------------------------- watching


@dataclass
class _Watch:
    store: JobStore
    backend: Any
    opts: FinetuneOptions
    resume: str

    def until_done(self, record: dict[str, Any]) -> FinetuneOutcome:
        job_id = record["job_id"]
        echo = self.opts.echo
        try:
            while True:
                state = self.backend.poll(job_id)
                for e in state.events:
                    echo(f"  {e['message']}")
                if _changed(record, state):
                    if not state.done and state.status != record.get("status"):
                        echo(f"job {job_id}: {state.status}")
                    record = self.store.append({**record, **state.to_dict()})
                if state.done:
                    return self._ended(record, state)
                time.sleep(self.opts.poll_interval)
        except KeyboardInterrupt:
            raise RunInterrupted(
                f"stopped watching — job {job_id} keeps running at {record['provider']}. "
                f"Resume watching with: {self.resume} (add --cancel to cancel it)"
            ) from None

    def _ended(self, record: dict, state: JobState) -> FinetuneOutcome:
        job_id = record["job_id"]
        cost = usd(state.cost_usd) if state.cost_usd is not None else "unknown"
        if state.status == "succeeded":
            total = iteration_cost(self.store.jobs(record["variant"]), job_id)
            lines = [
                f"job {job_id} succeeded: {state.model_id}",
                f"  trained tokens: {state.trained_tokens}; training cost "
                + job_cost_text({**record, **state.to_dict()}, state.cost_usd)
                + (
                    f" (this iteration with earlier failed jobs: {usd(total)})"
                    if total is not None and total != state.cost_usd
                    else ""
                ),
            ]
            lines += [f"  checkpoint step {c['step']}: {c['model_id']}" for c in state.checkpoints]
            short = self_check(state.to_dict())
            if short is not None:
                lines.append(
                    f"  WARNING: the served model {state.model_id} gives the training-time greedy "
                    f"answer on only {short[0]} of {short[1]} examples — it is not answering as "
                    "the trained model did (a conversion or serving fault), so an evaluation of "
                    "it is not the trained model's"
                )
            lines.append(f"  next: `harness run` evaluates {record['variant']} as this model")
            code = 0
        elif state.status == "failed":
            lines = [f"job {job_id} failed: {state.error}; cost so far {cost}"]
            code = ProviderError.exit_code
        else:
            lines = [f"job {job_id} was cancelled; cost so far {cost}"]
            code = 1
        for line in lines:
            self.opts.echo(line)
        return FinetuneOutcome(record, code, lines)


def _changed(record: dict, state: JobState) -> bool:
    now = state.to_dict()
    return any(record.get(k) != v for k, v in now.items())
