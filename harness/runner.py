"""`run_suite()`: the whole `harness run` pipeline, suite → examples → calls → records.

The event loop only sends requests and hands finished answers on: cache hits are looked up in one
batch before any call (a fully cached re-run never imports litellm), scoring is cheap and pure,
records go to a writer thread that batches fsyncs, and cache writes are batched. Steps that later
issues add (summary metrics, guard, tracking, report) receive the `RunOutcome`.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, LocalModelCrashed, ProviderError, SuiteError


class RunInterrupted(HarnessError):
    """Ctrl-C / SIGTERM: results so far are on disk; the message says how to resume."""

    exit_code = 130


@dataclass
class Job:
    variant: str
    example: Any
    repeat: int
    spec: Any  # engine.CallSpec
    retrieved: list[dict] | None = None
    key: str | None = None


@dataclass
class RunOutcome:
    run_dir: Path
    run_id: str
    suite: Any
    dataset: Any
    variants: list[str]
    records: dict[str, list[dict]]
    started_at: str
    finished_at: str
    wall_s: float
    requests: int = 0  # requests sent in this invocation (retries included)
    cache_hits: int = 0
    notes: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # pass-through CLI options (tracking...)
    exit_code: int = 0


# ---------------------------------------------------------------- entry point


def run_suite(
    suite_path: str | Path,
    *,
    variants: list[str] | tuple[str, ...] | None = None,
    limit: int | None = None,
    concurrency: int = 8,
    no_cache: bool = False,
    resume: str | None = None,
    runs_dir: str | Path = "runs",
    console=None,
    show_progress: bool | None = None,
    workers: int | None = None,
    **later: Any,
) -> RunOutcome:
    """Run the selected variants of a suite; records land in runs/<suite>/<run-id>/results/.

    resume: None for a new run, "latest" (or "") for the suite's latest run, or a run id.
    workers: processes making the calls (None: up to one per core; 0: in this process).
    Raises SuiteError (exit 2) before any call when the suite, data, options or credentials are
    wrong; RunInterrupted (exit 130) on Ctrl-C with the resume command in its message.
    """
    from harness.suite import load_suite

    t0 = time.perf_counter()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if concurrency < 1:
        raise SuiteError(f"--concurrency must be at least 1 (got {concurrency})")
    if limit is not None and limit < 1:
        raise SuiteError(f"--limit must be at least 1 (got {limit})")
    suite = load_suite(suite_path)
    from harness import results as res

    run = None
    if resume is not None:
        run = res.open_run(runs_dir, suite, resume)
        if not variants:
            variants = run.meta.get("variants")
        if limit is None:
            limit = run.meta.get("limit")
    selected = select_variants(suite, variants)
    pool = _PoolSlot(workers)
    # Before the data loads: the workers' litellm import (~3 s) overlaps everything until the
    # first call, and no thread exists yet that a fork could catch holding a lock.
    pool.start(selected, concurrency, limit)
    # MLflow in a child process (harness.tracking_child): its import overlaps the run and its
    # memory stays out of this process. The CLI asks for it; library callers log in-process.
    logger = None
    try:
        if later.pop("tracking_child", False):
            from harness.tracking_child import start_if_useful

            logger = start_if_useful()
        return _run(
            suite_path,
            suite,
            selected,
            run,
            limit,
            concurrency,
            no_cache,
            runs_dir,
            console,
            show_progress,
            pool,
            t0,
            started_at,
            later,
            logger,
        )
    except BaseException:
        pool.close(now=True)  # a suite error or Ctrl-C: don't wait for a litellm import to end
        raise
    finally:
        pool.close()
        if logger is not None:
            logger.close()


# Below this many calls one process keeps up and worker start-up would not pay for itself.
MIN_CALLS_FOR_WORKERS = 256


class _PoolSlot:
    """Holds the worker pool, if one is started, so it is always closed."""

    def __init__(self, workers: int | None):
        self.workers = workers
        self.pool = None

    def start(self, selected, concurrency: int, limit: int | None) -> None:
        """Worker processes for remote models, started before the data loads and the prompts
        render, so their litellm import overlaps that work. Local models (llama.cpp in this
        process) run in-process: one copy of the model.
        """
        from harness.engine import needs_local_provider

        workers = self.workers
        if workers == 0 or any(needs_local_provider(v.model) for v in selected):
            return
        calls_at_most = None if limit is None else limit * sum(v.repeats for v in selected)
        if workers is None and calls_at_most is not None and calls_at_most < MIN_CALLS_FOR_WORKERS:
            return
        from harness.pool import WorkerPool, default_workers

        n = workers if workers is not None else default_workers(concurrency)
        self.pool = WorkerPool(n, concurrency, _rate_limits(selected)).start()

    def keep_if_needed(self, n_calls: int) -> None:
        """Once the calls are counted: a small run is quicker in this process (the workers would
        still be importing litellm), so stop them without waiting."""
        if self.pool is not None and self.workers is None and n_calls < MIN_CALLS_FOR_WORKERS:
            self.close(now=True)
            self.pool = None

    def close(self, *, now: bool = False) -> None:
        if self.pool is not None:
            self.pool.close(now=now)


def _run(
    suite_path,
    suite,
    selected,
    run,
    limit,
    concurrency,
    no_cache,
    runs_dir,
    console,
    show_progress,
    pool,
    t0,
    started_at,
    later,
    logger,
) -> RunOutcome:
    from harness import results as res
    from harness.data import load_dataset

    _validate_templates(suite)
    dataset = load_dataset(suite, limit)
    if run is not None:
        _check_same_data(run, dataset)
    pool.keep_if_needed(len(dataset.test) * sum(v.repeats for v in selected))
    from harness.tracking import prewarm

    # Without the child: import MLflow in a thread while the calls run; only after the fork
    # (import locks). With workers, wait for their first answer: until then they import
    # litellm, and MLflow would compete for CPU.
    if logger is not None:
        prewarm = logger.warm  # the same policy, for the child's import
    if pool.pool is None:
        prewarm()
        _prewarm_post_run()
    jobs = build_jobs(suite, dataset, selected, runs_dir=runs_dir)

    if run is None:
        run = res.create_run(
            runs_dir, suite, dataset, variants=[v.name for v in selected], limit=limit
        )
        done: dict[str, set] = {v.name: set() for v in selected}
    else:
        done = {v.name: run.prepare_resume(v.name) for v in selected}
    jobs = [j for j in jobs if (j.example.id, j.repeat) not in done[j.variant]]

    cache = None
    if not no_cache:
        from harness.cache import Cache, cache_key

        cache = Cache(Path(runs_dir) / ".cache.sqlite")
        for j in jobs:
            j.key = cache_key(j.spec)
        hits = cache.get_many([j.key for j in jobs])
    else:
        hits = {}
    misses = [j for j in jobs if j.key not in hits]
    if not misses:
        pool.close(now=True)  # everything cached: don't wait for the workers' litellm import
        if pool.pool is not None:
            prewarm()  # no first answer will come to trigger it
    # Credentials matter only for variants that will actually call a model.
    calling = {j.variant for j in misses}
    if calling:
        from harness.engine import check_credentials

        check_credentials([v for v in selected if v.name in calling])
        from harness.judge import check_judge_credentials

        check_judge_credentials(suite)  # before the variants spend anything

    from harness.scoring import make_scorer

    scorer = make_scorer(suite, dataset)
    writer = res.ResultsWriter(run)
    totals = {v.name: len(dataset.test) * v.repeats for v in selected}
    progress = Progress(totals, done, console=console, enabled=show_progress)
    state = _State(scorer=scorer, writer=writer, progress=progress)

    def answered(job: Job, result) -> None:
        if cache is not None:
            cache.put(job.key, result, job.spec.model)  # stores successful answers only
        state.finish(job, result)

    requests = 0
    interrupted = False
    try:
        for j in jobs:
            if j.key in hits:
                state.finish(j, hits[j.key])
        if misses and pool.pool is not None:
            interrupted = _run_pool(
                pool.pool,
                misses,
                answered,
                on_first=lambda: (prewarm(), _prewarm_post_run()),
            )
            requests = pool.pool.requests
        elif misses:
            engine = _make_engine(selected, concurrency)
            interrupted = _run_loop(engine, misses, answered)
            requests = engine.stats.requests
    except LocalModelCrashed as e:
        raise LocalModelCrashed(
            f"{e}. {writer.written} results are saved in {run.path}; after the rebuild, finish "
            f"the run with: {resume_command(suite_path, run.run_id, runs_dir)}"
        ) from None
    finally:
        progress.stop()
        writer.close()
        if cache is not None:
            cache.close()
    if interrupted:
        raise RunInterrupted(
            f"interrupted — {writer.written} results saved in {run.path}. Resume with: "
            + resume_command(suite_path, run.run_id, runs_dir)
        )

    records = {v.name: run.records(v.name) for v in selected}
    # Generation judges (harness.judge): scores merged into the records, cost reported apart.
    from harness.judge import judge_records

    judge_section = judge_records(
        suite,
        dataset,
        records,
        run.path,
        concurrency=concurrency,
        no_cache=no_cache,
        runs_dir=runs_dir,
    )
    outcome = RunOutcome(
        run_dir=run.path,
        run_id=run.run_id,
        suite=suite,
        dataset=dataset,
        variants=[v.name for v in selected],
        records=records,
        started_at=run.meta.get("started_at") or started_at,
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        wall_s=time.perf_counter() - t0,
        requests=requests,
        cache_hits=len(hits),
        notes={k: sorted(v) for k, v in state.notes.items()},
        options=dict(later),
    )
    if all(r.get("error") is not None for recs in records.values() for r in recs):
        outcome.exit_code = ProviderError.exit_code
    # Metrics with CIs and paired deltas vs the baseline; the guard below reads the deltas.
    outcome.options["summary"] = full_summary(outcome)
    if judge_section is not None:
        from harness.judge import add_to_summary

        add_to_summary(outcome.options["summary"], judge_section, suite, dataset, records)
    # The guard: verdicts, sunk-cost ledger, break-even and the exit code (harness.guard).
    from harness.guard import judge_run

    judged = judge_run(
        suite,
        outcome.options["summary"],
        tracking_uri=later.get("tracking_uri"),
        runs_dir=runs_dir,
        allow_inconclusive=bool(later.get("allow_inconclusive")),
    )
    outcome.exit_code = outcome.exit_code or judged["exit_code"]
    write_summary(outcome, outcome.options["summary"])
    # report.md/html + plots, then MLflow; an unreachable store only warns (harness.tracking).
    from harness.tracking import publish

    outcome.options["mlflow_run_id"] = publish(
        outcome.run_dir, later.get("tracking_uri"), log=logger.log if logger else None
    )
    # CI outputs: --junit FILE and the GitHub Actions step summary (harness.gating).
    from harness.gating import append_step_summary, write_junit

    if later.get("junit"):
        write_junit(judged, later["junit"])
    append_step_summary(judged)
    return outcome


def _prewarm_post_run() -> None:
    """Import what the steps after the calls need (scikit-learn and SciPy for the summary,
    matplotlib for the report: ~1 s of CPU) in a thread while this process waits on the calls.
    Not for a fully cached run: there this process is busy and the import would only interleave.
    """
    import threading

    def load() -> None:
        try:
            import scipy.sparse  # noqa: F401
            import scipy.stats  # noqa: F401
            import sklearn.metrics  # noqa: F401

            from harness import guard, plots, report, summary  # noqa: F401

            plots._pyplot()  # the Agg backend, chosen before pyplot loads
        except Exception:  # only a head start: the steps import (and report) for real later
            pass

    threading.Thread(target=load, name="harness-post-run-prewarm", daemon=True).start()


def exit_process(code: int) -> None:
    """End `harness run` with `code`, skipping the interpreter's teardown when that is safe.

    Tearing down scikit-learn, SciPy, pandas and matplotlib takes ~0.3-0.5 s after all the work
    is done and flushed. Everything the run writes is closed by now (results, cache, summary,
    report; MLflow logged in its child), so a real `harness run` process exits at once. Under
    a test runner or an embedding host (streams swapped, or MLflow loaded in this process,
    which may still flush) it exits normally.
    """
    import os

    real = sys.stdout is sys.__stdout__ and sys.stderr is sys.__stderr__
    if real and "mlflow" not in sys.modules:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        else:
            os._exit(code)
    sys.exit(code)


def resume_command(suite_path, run_id: str, runs_dir) -> str:
    cmd = ["harness", "run", str(suite_path), "--resume", run_id]
    if str(runs_dir) != "runs":
        cmd += ["--runs-dir", str(runs_dir)]
    return shlex.join(cmd)


# ---------------------------------------------------------------- preparation


def select_variants(suite, names) -> list:
    if not names:
        return list(suite.variants)
    known = [v.name for v in suite.variants]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SuiteError(
            f"--variant: unknown variant {unknown[0]!r} — choose from {', '.join(known)}"
        )
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return [suite.variant(n) for n in seen]


def _validate_templates(suite) -> None:
    from harness.templates import validate_templates

    validate_templates(suite)


def _check_same_data(run, dataset) -> None:
    before = run.meta.get("data_hashes") or {}
    changed = [p for p, h in dataset.hashes.items() if before.get(p) not in (None, h)]
    if changed:
        raise SuiteError(
            f"--resume: {changed[0]} changed since run {run.run_id} started — "
            "start a new run (without --resume) to evaluate the new data"
        )


def build_jobs(suite, dataset, variants, *, runs_dir="runs") -> list[Job]:
    """One call per (variant, example, repeat), rendered and ready to send."""
    from harness.engine import CallSpec
    from harness.templates import FewShotSelector, render_messages, response_format_for

    jobs: list[Job] = []
    inputs = suite.spec.data.inputs
    for v in variants:
        selector = FewShotSelector(dataset.train, v.few_shot, inputs) if v.few_shot else None
        response_format = response_format_for(v, suite.output_schema)
        retrieved_by_id: dict[str, list[dict]] = {}
        if v.kind == "rag":
            from harness.retrieval import build_retriever

            retrieved_by_id = build_retriever(suite, v, runs_dir=runs_dir).retrieve_all(
                dataset.test
            )
        for ex in dataset.test:
            shots = selector.select(ex) if selector else ()
            context = retrieved_by_id.get(ex.id) if v.kind == "rag" else None
            messages = render_messages(v, ex, examples=shots, context=context)
            retrieved = (
                [
                    {"id": c.get("id"), "source": c.get("source"), "score": c.get("score")}
                    for c in context
                ]
                if context is not None
                else None
            )
            for r in range(v.repeats):
                spec = CallSpec(
                    model=v.model,
                    messages=messages,
                    params=dict(v.params),
                    api_base=v.api_base,
                    response_format=response_format,
                    timeout=v.timeout,
                    repeat=r,
                    pricing=v.pricing,
                    rate_limit_key=v.name,
                )
                jobs.append(
                    Job(variant=v.name, example=ex, repeat=r, spec=spec, retrieved=retrieved)
                )
    return jobs


def _make_engine(variants, concurrency: int):
    from harness.engine import Engine

    return Engine(
        concurrency=concurrency,
        cache=None,  # looked up in one batch before the calls; `answered` stores the answers
        rate_limits=_rate_limits(variants),
    )


def _rate_limits(variants) -> dict[str, Any]:
    """Each variant's rpm/tpm budget, keyed as CallSpec.rate_limit_key (the variant's name)."""
    return {v.name: v.rate_limit for v in variants if v.rate_limit}


# ---------------------------------------------------------------- the loop


class _State:
    """What happens when a call finishes: score, record, progress. Runs on the loop, cheaply."""

    def __init__(self, scorer, writer, progress):
        self.scorer = scorer
        self.writer = writer
        self.progress = progress
        self.notes: dict[str, set[str]] = {}

    def finish(self, job: Job, result) -> None:
        scored = self.scorer.score(job.example, result.output, result.error)
        record = {
            "id": job.example.id,
            "repeat": job.repeat,
            "model": job.spec.model,
            "output": result.output,
            "parsed": scored.get("parsed"),
            "scores": scored.get("scores", {}),
            "reasons": scored.get("reasons", {}),
            "latency_ms": result.latency_ms,
            "tokens_in": result.tokens_in,
            "tokens_out": result.tokens_out,
            "cost_usd": result.cost_usd,
            "cached": result.cached,
            "error": result.error,
            "retrieved": job.retrieved,
        }
        self.writer.append(job.variant, record)
        if result.note:
            self.notes.setdefault(job.variant, set()).add(result.note)
        self.progress.advance(job.variant, error=result.error is not None, cost=result.cost_usd)


def _run_pool(pool, jobs: list[Job], answered, on_first=None) -> bool:
    """Calls spread over worker processes; True when interrupted."""
    first_hook = on_first

    def on_result(i: int, result) -> None:
        nonlocal first_hook
        if first_hook is not None:
            hook, first_hook = first_hook, None
            hook()
        answered(jobs[i], result)

    return _interruptible(lambda: pool.run([j.spec for j in jobs], on_result))


def _run_loop(engine, jobs: list[Job], answered) -> bool:
    """Send every job in this process; True when interrupted."""

    async def one(job: Job) -> None:
        answered(job, await engine.call(job.spec))

    async def main() -> None:
        await asyncio.gather(*(one(j) for j in jobs))

    return _interruptible(lambda: asyncio.run(main()))


def _interruptible(send) -> bool:
    """Run `send()`; True when Ctrl-C or SIGTERM (CI cancelling a job: as clean) stopped it."""
    previous = None
    if sys.platform != "win32":
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        send()
    except KeyboardInterrupt:
        return True
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return False


# ---------------------------------------------------------------- progress


class Progress:
    """Per-variant done/total, errors and spend, on stderr; silent when not a terminal."""

    def __init__(self, totals: dict[str, int], done: dict[str, set], *, console=None, enabled=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.enabled = self.console.is_terminal if enabled is None else enabled
        self.counts = {
            name: {"done": len(done.get(name, ())), "errors": 0, "cost": 0.0} for name in totals
        }
        self._bar = None
        self._tasks = {}
        if not self.enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("errors {task.fields[errors]}"),
            TextColumn("${task.fields[cost]:.4f}"),
            TimeElapsedColumn(),
            console=self.console,
            refresh_per_second=4,
        )
        for name, total in totals.items():
            self._tasks[name] = self._bar.add_task(
                name, total=total, completed=self.counts[name]["done"], errors=0, cost=0.0
            )
        self._bar.start()

    def advance(self, variant: str, *, error: bool, cost: float | None) -> None:
        c = self.counts[variant]
        c["done"] += 1
        c["errors"] += int(error)
        c["cost"] += cost or 0.0
        if self._bar is not None:
            self._bar.update(self._tasks[variant], advance=1, errors=c["errors"], cost=c["cost"])

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


# ---------------------------------------------------------------- plain table


def variant_table(outcome: RunOutcome, summary: dict[str, Any]):
    """A rich Table of answers/errors/latency/cost per variant, from the summary's figures."""
    from rich.table import Table

    table = Table(title=f"{outcome.suite.name} · run {outcome.run_id}")
    for col in (
        "variant",
        "calls",
        "errors",
        "cached",
        "p50 ms",
        "p95 ms",
        "tokens in/out",
        "cost $",
    ):
        table.add_column(col, justify="left" if col == "variant" else "right", no_wrap=True)
    for name in outcome.variants:
        s = summary["variants"][name]
        table.add_row(
            name,
            str(s["n_calls"]),
            str(s["n_errors"]),
            str(s["cached_calls"]),
            _fmt(s["latency_p50_ms"]),
            _fmt(s["latency_p95_ms"]),
            f"{s['tokens_in']}/{s['tokens_out']}",
            "unknown" if s["cost_usd"] is None else f"{s['cost_usd']:.4f}",
        )
    return table


