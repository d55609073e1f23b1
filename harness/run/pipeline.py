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
from harness.calls.engine import check_credentials
from harness.data.dataset import Dataset, load_dataset
from harness.decide.guard import decide, settled
from harness.decide.history import LocalHistory, gather, lineage_id
from harness.decide.rule import look_sizes, spending_levels
from harness.errors import LocalModelCrashed, ProviderError, RunInterrupted, TrackingError
from harness.finetune.resolve import check_resumed_models, resolve_trained
from harness.prompt.templates import validate_templates
from harness.report.ci import append_step_summary, write_junit
from harness.report.render import render_report
from harness.run.execute import (
    PoolSlot,
    RecordSink,
    Sent,
    cached_answers,
    make_engine,
    send,
)
from harness.run.forgetting import check_forgetting
from harness.run.options import RunOptions
from harness.run.plan import Job, build_jobs, check_same_data, resume_command, select_variants
from harness.run.progress import Progress
from harness.run.warmup import prewarm_post_run
from harness.rundir.reader import load_run
from harness.rundir.writer import ResultsWriter, RunDir, create_run, open_run, write_stage_scores
from harness.score.judge import check_judge_credentials
from harness.score.registry import validate_suite
from harness.score.scorer import make_scorer
from harness.score.stages import run_post_call_stages
from harness.stats.summary import build_summary
from harness.suite import Suite, Variant, load_suite
from harness.track.child import start_if_useful
from harness.track.history import MlflowHistory
from harness.track.log import log_run
from harness.track.store import prewarm, tracking_uri


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
    t0 = time.perf_counter()
    started_at = _now()
    opts.check()
    if isinstance(suite_path, Suite):
        suite, suite_path = suite_path, suite_path.display_path
    else:
        suite = validate_suite(load_suite(suite_path))
    resumed = None
    names, limit = opts.variants, opts.limit
    if opts.resume is not None:
        resumed = open_run(opts.runs_dir, suite, opts.resume)
        names = names or resumed.meta.get("variants")
        limit = resumed.meta.get("limit") if limit is None else limit
    # A `finetune:` variant is evaluated as its latest succeeded job's model, at that job's cost.
    suite, selected, trained = resolve_trained(
        suite, select_variants(suite, names), opts.runs_dir, checkpoints=opts.checkpoints
    )
    if resumed is not None:
        check_resumed_models(resumed.path, selected)
    pool = PoolSlot(opts.workers)
    # Before the data loads: the workers' litellm import (~3 s) overlaps everything until the
    # first call, and no thread exists yet that a fork could catch holding a lock.
    pool.start(selected, opts.concurrency, limit)
    # MLflow in a child process (harness.track.child): its import overlaps the run and its
    # memory stays out of this process. The CLI asks for it; library callers log in-process.
    logger = None
    try:
        if opts.tracking_child:
            logger = start_if_useful()
        stage = _Run(suite_path, suite, selected, resumed, limit, opts, pool, logger, trained)
        return stage.run(t0, started_at)
    except BaseException:
        pool.close(now=True)  # a suite error or Ctrl-C: don't wait for a litellm import to end
        raise
    finally:
        pool.close()
        if logger is not None:
            logger.close()


