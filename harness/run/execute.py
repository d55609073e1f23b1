"""Sending the calls: cache hits first, then the misses through worker processes or this
process's event loop; every answer is scored and appended as it arrives."""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.calls._litellm import needs_local_provider, provider_facts
from harness.calls.cache import Cache, cache_key
from harness.calls.engine import Engine
from harness.calls.local_processes import prestart as prestart_local_workers
from harness.calls.pool import WorkerPool, default_workers
from harness.run.plan import Job, rate_limits
from harness.run.serving import Servers, check_servable, served_models
from harness.types import CallResult

# Below this many calls one process keeps up and worker start-up would not pay for itself.
MIN_CALLS_FOR_WORKERS = 256


class PoolSlot:
    """Holds the worker pool, if one is started, so it is always closed."""

    def __init__(self, workers: int | None):
        self.workers = workers
        self.pool = None
        self.servers = Servers([])  # the trained local models' inference servers

    def serve(self, run_dir: Path) -> list[str]:
        """Start the servers of the trained local models before their first call; their notes
        (engine, precision, log) for the summary. `close` stops them."""
        return self.servers.start(run_dir)

    def start(self, selected, concurrency: int, limit: int | None) -> None:
        """Worker processes for remote models, started before the data loads and the prompts
        render, so their litellm import overlaps that work. Local models have worker processes
        of their own (harness.calls.local_processes), started here for the same reason.
        """
        workers = self.workers
        self.servers = Servers(served_models(selected))
        check_servable(self.servers.models)
        local = sorted(
            {v.model for v in selected if needs_local_provider(v.model)} - set(self.servers.models)
        )
        if local or self.servers.models:
            # llama.cpp's own worker processes: loading the models overlaps the litellm import.
            # (A started server's calls go from this process too: its endpoint is registered
            # here.)
            prestart_local_workers(tuple(local))
            return
        if workers == 0:
            return
        calls_at_most = None if limit is None else limit * sum(v.repeats for v in selected)
        if workers is None and calls_at_most is not None and calls_at_most < MIN_CALLS_FOR_WORKERS:
            return
        n = workers if workers is not None else default_workers(concurrency)
        self.pool = WorkerPool(n, concurrency, rate_limits(selected)).start()

    def keep_if_needed(self, n_calls: int) -> None:
        """Once the calls are counted: a small run is quicker in this process (the workers would
        still be importing litellm), so stop them without waiting."""
        if self.pool is not None and self.workers is None and n_calls < MIN_CALLS_FOR_WORKERS:
            self.close(now=True)
            self.pool = None

    def close(self, *, now: bool = False) -> None:
        try:
            if self.pool is not None:
                self.pool.close(now=now)
        finally:
            self.servers.stop()

    @property
    def facts(self):
        """Who answers the checks' questions to litellm: a started worker, else this process."""
        return self.pool.facts if self.pool is not None else provider_facts


def make_engine(variants, concurrency: int):
    return Engine(
        concurrency=concurrency,
        cache=None,  # looked up in one batch before the calls; `answered` stores the answers
        rate_limits=rate_limits(variants),
    )


class RecordSink:
    """Where a finished call goes: scored, written to results/<variant>.jsonl, counted in the
    progress bar. Runs on the event loop, so it stays cheap."""

    def __init__(self, scorer, writer, progress):
        self.scorer = scorer
        self.writer = writer
        self.progress = progress
        self.notes: dict[str, set[str]] = {}
        self.truncated: dict[str, int] = {}  # answers cut at max_tokens, per variant

    def finish(self, job: Job, result) -> None:
        scored = self.scorer.score(job.example, result.output, result.error)
        inputs = job.example.inputs
        record = {
            "id": job.example.id,
            "repeat": job.repeat,
            # What was asked and what was expected, so a metric can be recomputed from the
            # results file alone (harness.results.Record).
            "input": next(iter(inputs.values())) if len(inputs) == 1 else inputs,
            "expected": job.example.target,
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
            # Attempts beyond the first (429 / 5xx / timeouts); a cached answer made none now.
            "retries": 0 if result.cached else max(0, result.attempts - 1),
        }
        if result.price_factor != 1.0:  # a batch answer: every re-pricing keeps its discount
            record["price_factor"] = result.price_factor
        self.writer.append(job.variant, record)
        if result.note:
            self.notes.setdefault(job.variant, set()).add(result.note)
        if result.truncated:
            self.truncated[job.variant] = self.truncated.get(job.variant, 0) + 1
        # The bar shows spend: a cached answer cost nothing in this run.
        spent = None if result.cached else result.cost_usd
        self.progress.advance(
            job.variant, error=result.error is not None, cost=spent, retries=record["retries"]
        )