def metrics_table(summary: dict[str, Any]):
    """Quality metrics with their CIs, and each variant's paired difference from the baseline."""
    from rich.table import Table

    from harness.metrics import lookup

    names = []
    for name in summary.get("metrics") or []:
        m = lookup(name)
        if m is not None and m.quality:
            names.append(name)
    variants = summary.get("variants") or {}
    if not names or not variants:
        return None
    baseline = summary.get("baseline")
    table = Table(title="quality (95% CI)")
    table.add_column("variant", no_wrap=True)
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column(f"Δ vs {baseline} (paired)", justify="right", no_wrap=True)
    for vname, v in variants.items():
        for i, name in enumerate(names):
            table.add_row(
                vname if i == 0 else "",
                name,
                _interval((v.get("metrics") or {}).get(name)),
                "baseline"
                if vname == baseline
                else _interval((v.get("delta") or {}).get(name), signed=True),
                end_section=i == len(names) - 1,
            )
    return table


def _interval(m: dict | None, *, signed: bool = False) -> str:
    if not m or m.get("value") is None:
        return "-"
    fmt = "{:+.3f}" if signed else "{:.3f}"
    text = fmt.format(m["value"])
    if m.get("ci_low") is not None and m.get("ci_high") is not None:
        text += f" [{fmt.format(m['ci_low'])}, {fmt.format(m['ci_high'])}]"
    return text


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.0f}"


