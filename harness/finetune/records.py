"""The job store: every fine-tuning job of a lineage, in runs/.finetune/<lineage>.jsonl.

Keyed by the lineage (the test data's hash, harness.decide.history.lineage_id), so renaming the
suite or moving its files keeps the record. Each line is a whole snapshot of one job, appended
and fsynced when the job changes (created, a new status, checkpoints, the end); the last line of
a job id is its state. The first line is written the moment the provider returns the job id, so
a command killed afterwards finds the job and watches it instead of creating another.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness._util.jsonl import read_lines
from harness.data.dataset import file_hash
from harness.data.lineage import find_lineage, fingerprints, read_protocol
from harness.suite import Suite

STORE_DIR = ".finetune"


def train_split_hash(suite: Suite) -> str | None:
    train = suite.spec.data.train
    path = suite.resolve_path(train) if train else None
    return file_hash(path) if path is not None and path.is_file() else None


def suite_lineage(suite: Suite, runs_dir: str | Path | None = None) -> str | None:
    """The lineage of a suite from its test file (None when the file is missing). With
    `runs_dir`: the registered lineage its test examples mostly overlap, else the one its
    fine-tuned variants' jobs belong to, else its own (harness.data.lineage)."""
    test = suite.resolve_path(suite.spec.data.test)
    if not test.is_file():
        return None
    own = file_hash(test)
    if runs_dir is None:
        return own
    from harness.data.dataset import load_dataset

    found, _ = find_lineage(runs_dir, own, fingerprints(load_dataset(suite, hash_files=False).test))
    if found == own and read_protocol(runs_dir, own) is None:
        return lineage_of_models(runs_dir, [v.model for v in suite.variants]) or own
    return found


def lineage_of_models(runs_dir: str | Path, models: list[str]) -> str | None:
    """The lineage whose job store trained one of `models` (a fine-tuned model id names its
    lineage whatever the suite now says), or None."""
    wanted = {m.split("/", 1)[-1] for m in models} | set(models)
    for path in sorted((Path(runs_dir) / STORE_DIR).glob("*.jsonl")):
        for rec in read_lines(path, on_torn="skip"):
            if isinstance(rec, dict) and rec.get("model_id") and rec["model_id"] in wanted:
                return path.stem
    return None


@dataclass
class JobStore:
    runs_dir: str | Path
    lineage: str

    @property
    def path(self) -> Path:
        return Path(self.runs_dir) / STORE_DIR / f"{self.lineage}.jsonl"

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Held while a job is checked against the lineage's limits, created and recorded: N
        `harness finetune` at once see each other's jobs, so none passes max_iterations."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        record = {**record, "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return record

    def jobs(self, variant: str | None = None) -> list[dict[str, Any]]:
        """The latest state of each job, oldest job first; a torn last line is not a record."""
        latest: dict[str, dict] = {}
        for rec in read_lines(self.path, on_torn="skip"):
            if isinstance(rec, dict) and rec.get("job_id"):
                latest[rec["job_id"]] = rec  # dicts keep the first insertion's position
        return [r for r in latest.values() if variant is None or r.get("variant") == variant]

    def latest(self, variant: str) -> dict[str, Any] | None:
        jobs = self.jobs(variant)
        return jobs[-1] if jobs else None

    def latest_succeeded(self, variant: str) -> dict[str, Any] | None:
        done = [j for j in self.jobs(variant) if j.get("status") == "succeeded"]
        return done[-1] if done else None


def job_cost_text(job: dict[str, Any], cost: float | None) -> str:
    """A job's training cost: "$0.0017"; a self-hosted job's with how it was measured ("$0.0061
    (7.4 min × $0.05/h, self-hosted)"); without a price "unknown — set finetune.price_per_hour …",
    never $0."""
    options = (job.get("settings") or {}).get("options") or {}
    hosted = "price_per_hour" in options
    if cost is None:
        return "unknown — set finetune.price_per_hour to price it" if hosted else "unknown"
    text = f"${cost:.4f}"
    if hosted and job.get("wall_s") is not None:
        text += f" ({job['wall_s'] / 60:.1f} min × ${options['price_per_hour']}/h, self-hosted)"
    return text


def self_check(job: dict[str, Any]) -> tuple[int, int] | None:
    """(matched, total) when a self-hosted job's served model gave the training-time greedy
    answer on fewer of its self-check prompts than all: the model a run evaluates may not be the
    one trained (a conversion or serving fault). None when it matched them all, or never checked."""
    matched, total = job.get("verify_matched"), job.get("verify_total")
    if matched is None or not total or matched >= total:
        return None
    return matched, total


def unevaluated(jobs: list[dict[str, Any]], evaluated: set) -> tuple[list[str], float]:
    """(models, dollars) the ledger's runs have not seen: models trained but superseded before a
    run evaluated them, and what they cost with the failed or cancelled jobs since the model
    before (and those after the last model: paid, never evaluated). A model in `evaluated` is
    charged by its run, with the failed jobs before it."""
    models: list[str] = []
    usd = pending = 0.0
    for j in jobs:
        pending += float(j.get("cost_usd") or 0.0) + float(j.get("distill_usd") or 0.0)
        if j.get("status") == "succeeded":
            if j.get("model_id") and j["model_id"] not in evaluated:
                if not j.get("retrain_of"):  # a lost model trained again: the same iteration
                    models.append(j["model_id"])
                usd += pending
            pending = 0.0
    return models, round(usd + pending, 6)


def iteration_cost(jobs: list[dict[str, Any]], job_id: str) -> float | None:
    """The training cost of the iteration that ended in `job_id`: its own cost (and its teacher's
    distillation run) plus the failed or cancelled jobs since the variant's previous succeeded job
    (those were paid for this model). None when the job itself has no cost (a local job without
    price_per_hour): unknown, never $0."""
    total = 0.0
    for j in jobs:
        if j.get("status") == "succeeded" and j["job_id"] != job_id:
            total = 0.0  # an earlier model's iteration: charged to that model
            continue
        if j["job_id"] == job_id and j.get("cost_usd") is None:
            return None
        total += float(j.get("cost_usd") or 0.0) + float(j.get("distill_usd") or 0.0)
        if j["job_id"] == job_id:
            return round(total, 6)
    return round(total, 6)
