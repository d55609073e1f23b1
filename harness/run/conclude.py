"""The conclusion of a run: from the records to the end — the summary, the guard's verdicts,
summary.json, the report, MLflow and the CI outputs. `harness run` (harness.run.pipeline) and
`harness merge` (harness.run.merge) both end here, so a merged run is summarised and judged
exactly as one run over all the examples would be."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness._util.jsonl import write_json_atomic
from harness.data.dataset import Dataset
from harness.data.lineage import find_lineage, fingerprints, read_protocol
from harness.decide.guard import decide
from harness.decide.history import LocalHistory, gather, lineage_id
from harness.decide.protocol import amendment_lines, review
from harness.errors import ProviderError, StorageError, TrackingError
from harness.finetune.records import JobStore, lineage_of_models
from harness.report.ci import append_step_summary, write_junit, write_pr_comment
from harness.report.render import render_report
from harness.run.options import RunOptions, parse_shard
from harness.run.timings import Timings
from harness.run.warmup import prewarm_post_run
from harness.rundir.reader import load_run
from harness.score.record import example_score
from harness.stats.summary import build_summary
from harness.suite import Suite
from harness.suite.secrets import literal_secrets
from harness.track.history import MlflowHistory
from harness.track.log import log_run
from harness.track.store import tracking_uri, ui_link


@dataclass
class RunOutcome:
    run_dir: Path
    run_id: str
    suite: Suite
    dataset: Dataset
    variants: list[str]
    records: dict[str, list[dict]]
    started_at: str
    finished_at: str
    wall_s: float
    summary: dict[str, Any] = field(default_factory=dict)  # what summary.json holds
    requests: int = 0  # requests sent in this invocation (retries included)
    cache_hits: int = 0
    notes: dict[str, list[str]] = field(default_factory=dict)  # engine notes, per variant
    mlflow_run_id: str | None = None
    mlflow_url: str | None = None  # the suite's runs table, when the store is an MLflow server
    exit_code: int = 0


def _silent(text: str) -> None:
    pass


@dataclass
class ConcludeOptions:
    """How conclude() ends a run. `harness merge` gives opts, limit and extra_meta; `harness run`
    the rest too."""

    opts: RunOptions
    limit: int | None
    shard: str | None = None  # a shard: summarised, no verdict, not logged
    # The MLflow logging child (harness.track.child) of `harness run`, which also reads the
    # ledger's history and starts logging once summary.json is written, so that it overlaps the
    # report; None: in-process.
    tracker: Any = None
    timings: Timings = field(default_factory=Timings)
    extra_meta: dict | None = None  # more of summary.json's meta (a merged run's shards)
    trained: list[str] | None = None  # where each trained variant's model id and cost came from
    forgetting: Callable[[RunOutcome], None] | None = None  # the `forgetting:` checks
    look: dict | None = None  # summary.json's `sequential` (harness.run.looks)
    say: Callable[[str], None] = _silent  # a progress line


def conclude(outcome: RunOutcome, judge: dict | None, how: ConcludeOptions) -> RunOutcome:
    """From the records to the end: summary, the guard, summary.json, report, MLflow, CI outputs.
    `harness run` and `harness merge` share it, so a merged run is summarised and judged exactly
    as one run over all the examples would be."""
    opts, shard, tracker, timings, say = how.opts, how.shard, how.tracker, how.timings, how.say
    summarise(outcome, judge, how)
    uri = tracking_uri(opts.tracking_uri)
    if shard is None and tracker is not None:
        tracker.begin(outcome.run_dir, uri)
    # report.md/html + plots, then MLflow (not for a shard); an unreachable store only warns.
    with timings.phase("report/plots"):
        say(
            "writing report.md / report.html"
            + ("" if shard else f", then logging to MLflow ({uri})")
            + "…"
        )
        # For the report and an in-process log_run; the records in memory are the file's.
        run = load_run(outcome.run_dir, records=outcome.records)
        render_report(run)
    if shard is None:
        with timings.phase("tracking"):
            log = tracker.log if tracker is not None else None
            outcome.mlflow_run_id = publish(run, opts.tracking_uri, log=log)
        if outcome.mlflow_run_id is not None:
            outcome.mlflow_url = ui_link(uri, outcome.suite.name)
    # CI outputs: --junit FILE, --pr-comment FILE and the GitHub Actions step summary.
    write_ci_outputs(outcome, opts)
    append_step_summary(outcome.summary)
    if opts.timings:
        timings.write(outcome.run_dir)
        print(timings.table(), file=sys.stderr)
    return outcome


def summarise(outcome: RunOutcome, judge: dict | None, how: ConcludeOptions) -> None:
    """summary.json: the summary built from the records, then (not for a shard) the guard's
    verdicts and the forgetting checks, and the notes."""
    opts, limit, shard, tracker, look = how.opts, how.limit, how.shard, how.tracker, how.look
    extra_meta, trained, forgetting = how.extra_meta, how.trained, how.forgetting
    with how.timings.phase("summary/guard"):
        if all(r.get("error") is not None for recs in outcome.records.values() for r in recs):
            outcome.exit_code = ProviderError.exit_code
        outcome.summary = build_summary(
            outcome.suite,
            outcome.dataset,
            outcome.records,
            outcome.variants,
            meta={
                "run_id": outcome.run_id,
                "started_at": outcome.started_at,
                "finished_at": outcome.finished_at,
                "exit_code": outcome.exit_code,
                "limit": limit,
                **({"shard": shard} if shard else {}),
                **({"sequential": look} if look else {}),
                **(extra_meta or {}),
            },
            notes=outcome.notes,
            judge=judge,
        )
        if trained:
            outcome.summary.setdefault("notes", []).extend(trained)
        if shard is None:
            if tracker is not None and outcome.suite.guards:
                prewarm_post_run(summary=False)  # while the child reads the guard's history
            apply_guard(outcome, opts, limit, look, read=tracker.history if tracker else None)
            if forgetting is not None:
                forgetting(outcome)  # `forgetting:` checks of trained variants (exit 1 if not pass)
        else:
            index, count = parse_shard(shard)
            outcome.summary.setdefault("notes", []).append(
                f"shard {shard}: {len(outcome.dataset.test)} of the test examples, no verdict "
                f"and not in the ledger — `harness merge` the {count} shard run directories for "
                "one run and its verdict"
            )
        for key in literal_secrets(outcome.suite.raw):
            outcome.summary.setdefault("notes", []).append(
                f"{key} is a credential written in the suite (redacted in runs/ and MLflow) — "
                "keep it in the environment: `${env:NAME}`"
            )
        write_json_atomic(outcome.run_dir / "summary.json", outcome.summary)


def write_ci_outputs(outcome: RunOutcome, opts: RunOptions) -> None:
    """--junit FILE and --pr-comment FILE; a path that cannot be written is exit 4."""
    for flag, target, write in (
        ("--junit", opts.junit, write_junit),
        ("--pr-comment", opts.pr_comment, write_pr_comment),
    ):
        if target:
            try:
                write(outcome.summary, target)
            except OSError as e:
                raise StorageError(
                    f"could not write {flag} {target}: {e.strerror or e} — nothing paid is "
                    f"lost, the run is saved in {outcome.run_dir}; fix the path and run the same "
                    "command with --resume (it sends no call again)"
                ) from None


def apply_guard(
    outcome: RunOutcome, opts: RunOptions, limit: int | None, look: dict | None = None, read=None
) -> None:
    """The guard: verdicts, sunk-cost ledger, break-even and the exit code. `read`: how the
    MLflow history is read (MlflowHistory.read; default: in this process)."""
    suite = outcome.suite
    history: list[dict] = []
    examples = fingerprints(outcome.dataset.test)
    own = lineage_id(suite, outcome.dataset.hashes)
    lineage, share = find_lineage(opts.runs_dir, own, examples)
    if lineage == own and suite.guards and read_protocol(opts.runs_dir, own) is None:
        # A fine-tuned candidate's jobs name its lineage, whatever the test file is now.
        lineage = lineage_of_models(opts.runs_dir, [v.model for v in suite.variants]) or own
    outcome.summary["lineage"] = lineage
    protocol = None
    if suite.guards:
        history, notes = gather(
            suite.name,
            MlflowHistory.at(opts.tracking_uri, outcome.summary["lineage"], read),
            LocalHistory(opts.runs_dir, outcome.summary["lineage"]),
        )
        if notes:
            outcome.summary.setdefault("notes", []).extend(notes)
        if lineage is not None:
            protocol = review(
                suite,
                opts.runs_dir,
                lineage,
                examples,
                own,
                baseline_scores(outcome, examples),
                outcome.run_id,
                counted=limit is None,
                overlap=share,
                history=history,
            )
            outcome.summary["protocol"] = protocol
            said = amendment_lines(protocol)
            if said:
                outcome.summary.setdefault("notes", []).extend(said)
    decision = decide(
        suite,
        outcome.summary,
        history,
        allow_inconclusive=opts.allow_inconclusive,
        look=look,
        protocol=protocol,
        jobs=JobStore(opts.runs_dir, lineage).jobs() if suite.guards and lineage else None,
    )
    if look and look["stopped_early"]:
        # What the calls not made would have cost, at each variant's measured price.
        saved = sum(
            n * ((outcome.summary["variants"].get(name) or {}).get("cost_per_request") or 0.0)
            for name, n in look["calls_skipped_by_variant"].items()
        )
        look["saved_usd"] = saved
        outcome.summary.setdefault("notes", []).append(
            f"sequential: every hypothesis decided at look {look['look']} of {look['looks']} "
            f"({look['n_examples']} of {look['sizes'][-1]} test examples); stopped calling "
            f"models — {look['calls_skipped']} calls not made, ~${saved:.4g} not spent"
        )
    decision.apply(outcome.summary)
    if limit is not None:
        outcome.summary.setdefault("notes", []).append(
            f"smoke run (--limit {limit}): a stratified subset of "
            f"{outcome.summary.get('n_examples')} test examples; not counted in the sunk-cost "
            "ledger (no iteration, no training cost, no hypothesis registered, no best so far)"
        )
    outcome.exit_code = outcome.exit_code or decision.exit_code


def baseline_scores(outcome: RunOutcome, examples: list[str]) -> dict[str, float]:
    """The baseline's score per example fingerprint (the mean over repeats): what a changed
    baseline is judged by and drift is measured from (harness.decide.protocol)."""
    fp = {e.id: f for e, f in zip(outcome.dataset.test, examples, strict=True)}
    sums: dict[str, list[float]] = {}
    for r in outcome.records.get(outcome.suite.baseline) or []:
        if r.get("id") in fp:
            sums.setdefault(fp[r["id"]], []).append(example_score(r))
    return {k: sum(v) / len(v) for k, v in sums.items()}


def publish(run, cli_uri: str | None = None, warn=None, log=None) -> str | None:
    """Log a run (a RunFiles read back from its directory) to MLflow.

    An unusable tracking store never fails the run: the warning says how to push later, the
    results stay in run_dir and the exit code still reflects the verdict. Returns the parent
    run id, or None when logging failed. `log(run_dir, uri)` replaces `log_run` (the CLI
    passes harness.track.child's, which logs in a child process).
    """
    try:
        if log is None:
            return log_run(run, tracking_uri(cli_uri))
        return log(run.path, tracking_uri(cli_uri))  # a child process reads the run itself
    except TrackingError as e:
        (warn or (lambda m: print(m, file=sys.stderr)))(f"Warning: MLflow logging skipped: {e}")
        return None