def latency_percentiles(records: list[dict]) -> dict[str, float | None]:
    """p50/p95 latency of the answered calls: the engine's figures summarize() leaves out."""
    import numpy as np

    latencies = [
        r["latency_ms"]
        for r in records
        if r.get("error") is None and r.get("latency_ms") is not None
    ]
    return {
        "latency_p50_ms": float(np.percentile(latencies, 50)) if latencies else None,
        "latency_p95_ms": float(np.percentile(latencies, 95)) if latencies else None,
    }


# ---------------------------------------------------------------- summary and output


def full_summary(outcome: RunOutcome) -> dict[str, Any]:
    """summary.json before the guard: metrics with CIs and paired deltas (harness.summary), the
    engine's operational figures, and retrieval quality for RAG variants."""
    from harness.summary import summarize

    summary = summarize(
        outcome.suite,
        outcome.dataset,
        outcome.records,
        {
            "run_id": outcome.run_id,
            "started_at": outcome.started_at,
            "finished_at": outcome.finished_at,
            "exit_code": outcome.exit_code,
        },
    )
    for name in outcome.variants:
        entry = summary["variants"].setdefault(name, {})
        entry.update(latency_percentiles(outcome.records.get(name, [])))
        entry["notes"] = outcome.notes.get(name, [])
    suite = outcome.suite
    if suite.spec.data.gold:
        from harness.retrieval import retrieval_metrics

        by_id = outcome.dataset.by_id()
        for name in outcome.variants:
            v = suite.variant(name)
            if v.kind == "rag":
                k = v.retrieval.k if v.retrieval else 4
                summary["variants"][name]["retrieval"] = retrieval_metrics(
                    outcome.records[name], by_id, k
                )
    return summary


def write_summary(outcome: RunOutcome, summary: dict[str, Any]) -> Path:
    import json
    import os

    path = outcome.run_dir / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(
        json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    os.replace(tmp, path)
    return path


def print_outcome(outcome: RunOutcome, *, as_json: bool = False) -> None:
    """The run's summary on stdout: a table for people, or the summary JSON with --json."""
    import json

    from rich.console import Console

    summary = outcome.options["summary"]  # run_suite always sets it
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
        return
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=120)  # pipes and CI logs: don't truncate columns
    console.print(variant_table(outcome, summary))
    quality = metrics_table(summary)
    if quality is not None:
        console.print(quality)
    for name, notes in outcome.notes.items():
        for note in notes:
            console.print(f"note: {name}: {note}")
    # The guard's verdicts, one plain sentence each (markup off: sentences hold brackets).
    for v in ((summary.get("guard") or {}).get("verdicts") or {}).values():
        console.print(f"{v['verdict'].upper()}: {v['sentence']}", markup=False, highlight=False)
    console.print(f"results: {outcome.run_dir}")
