"""`run_suite()`: the `harness run` pipeline, stage after stage.

load → plan → send → post-call stages → summary → decision → summary.json → report → MLflow →
CI outputs. Each stage is a call below; what passes between them is a typed value (Suite,
Dataset, Job, CallResult, records, summary), and the summary is built once from their results.
The event loop only sends requests and hands finished answers on (scoring is cheap and pure,
records go to a writer thread that batches fsyncs).
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness._util.jsonl import write_json_atomic
from harness.calls._litellm import needs_local_provider
from harness.calls.batch import check_batchable
from harness.calls.engine import check_credentials
from harness.calls.pool import merge_paths
from harness.data.dataset import Dataset, load_dataset
from harness.data.lineage import find_lineage, fingerprints, read_protocol
from harness.decide.guard import decide, settled
from harness.decide.history import LocalHistory, gather, lineage_id
from harness.decide.protocol import amendment_lines, review
from harness.decide.rule import look_sizes, spending_levels
from harness.errors import (
    LocalModelCrashed,
    ProviderError,
    RunInterrupted,
    StorageError,
    SuiteError,
    TrackingError,
)
from harness.finetune.records import JobStore, lineage_of_models
from harness.finetune.resolve import check_resumed_models, resolve_trained
from harness.plugins import load_plugins
from harness.prompt.templates import validate_templates
from harness.report.ci import append_step_summary, write_junit, write_pr_comment
from harness.report.render import render_report
from harness.run.batch import send_batch
from harness.run.execute import (
    JOURNAL,
    PoolSlot,
    RecordSink,
    Sent,
    cached_answers,
    drop_journal,
    make_engine,
    open_journal,
    send,
)
from harness.run.forgetting import check_forgetting
from harness.run.options import RunOptions, parse_shard
from harness.run.plan import (
    Job,
    build_jobs,
    check_same_data,
    check_same_suite,
    resume_command,
    select_variants,
)
from harness.run.progress import Phases, Progress
from harness.run.timings import Timings
from harness.run.warmup import prewarm_post_run
from harness.rundir.reader import load_run
from harness.rundir.writer import ResultsWriter, RunDir, create_run, open_run, write_stage_scores
from harness.score.judge import check_judge_credentials
from harness.score.record import example_score
from harness.score.registry import validate_suite
from harness.score.scorer import make_scorer
from harness.score.stages import run_post_call_stages
from harness.stats.summary import build_summary
from harness.suite import Suite, Variant, load_suite
from harness.suite.secrets import literal_secrets
from harness.track.child import start_if_useful
from harness.track.history import MlflowHistory
from harness.track.log import log_run
from harness.track.store import check_uri, prewarm, tracking_uri, ui_link


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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def run_suite(
    suite_path: str | Path | Suite, options: RunOptions | None = None, **fields: Any
) -> RunOutcome:
    """Run the selected variants of a suite; records land in runs/<suite>/<run-id>/results/.

    Pass a RunOptions, or its fields as keywords (`run_suite(path, limit=5)`); a loaded Suite
    instead of a path runs that suite (harness finetune's distillation does).
    Raises SuiteError (exit 2) before any call when the suite, data, options or credentials are
    wrong; RunInterrupted (exit 130) on Ctrl-C with the resume command in its message.
    """
    opts = options or RunOptions(**fields)
    load_plugins()  # a suite may name a plugin's metric, retrieval method or backend
    t0 = time.perf_counter()
    timings = Timings()
    started_at = _now()
    opts.check()
    check_uri(tracking_uri(opts.tracking_uri))
    with timings.phase("suite/data"):
        if isinstance(suite_path, Suite):
            suite, suite_path = suite_path, suite_path.display_path
        else:
            suite = validate_suite(load_suite(suite_path))
    resumed = None
    names, limit, shard = opts.variants, opts.limit, opts.shard
    if opts.resume is not None:
        resumed = open_run(opts.runs_dir, suite, opts.resume)
        names = names or resumed.meta.get("variants")
        limit = resumed.meta.get("limit") if limit is None else limit
        shard = resumed_shard(resumed, shard)
        # A run started with --no-cache, or resumed with it (its journal is there): the printed
        # resume command carries no flag, and the journal holds answers the cache does not.
        if (
            resumed.meta.get("no_cache") or (resumed.path / JOURNAL).exists()
        ) and not opts.no_cache:
            opts = replace(opts, no_cache=True)
    # A `finetune:` variant is evaluated as its latest succeeded job's model, at that job's cost.
    suite, selected, trained = resolve_trained(
        suite, select_variants(suite, names), opts.runs_dir, checkpoints=opts.checkpoints
    )
    if resumed is not None:
        check_resumed_models(resumed.path, selected)
    if opts.batch:
        for v in selected:
            check_batchable(v)  # exit 2 before a run directory exists
    pool = PoolSlot(opts.workers)
    # Before the data loads: the workers' litellm import (~3 s) overlaps everything until the
    # first call, and no thread exists yet that a fork could catch holding a lock.
    if not opts.batch:  # a batch run polls a file; it needs no workers
        pool.start(selected, opts.concurrency, limit)
    # MLflow in a child process (harness.track.child): its import overlaps the run and its
    # memory stays out of this process. The CLI asks for it; library callers log in-process.
    # A shard is not logged: the merged run is (harness merge).
    logger = None
    try:
        if opts.tracking_child and shard is None:
            logger = start_if_useful()
        stage = _Run(
            suite_path, suite, selected, resumed, limit, shard, opts, pool, logger, timings, trained
        )
        return stage.run(t0, started_at)
    except BaseException:
        pool.close(now=True)  # a suite error or Ctrl-C: don't wait for a litellm import to end
        raise
    finally:
        pool.close()
        if logger is not None:
            logger.close()


def resumed_shard(resumed: RunDir, asked: str | None) -> str | None:
    """A resumed shard keeps its slice; asking for another one is a mistake, not a new slice."""
    was = resumed.meta.get("shard")
    if asked is not None and was != asked:
        raise SuiteError(
            f"--resume {resumed.run_id} --shard {asked}: that run is "
            + (f"shard {was}" if was else "not a shard")
            + " — resume it without --shard, or start a new run for the other slice"
        )
    return was


@dataclass
class _Run:
    """One invocation's fixed inputs; its methods are the pipeline's stages in order."""

    suite_path: str | Path
    suite: Suite
    selected: list[Variant]
    resumed: RunDir | None
    limit: int | None
    shard: str | None
    opts: RunOptions
    pool: PoolSlot
    logger: Any
    timings: Timings
    trained: list[str]  # where each trained variant's model id and cost came from

    def run(self, t0: float, started_at: str) -> RunOutcome:
        self.phases = Phases(console=self.opts.console, enabled=self.opts.show_progress)
        dataset, jobs, warm = self.prepare()
        jobs, done = self.todo(jobs)
        cache, hits = cached_answers(jobs, self.opts.runs_dir, self.opts.no_cache, self.resumed)
        try:
            # Everything that can stop the run is checked before a run directory exists.
            self.check_calls(jobs, hits, warm)
            run_dir = self.open_run_dir(dataset)
            if cache is None and self.opts.no_cache:
                cache = open_journal(run_dir.path, jobs)
            look = None
            with self.timings.phase("calls"):
                if self.suite.sequential is not None:
                    sent, dataset, look = self.send_in_looks(
                        dataset, run_dir, jobs, done, cache, hits, warm
                    )
                else:
                    sent = self.send(dataset, run_dir, jobs, done, cache, hits, warm)
            self.timings.transport = sent.paths
            self.timings.workers_calls_cpu_s = sent.workers_cpu_s
        finally:
            if cache is not None:
                cache.close()
        if self.opts.no_cache:
            drop_journal(run_dir.path)
        # The rendered calls and cached answers are on disk now: at 100k examples they are
        # hundreds of MB that the summary and report would otherwise hold beside the records.
        del jobs, hits
        records = {v.name: run_dir.records(v.name) for v in self.selected}
        with self.timings.phase("post-call stages"):
            judge = self.post_call_stages(dataset, records, run_dir)
        outcome = RunOutcome(
            run_dir=run_dir.path,
            run_id=run_dir.run_id,
            suite=self.suite,
            dataset=dataset,
            variants=[v.name for v in self.selected],
            records=records,
            started_at=run_dir.meta.get("started_at") or started_at,
            finished_at=_now(),
            wall_s=time.perf_counter() - t0,
            requests=sent.requests,
            cache_hits=sent.cache_hits,
            notes=sent_notes(self.sink),
        )
        return conclude(
            outcome,
            judge,
            opts=self.opts,
            limit=self.limit,
            shard=self.shard,
            tracker=self.logger,
            timings=self.timings,
            trained=self.trained,
            forgetting=None if self.shard else self.forgetting,
            look=look,
            say=self.phases.say,
        )

    def post_call_stages(self, dataset: Dataset, records, run_dir: RunDir) -> dict | None:
        """LLM judge, embedding cosine: scores merged into the records (and persisted)."""
        try:
            judge = run_post_call_stages(
                self.suite,
                dataset,
                records,
                run_dir.path,
                concurrency=self.opts.concurrency,
                no_cache=self.opts.no_cache,
                runs_dir=self.opts.runs_dir,
                say=self.phases.say,
            )
        except LocalModelCrashed as e:  # a local judge: its finished judgements are kept too
            raise LocalModelCrashed(
                f"{e}. Every variant's answers are saved in {run_dir.path}; after the rebuild, "
                "finish the judging with: "
                + resume_command(self.suite_path, run_dir.run_id, self.opts.runs_dir)
            ) from None
        if judge is not None:
            write_stage_scores(run_dir.path, records)
        return judge

    def prepare(self) -> tuple[Dataset, list[Job], Any]:
        """Templates and data checked, the calls rendered; imports warmed where they overlap."""
        with self.timings.phase("suite/data"):
            validate_templates(self.suite)
            self.phases.say("loading the data…")
            dataset = load_dataset(self.suite, self.limit)
            if self.resumed is not None:
                check_same_suite(self.resumed, self.suite)
                check_same_data(self.resumed, dataset)
            if self.shard is not None:
                dataset = dataset.shard(*parse_shard(self.shard))
        self.pool.keep_if_needed(len(dataset.test) * sum(v.repeats for v in self.selected))
        # Without the child: import MLflow in a thread while the calls run; only after the fork
        # (import locks). With workers, wait for their first answer: until then they import
        # litellm, and MLflow would compete for CPU.
        warm = self.logger.warm if self.logger is not None else prewarm
        if self.pool.pool is None:
            warm()
        with self.timings.phase("prompts/index"):
            jobs = build_jobs(
                self.suite, dataset, self.selected, runs_dir=self.opts.runs_dir, say=self.phases.say
            )
        return dataset, jobs, warm

    def todo(self, jobs: list[Job]) -> tuple[list[Job], dict[str, set]]:
        """The calls still to make (a resumed run's completed ones left out), and the completed
        (id, repeat) pairs per variant."""
        if self.resumed is None:
            return jobs, {v.name: set() for v in self.selected}
        done = {v.name: self.resumed.prepare_resume(v.name) for v in self.selected}
        return [j for j in jobs if (j.example.id, j.repeat) not in done[j.variant]], done

    def check_calls(self, jobs: list[Job], hits: dict, warm) -> None:
        """Credentials, providers and `${env:...}` references of the variants that will call."""
        misses = [j for j in jobs if j.key not in hits]
        if not misses:
            self.pool.close(now=True)  # everything cached: don't wait for the workers' import
            if self.pool.pool is not None:
                warm()  # no first answer will come to trigger it
        elif self.pool.pool is None:
            prewarm_post_run()  # this process will wait on the calls (with workers: at the first answer)
        # Credentials matter only for variants that will actually call a model.
        calling = {j.variant for j in misses}
        if calling:
            facts = self.pool.facts  # a worker's litellm answers: none imported here
            check_credentials([v for v in self.selected if v.name in calling], facts)
            check_judge_credentials(self.suite, facts)  # before the variants spend anything

    def open_run_dir(self, dataset: Dataset) -> RunDir:
        """A new run directory, or the resumed one."""
        if self.resumed is not None:
            return self.resumed
        return create_run(
            self.opts.runs_dir,
            self.suite,
            dataset,
            variants=[v.name for v in self.selected],
            limit=self.limit,
            shard=self.shard,
            no_cache=self.opts.no_cache,
        )

    def send(self, dataset: Dataset, run: RunDir, jobs: list[Job], done, cache, hits, warm) -> Sent:
        writer = ResultsWriter(run)
        misses = [j for j in jobs if j.key not in hits]
        if misses:
            local = any(needs_local_provider(j.spec.model) for j in misses)
            self.phases.say(
                f"sending {len(misses):,} calls ({len(hits):,} cached) — "
                + ("loading the local model" if local else "loading litellm")
                + " before the first answer…"
            )
        totals = {v.name: len(dataset.test) * v.repeats for v in self.selected}
        progress = Progress(
            totals, done, console=self.opts.console, enabled=self.opts.show_progress
        )
        self.sink = RecordSink(
            scorer=make_scorer(self.suite, dataset), writer=writer, progress=progress
        )
        try:
            if self.opts.batch:
                sent = send_batch(
                    jobs, hits, cache, self.sink, run.path, poll_s=self.opts.batch_poll_s
                )
            else:
                self.trained += self.pool.serve(run.path)  # trained models' servers (notes)
                sent = send(
                    jobs,
                    hits,
                    cache,
                    self.sink,
                    self.pool,
                    lambda: make_engine(self.selected, self.opts.concurrency),
                    on_first=lambda: (warm(), prewarm_post_run()),
                    run_id=run.run_id,
                )
        except LocalModelCrashed as e:
            writer.flush()  # the count in the message is what is on disk
            raise LocalModelCrashed(
                f"{e}. {writer.written} results are saved in {run.path}; after the rebuild, "
                "finish the run with: "
                + resume_command(self.suite_path, run.run_id, self.opts.runs_dir)
            ) from None
        finally:
            progress.stop()
            writer.close()
        if sent.interrupted:
            raise RunInterrupted(
                f"interrupted — {writer.written} results saved in {run.path}. Resume with: "
                + resume_command(self.suite_path, run.run_id, self.opts.runs_dir)
            )
        return sent

    def send_in_looks(
        self, dataset: Dataset, run: RunDir, jobs: list[Job], done, cache, hits, warm
    ) -> tuple[Sent, Dataset, dict]:
        """`guard.sequential`: send the calls look by look (a fixed, shuffled order of the test
        examples, so a look is never one class of a sorted file) and stop once every hypothesis
        is decided at that look's share of α (harness.decide.rule.spending_levels). Returns
        what was sent, the examples the verdict is on, and summary.json's `sequential`."""
        looks = self.suite.sequential.looks
        order = sorted(dataset.test, key=lambda e: hashlib.sha256(e.id.encode()).hexdigest())
        sizes = look_sizes(len(order), looks)
        alpha = (
            min((1 - h.confidence) / 2 for h in self.suite.hypotheses())
            if self.suite.hypotheses()
            else 0.025
        )
        levels = spending_levels(alpha, looks)
        # One process: each look's calls are few, and a closed worker pool cannot be reused.
        self.pool.close(now=True)
        self.pool.pool = None
        total = Sent()
        seen = 0
        for k, size in enumerate(sizes):
            ids = {e.id for e in order[seen:size]}
            look_jobs = [j for j in jobs if j.example.id in ids]
            sent = self.send(dataset, run, look_jobs, done, cache, hits, warm)
            total.requests += sent.requests
            total.cache_hits += sent.cache_hits
            merge_paths(total.paths, sent.paths)
            seen = size
            kept = {e.id for e in order[:size]}
            part = replace(dataset, test=[e for e in dataset.test if e.id in kept])
            if k == looks - 1:
                break
            records = {v.name: run.records(v.name) for v in self.selected}
            summary = build_summary(
                self.suite, part, records, [v.name for v in self.selected], meta={}, notes={}
            )
            if settled(self.suite, summary, levels[k]):
                break
        skipped = [j for j in jobs if j.example.id not in kept]
        look = {
            "looks": looks,
            "look": k + 1,
            "sizes": sizes,
            "levels": levels,
            "alpha": levels[k],
            "n_examples": len(part.test),
            "calls_skipped": len(skipped),
            "calls_skipped_by_variant": dict(Counter(j.variant for j in skipped)),
            "stopped_early": k + 1 < looks,
        }
        return total, part, look

    def forgetting(self, outcome: RunOutcome) -> None:
        """Trained variants with `forgetting:` against their base on the out-of-domain suite; a
        verdict other than pass makes the run's exit code 1."""
        opts = self.opts
        found = check_forgetting(
            self.suite,
            self.selected,
            lambda derived: run_suite(
                derived,
                RunOptions(
                    limit=self.limit,
                    concurrency=opts.concurrency,
                    no_cache=opts.no_cache,
                    runs_dir=opts.runs_dir,
                    tracking_uri=opts.tracking_uri,
                    workers=0,
                    console=opts.console,
                    show_progress=opts.show_progress,
                ),
            ),
        )
        if not found:
            return
        outcome.summary["forgetting"] = found
        outcome.summary.setdefault("notes", []).extend(f["note"] for f in found.values())
        failed = {name: f for name, f in found.items() if f["verdict"] != "pass"}
        entry = (outcome.summary.get("ledger_entry") or {}).get("variants") or {}
        for name, f in failed.items():
            # A pass that forgot what the base could do elsewhere is not an honest pass.
            if name in entry:
                entry[name]["forgetting"] = f["verdict"]
                if entry[name].get("verdict") == "pass":
                    entry[name]["honest_pass"] = False
        if failed:
            outcome.exit_code = max(outcome.exit_code, 1)
            outcome.summary["exit_code"] = outcome.exit_code
            outcome.summary["notes"].append(
                f"exit {outcome.exit_code}: the forgetting check of "
                + ", ".join(f"{name} ({f['verdict']})" for name, f in failed.items())
                + " did not pass — a trained model that lost what its base could do elsewhere "
                "is not a pass"
            )


def sent_notes(sink: RecordSink) -> dict[str, list[str]]:
    notes = {k: sorted(v) for k, v in sink.notes.items()}
    for variant, n in sink.truncated.items():
        # A cut answer usually scores wrong: the variant looks worse than it is.
        notes.setdefault(variant, []).append(
            f"{n} answer(s) were cut at max_tokens (finish_reason: length) — raise "
            "params.max_tokens and run again"
        )
    return notes


def conclude(
    outcome: RunOutcome,
    judge: dict | None,
    *,
    opts: RunOptions,
    limit: int | None,
    shard: str | None = None,
    tracker=None,
    timings: Timings | None = None,
    extra_meta: dict | None = None,
    trained: list[str] | None = None,
    forgetting=None,
    look: dict | None = None,
    say=None,
) -> RunOutcome:
    """From the records to the end: summary, the guard, summary.json, report, MLflow, CI outputs.
    `harness run` and `harness merge` share it, so a merged run is summarised and judged exactly
    as one run over all the examples would be. `tracker`: the MLflow logging child
    (harness.track.child) of `harness run`, which also reads the ledger's history and starts
    logging once summary.json is written, so that it overlaps the report; None: in-process."""
    timings = timings or Timings()
    say = say or (lambda text: None)
    with timings.phase("summary/guard"):
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
    append_step_summary(outcome.summary)
    if opts.timings:
        timings.write(outcome.run_dir)
        print(timings.table(), file=sys.stderr)
    return outcome


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