@dataclass
class _Run:
    """One invocation's fixed inputs; its methods are the pipeline's stages in order."""

    suite_path: str | Path
    suite: Suite
    selected: list[Variant]
    resumed: RunDir | None
    limit: int | None
    opts: RunOptions
    pool: PoolSlot
    logger: Any
    trained: list[str]  # where each trained variant's model id and cost came from

    def run(self, t0: float, started_at: str) -> RunOutcome:
        dataset, jobs, warm = self.prepare()
        run_dir, jobs, done = self.open_run_dir(dataset, jobs)
        look = None
        if self.suite.sequential is not None:
            sent, dataset, look = self.send_in_looks(dataset, run_dir, jobs, done, warm)
        else:
            sent = self.send(dataset, run_dir, jobs, done, warm)
        records = {v.name: run_dir.records(v.name) for v in self.selected}
        # Post-call stages (LLM judge, embedding cosine): scores merged into the records.
        try:
            judge = run_post_call_stages(
                self.suite,
                dataset,
                records,
                run_dir.path,
                concurrency=self.opts.concurrency,
                no_cache=self.opts.no_cache,
                runs_dir=self.opts.runs_dir,
            )
        except LocalModelCrashed as e:  # a local judge: its finished judgements are kept too
            raise LocalModelCrashed(
                f"{e}. Every variant's answers are saved in {run_dir.path}; after the rebuild, "
                "finish the judging with: "
                + resume_command(self.suite_path, run_dir.run_id, self.opts.runs_dir)
            ) from None
        if judge is not None:
            write_stage_scores(run_dir.path, records)
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
        if all(r.get("error") is not None for recs in records.values() for r in recs):
            outcome.exit_code = ProviderError.exit_code
        outcome.summary = build_summary(
            self.suite,
            dataset,
            records,
            outcome.variants,
            meta={
                "run_id": outcome.run_id,
                "started_at": outcome.started_at,
                "finished_at": outcome.finished_at,
                "exit_code": outcome.exit_code,
                "limit": self.limit,
                **({"sequential": look} if look else {}),
            },
            notes=outcome.notes,
            judge=judge,
        )
        if self.trained:
            outcome.summary.setdefault("notes", []).extend(self.trained)
        self.decide(outcome, look)
        write_json_atomic(outcome.run_dir / "summary.json", outcome.summary)
        # report.md/html + plots, then MLflow; an unreachable store only warns.
        outcome.mlflow_run_id = publish(
            outcome.run_dir,
            self.opts.tracking_uri,
            log=self.logger.log if self.logger else None,
        )
        # CI outputs: --junit FILE and the GitHub Actions step summary.
        if self.opts.junit:
            write_junit(outcome.summary, self.opts.junit)
        append_step_summary(outcome.summary)
        return outcome

    def prepare(self) -> tuple[Dataset, list[Job], Any]:
        """Templates and data checked, the calls rendered; imports warmed where they overlap."""
        validate_templates(self.suite)
        dataset = load_dataset(self.suite, self.limit)
        if self.resumed is not None:
            check_same_data(self.resumed, dataset)
        self.pool.keep_if_needed(len(dataset.test) * sum(v.repeats for v in self.selected))
        # Without the child: import MLflow in a thread while the calls run; only after the fork
        # (import locks). With workers, wait for their first answer: until then they import
        # litellm, and MLflow would compete for CPU.
        warm = self.logger.warm if self.logger is not None else prewarm
        if self.pool.pool is None:
            warm()
            prewarm_post_run()
        jobs = build_jobs(self.suite, dataset, self.selected, runs_dir=self.opts.runs_dir)
        return dataset, jobs, warm

    def open_run_dir(
        self, dataset: Dataset, jobs: list[Job]
    ) -> tuple[RunDir, list[Job], dict[str, set]]:
        """A new run directory, or the resumed one with its completed calls left out; and the
        completed (id, repeat) pairs per variant."""
        if self.resumed is None:
            run = create_run(
                self.opts.runs_dir,
                self.suite,
                dataset,
                variants=[v.name for v in self.selected],
                limit=self.limit,
            )
            return run, jobs, {v.name: set() for v in self.selected}
        done = {v.name: self.resumed.prepare_resume(v.name) for v in self.selected}
        todo = [j for j in jobs if (j.example.id, j.repeat) not in done[j.variant]]
        return self.resumed, todo, done

    def send(self, dataset: Dataset, run: RunDir, jobs: list[Job], done, warm) -> Sent:
        cache, hits = cached_answers(jobs, self.opts.runs_dir, self.opts.no_cache)
        misses = [j for j in jobs if j.key not in hits]
        if not misses:
            self.pool.close(now=True)  # everything cached: don't wait for the workers' import
            if self.pool.pool is not None:
                warm()  # no first answer will come to trigger it
        # Credentials matter only for variants that will actually call a model.
        calling = {j.variant for j in misses}
        if calling:
            check_credentials([v for v in self.selected if v.name in calling])
            check_judge_credentials(self.suite)  # before the variants spend anything
        writer = ResultsWriter(run)
        totals = {v.name: len(dataset.test) * v.repeats for v in self.selected}
        progress = Progress(
            totals, done, console=self.opts.console, enabled=self.opts.show_progress
        )
        self.sink = RecordSink(
            scorer=make_scorer(self.suite, dataset), writer=writer, progress=progress
        )
        try:
            sent = send(
                jobs,
                hits,
                cache,
                self.sink,
                self.pool,
                lambda: make_engine(self.selected, self.opts.concurrency),
                on_first=lambda: (warm(), prewarm_post_run()),
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
            if cache is not None:
                cache.close()
        if sent.interrupted:
            raise RunInterrupted(
                f"interrupted — {writer.written} results saved in {run.path}. Resume with: "
                + resume_command(self.suite_path, run.run_id, self.opts.runs_dir)
            )
        return sent

    def send_in_looks(
        self, dataset: Dataset, run: RunDir, jobs: list[Job], done, warm
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
            sent = self.send(dataset, run, [j for j in jobs if j.example.id in ids], done, warm)
            total.requests += sent.requests
            total.cache_hits += sent.cache_hits
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

    def decide(self, outcome: RunOutcome, look: dict | None = None) -> None:
        """The guard: verdicts, sunk-cost ledger, break-even and the exit code."""
        history: list[dict] = []
        outcome.summary["lineage"] = lineage_id(self.suite, outcome.dataset.hashes)
        if self.suite.guards:
            history, notes = gather(
                self.suite.name,
                MlflowHistory.at(self.opts.tracking_uri, outcome.summary["lineage"]),
                LocalHistory(self.opts.runs_dir, outcome.summary["lineage"]),
            )
            if notes:
                outcome.summary.setdefault("notes", []).extend(notes)
        decision = decide(
            self.suite,
            outcome.summary,
            history,
            allow_inconclusive=self.opts.allow_inconclusive,
            look=look,
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
        if self.limit is not None:
            outcome.summary.setdefault("notes", []).append(
                f"smoke run (--limit {self.limit}): a stratified subset of "
                f"{outcome.summary.get('n_examples')} test examples; not counted in the sunk-cost "
                "ledger (no iteration, no training cost, no hypothesis registered, no best so far)"
            )
        outcome.exit_code = outcome.exit_code or decision.exit_code
        self.forgetting(outcome)

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
        if any(f["verdict"] != "pass" for f in found.values()):
            outcome.exit_code = max(outcome.exit_code, 1)
            outcome.summary["exit_code"] = outcome.exit_code


def sent_notes(sink: RecordSink) -> dict[str, list[str]]:
    return {k: sorted(v) for k, v in sink.notes.items()}


def publish(run_dir: str | Path, cli_uri: str | None = None, warn=None, log=None) -> str | None:
    """The end of `harness run`: render the report, then log to MLflow.

    An unusable tracking store never fails the run: the warning says how to push later, the
    results stay in run_dir and the exit code still reflects the verdict. Returns the parent
    run id, or None when logging failed. `log(run_dir, uri)` replaces `log_run` (the CLI
    passes harness.track.child's, which logs in a child process).
    """
    run = load_run(run_dir)  # read once for the report and an in-process log_run
    render_report(run)
    try:
        if log is None:
            return log_run(run, tracking_uri(cli_uri))
        return log(run_dir, tracking_uri(cli_uri))  # a child process reads the run itself
    except TrackingError as e:
        (warn or (lambda m: print(m, file=sys.stderr)))(f"Warning: MLflow logging skipped: {e}")
        return None