def run_pool(pool, jobs: list[Job], answered, on_first=None, cache_path=None, run_id=None) -> bool:
    """Calls spread over worker processes (which store answers in the cache at `cache_path`,
    as paid by `run_id`); True when interrupted."""
    first_hook = on_first

    def on_result(i: int, result) -> None:
        nonlocal first_hook
        if first_hook is not None:
            hook, first_hook = first_hook, None
            hook()
        answered(jobs[i], result)

    return _interruptible(lambda: pool.run([j.spec for j in jobs], on_result, cache_path, run_id))


def run_loop(engine, jobs: list[Job], answered, on_retry=None) -> bool:
    """Send every job in this process; True when interrupted. `on_retry(variant)` hears of each
    retry as it starts (the progress bar shows them live)."""
    if on_retry is not None:
        variant_of = {id(j.spec): j.variant for j in jobs}
        engine.on_retry = lambda spec: on_retry(variant_of.get(id(spec)))

    return _interruptible(
        lambda: asyncio.run(engine.call_each(((j, j.spec) for j in jobs), answered))
    )


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


@dataclass
class Sent:
    """What the send step did in this invocation."""

    requests: int = 0  # requests sent (retries included)
    cache_hits: int = 0
    interrupted: bool = False
    # variant -> the transport its calls took and requests per path (Engine.paths, --timings)
    paths: dict = field(default_factory=dict)
    workers_cpu_s: float | None = None  # the worker pool's CPU while sending, if it sent


def cache_hits(jobs: list[Job], hits: dict[str, CallResult]) -> int:
    """Answers of `jobs` that came from the cache: a resumed run's own (found in a store, not
    marked cached) are its spend, and a look of `guard.sequential` counts only its own jobs."""
    return sum(1 for j in jobs if j.key in hits and hits[j.key].cached)


# With --no-cache the answers still reach a store before the pipe to this process: the run's own,
# which only `--resume` of that run reads, and which goes once every answer is in results/.
JOURNAL = "answers.sqlite"


def cached_answers(
    jobs: list[Job], runs_dir, no_cache: bool, resumed=None
) -> tuple[Cache | None, dict]:
    """The open answer store and its hits for `jobs`, looked up in one batch before any call (a
    fully cached re-run never imports litellm). The store is the shared cache, or with
    --no-cache a resumed run's journal (None for a new run: `open_journal` once it exists).
    A resumed run's own answers come back as its spend, not as cache hits (Cache.get_many)."""
    own = resumed.run_id if resumed is not None else None
    if no_cache:
        if resumed is None or not (resumed.path / JOURNAL).exists():
            return None, {}
        store = Cache(resumed.path / JOURNAL)
    else:
        store = Cache(Path(runs_dir) / ".cache.sqlite")
    _key(jobs)
    return store, store.get_many([j.key for j in jobs], own_run=own)


def open_journal(run_path: Path, jobs: list[Job]) -> Cache:
    """A --no-cache run's own answer store (see JOURNAL)."""
    _key(jobs)
    return Cache(run_path / JOURNAL)


def drop_journal(run_path: Path) -> None:
    """Every answer is in results/ now: the journal holds nothing the run can lose."""
    for suffix in ("", "-wal", "-shm"):
        (run_path / (JOURNAL + suffix)).unlink(missing_ok=True)


def _key(jobs: list[Job]) -> None:
    for j in jobs:
        if j.key is None:
            j.key = cache_key(j.spec)


def send(
    jobs: list[Job],
    hits: dict[str, CallResult],
    cache: Cache | None,
    sink: RecordSink,
    pool: PoolSlot,
    engine_for_misses,
    on_first=None,
    run_id: str | None = None,
) -> Sent:
    """Record the cache hits, then send the misses (worker pool, else `engine_for_misses()`)."""

    # Durability: every answer is in the cache (put commits) and in results/ (written through)
    # before the next one is handled, so a kill repeats at most the calls in flight.
    def answered(job: Job, result: CallResult) -> None:
        if cache is not None:
            cache.put(job.key, result, job.spec.model, run_id)  # successful answers only
        sink.finish(job, result)

    sent = Sent(cache_hits=cache_hits(jobs, hits))
    for j in jobs:
        if j.key in hits:
            sink.finish(j, hits[j.key])
    misses = [j for j in jobs if j.key not in hits]
    if misses and pool.pool is not None:
        # The workers store their answers in the cache themselves (before the pipe).
        sent.interrupted = run_pool(
            pool.pool,
            misses,
            sink.finish,
            on_first=on_first,
            cache_path=None if cache is None else str(cache.path),
            run_id=run_id,
        )
        sent.requests = pool.pool.requests
        sent.paths = pool.pool.paths
        sent.workers_cpu_s = pool.pool.calls_cpu_s
    elif misses:
        engine = engine_for_misses()
        sent.interrupted = run_loop(engine, misses, answered, on_retry=sink.progress.retry)
        sent.requests = engine.stats.requests
        sent.paths = engine.paths
    return sent
