"""`run_suite()`: the `harness run` pipeline, stage after stage.

load → plan → send → post-call stages → summary → decision → summary.json → report → MLflow →
CI outputs. Each stage is a call below; what passes between them is a typed value (Suite,
Dataset, Job, CallResult, records, summary), and the summary is built once from their results.
The event loop only sends requests and hands finished answers on (scoring is cheap and pure,
records go to a writer thread that batches fsyncs). Stages with a module of their own:
harness.run.warmup (imports overlapped with the calls), harness.run.looks (`guard.sequential`)
and harness.run.conclude (from the records to the end, shared with `harness merge`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from harness.calls._litellm import needs_local_provider
from harness.calls.batch import check_batchable
from harness.calls.engine import check_credentials
from harness.data.dataset import Dataset, load_dataset
from harness.decide.protocol import check_readable
from harness.errors import LocalModelCrashed, RunInterrupted, SuiteError
from harness.finetune.resolve import check_resumed_models, resolve_trained
from harness.plugins import load_plugins
from harness.prompt.templates import validate_templates
from harness.run.batch import send_batch
from harness.run.conclude import ConcludeOptions, RunOutcome, conclude
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
from harness.run.forgetting import check_forgetting, record_forgetting
from harness.run.looks import send_in_looks
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
from harness.run.warmup import choose_warm, prewarm_post_run, warm_before_calls
from harness.rundir.writer import ResultsWriter, RunDir, create_run, open_run, write_stage_scores
from harness.score.judge import check_judge_credentials
from harness.score.registry import validate_suite
from harness.score.scorer import make_scorer
from harness.score.stages import run_post_call_stages
from harness.suite import Suite, Variant, load_suite
from harness.track.child import start_if_useful
from harness.track.store import check_uri, tracking_uri

# The conclusion's names stay importable from here (harness.run.conclude holds them).
__all__ = ["ConcludeOptions", "RunOutcome", "conclude", "resumed_shard", "run_suite"]


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
                    sent, dataset, look = send_in_looks(
                        self.suite,
                        self.selected,
                        self.pool,
                        dataset,
                        run_dir,
                        jobs,
                        partial(
                            self.send,
                            dataset,
                            run_dir,
                            done=done,
                            cache=cache,
                            hits=hits,
                            warm=warm,
                        ),
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
            ConcludeOptions(
                opts=self.opts,
                limit=self.limit,
                shard=self.shard,
                tracker=self.logger,
                timings=self.timings,
                trained=self.trained,
                forgetting=None if self.shard else self.forgetting,
                look=look,
                say=self.phases.say,
            ),
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
            raise type(e)(
                f"{e}. Every variant's answers are saved in {run_dir.path}; {e.fix_first}, "
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
            # The conclusion reads the registered protocols (the lineage): a broken one stops
            # the run here, not after its calls.
            check_readable(self.opts.runs_dir)
            if self.resumed is not None:
                check_same_suite(self.resumed, self.suite)
                check_same_data(self.resumed, dataset)
            if self.shard is not None:
                dataset = dataset.shard(*parse_shard(self.shard))
        self.pool.keep_if_needed(len(dataset.test) * sum(v.repeats for v in self.selected))
        warm = choose_warm(self.pool, self.logger)
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
        warm_before_calls(self.pool, misses, warm)
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
        # Sequential looks send in parts: each part's progress counts on from the earlier ones.
        before = getattr(self, "sent_before", None) or {v: set() for v in done}
        progress = Progress(
            totals,
            {v: done[v] | before.get(v, set()) for v in done},
            console=self.opts.console,
            enabled=self.opts.show_progress,
            started=getattr(self, "sending_since", None),
        )
        self.sending_since = progress.started
        self.sent_before = {
            v: before.get(v, set()) | {(j.example.id, j.repeat) for j in jobs if j.variant == v}
            for v in done
        }
        self.sink = RecordSink(
            scorer=make_scorer(self.suite, dataset), writer=writer, progress=progress
        )
        try:
            if self.opts.batch:
                sent = send_batch(
                    jobs, hits, cache, self.sink, run.path, poll_s=self.opts.batch_poll_s
                )
            else:
                self.trained += self.serve(run, writer)  # trained models' servers (notes)
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
            raise type(e)(
                f"{e}. {writer.written} results are saved in {run.path}; {e.fix_first}, "
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

    def serve(self, run: RunDir, writer: ResultsWriter) -> list[str]:
        """The trained models' servers, started; a Ctrl-C while one loads (minutes for a 7B)
        ends the run as any interrupted run, with the command that resumes it."""
        try:
            return self.pool.serve(run.path)
        except KeyboardInterrupt:
            raise RunInterrupted(
                "interrupted while starting the servers of the trained models — "
                f"{writer.written} results saved in {run.path}. Resume with: "
                + resume_command(self.suite_path, run.run_id, self.opts.runs_dir)
            ) from None

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
        record_forgetting(outcome, found)


def sent_notes(sink: RecordSink) -> dict[str, list[str]]:
    notes = {k: sorted(v) for k, v in sink.notes.items()}
    for variant, n in sink.truncated.items():
        # A cut answer usually scores wrong: the variant looks worse than it is.
        notes.setdefault(variant, []).append(
            f"{n} answer(s) were cut at max_tokens (finish_reason: length) — raise "
            "params.max_tokens and run again"
        )
    return notes
