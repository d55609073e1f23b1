"""Worker processes that make the model calls, so litellm's per-call CPU never stalls one loop.

litellm spends ~4-5 ms of CPU per call (logging, cost, the OpenAI SDK); at 32 calls in flight and
200 ms latency that is most of a core, and replies queue on a single event loop in waves. Each
worker runs its own `Engine` (its share of the concurrency and rate limits, see `plan`) and sends
results back as they finish; the parent scores, records and caches them.

Start-up is the cost to hide: `import litellm` takes ~3 s of CPU. On Linux one process (the first
worker) is forked as soon as the suite is loaded and imports litellm once while the parent loads
the data, renders and looks up the cache; it then forks the other workers, which inherit it.
One import instead of one per worker halves the start-up CPU on a 2-core machine, where parallel
imports would only compete for the cores. Elsewhere (spawn) each worker imports for itself.

A worker exits as soon as its parent goes away (its pipe reaches EOF), so a killed run leaves no
orphan sending requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import selectors
import signal
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from harness.types import CallResult


def default_workers(concurrency: int, cpus: int | None = None) -> int:
    """One worker per core this process may run on, up to the concurrency: a 16-core runner
    drives a fast server with 16 senders, and no worker is left without a call in flight."""
    if cpus is None:
        from harness.calls.local_processes import usable_cores

        cpus = usable_cores()  # a container's or taskset's share of the cores, not the host's
    return max(1, min(cpus, concurrency))


def _share(total: float | int | None, n: int, i: int):
    """Part i of `total` split into n whole parts that sum to it (a part may be 0)."""
    if total is None:
        return None
    base, extra = divmod(int(total), n)
    return base + (1 if i < extra else 0)


def _limit_workers(limit: Any, n: int) -> int:
    """How many of n workers share one rate limit: each share must be at least 1 a second.

    A worker's TokenBucket holds a burst of max(1, a second's worth) (harness.engine). Shares of
    at least 60 a minute keep the workers' bursts summing to the whole budget's burst, so the
    workers together send what one process would; smaller shares would add a unit of burst each
    (rpm 30 over 4 workers: 4 calls at once where one process sends 1 every 2 s). So a budget
    under 120 a minute goes to one worker.
    """
    m = n
    for per_minute in (getattr(limit, "rpm", None), getattr(limit, "tpm", None)):
        if per_minute:
            m = min(m, max(1, int(per_minute) // 60))
    return m


def _apportion(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights` (largest remainder), summing to `total`; every
    positive weight gets at least 1 when total allows, a zero weight gets 0."""
    live = [k for k, w in enumerate(weights) if w > 0]
    out = [0] * len(weights)
    if not live:
        return out
    floor = min(total, len(live))
    for k in live[:floor]:
        out[k] = 1
    rest = total - floor
    wsum = sum(weights[k] for k in live)
    quotas = {k: rest * weights[k] / wsum for k in live}
    for k in live:
        out[k] += int(quotas[k])
    left = total - sum(out)
    for k in sorted(live, key=lambda k: (-(quotas[k] - int(quotas[k])), k))[:left]:
        out[k] += 1
    return out


def plan(specs: list[Any], n: int, concurrency: int, rate_limits: dict[str, Any]) -> list[tuple]:
    """What each of n workers gets: `(jobs, concurrency, limits)`, jobs as `(index, spec)`.

    Specs without a rate limit go round-robin to every worker. A rate-limited
    variant's specs go round-robin only to the workers holding a share of its budget
    (`_limit_workers`; successive variants start on successive workers), and the shares of each
    budget sum to it, so no split multiplies a provider's limit. The concurrency is apportioned
    to the job counts: the shares sum to it and every worker with jobs has at least 1.
    """
    owners: dict[str, list[int]] = {}
    start = 0
    for key, limit in rate_limits.items():
        if limit is None or not (getattr(limit, "rpm", None) or getattr(limit, "tpm", None)):
            continue
        m = _limit_workers(limit, n)
        owners[key] = [(start + j) % n for j in range(m)]
        start = (start + m) % n
    jobs: list[list[tuple[int, Any]]] = [[] for _ in range(n)]
    seen: dict[str | None, int] = {}  # specs placed so far, per limited key (None: unlimited)
    for i, spec in enumerate(specs):
        key = getattr(spec, "rate_limit_key", None)
        workers = owners.get(key) if key is not None else None
        if workers is None:  # unlimited: every worker, from the one after the limited ones
            key, workers = None, [(start + k) % n for k in range(n)]
        j = seen.get(key, 0)
        seen[key] = j + 1
        jobs[workers[j % len(workers)]].append((i, spec))
    limits: list[dict[str, dict]] = [{} for _ in range(n)]
    for key, workers in owners.items():
        limit = rate_limits[key]
        for pos, k in enumerate(workers):
            limits[k][key] = {
                "rpm": _share(getattr(limit, "rpm", None), len(workers), pos),
                "tpm": _share(getattr(limit, "tpm", None), len(workers), pos),
            }
    shares = _apportion(concurrency, [len(j) for j in jobs])
    return list(zip(jobs, shares, limits, strict=True))


def merge_paths(into: dict[str, dict], other: dict[str, dict]) -> None:
    """Add one engine's `paths` (variant -> path and request counts) to another's."""
    for name, entry in other.items():
        have = into.setdefault(name, {"path": entry["path"], "lean": 0, "litellm": 0})
        have["lean"] += entry["lean"]
        have["litellm"] += entry["litellm"]


class WorkerPool:
    """`start()` early; `run(specs, on_result)` later; `close()` always (also on Ctrl-C)."""

    def __init__(self, n: int, concurrency: int, rate_limits: dict[str, Any] | None = None):
        self.n = max(1, min(n, concurrency))
        self.concurrency = concurrency
        self.rate_limits = rate_limits or {}  # sent to the workers with their jobs
        self.procs: list[mp.Process] = []
        self.conns: list[Connection] = []
        self.requests = 0
        # variant -> its transport path and requests per path (Engine.paths)
        self.paths: dict[str, dict] = {}
        self.calls_cpu_s = 0.0  # the workers' CPU while sending (their litellm import excluded)

    def start(self) -> WorkerPool:
        # fork: the child starts instantly with the parent's modules; spawn where fork is unsafe.
        forking = sys.platform == "linux"
        ctx = mp.get_context("fork" if forking else "spawn")
        pairs = [ctx.Pipe(duplex=True) for _ in range(self.n)]
        self.conns = [parent for parent, _ in pairs]
        children = [child for _, child in pairs]
        if forking:
            # One process imports litellm, then forks the others (see the module docstring).
            # It inherits the parent's ends of every pipe and must close them, or it would
            # never see EOF when the parent dies.
            targets = [(_zygote_main, (children, self.conns))]
        else:
            targets = [(_worker_main, (child,)) for child in children]
        for i, (target, args) in enumerate(targets):
            proc = ctx.Process(target=target, args=args, name=f"harness-worker-{i}", daemon=True)
            proc.start()
            self.procs.append(proc)
        for child in children:
            child.close()
        return self

    def facts(self, pairs: list[tuple[str, str | None]]) -> list[tuple[bool, list[str]]]:
        """`provider_facts(pairs)` answered by the first worker, which imports litellm anyway:
        the checks before the first call then cost this process no litellm import. Asked here
        itself if that worker cannot answer (it died, or litellm failed to import there)."""
        from harness.calls._litellm import provider_facts

        try:
            self.conns[0].send(("facts", pairs))
            kind, payload = self.conns[0].recv()
        except (EOFError, OSError):
            kind, payload = "error", None
        return payload if kind == "facts" else provider_facts(pairs)

    def run(
        self,
        specs: list[Any],
        on_result,
        cache_path: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """Send every spec; call `on_result(index, CallResult)` in this process as results come.

        With `cache_path`, each worker stores its answers there itself (as paid by `run_id`)
        before sending them here: an answer waiting in a pipe when harness is killed is not paid
        for twice, and the resumed run still counts it as its spend.
        """
        work = plan(specs, self.n, self.concurrency, self.rate_limits)
        pending = {k: {i for i, _ in jobs} for k, (jobs, _, _) in enumerate(work)}
        for conn, (jobs, concurrency, limits) in zip(self.conns, work, strict=True):
            conn.send(("jobs", jobs, concurrency, limits, cache_path, run_id))
        live = {conn: k for k, conn in enumerate(self.conns)}
        # One selector for the whole run: `multiprocessing.connection.wait` builds one per call,
        # ~17% of this process's CPU per answer (benchmarks/README.md, "CPU per call").
        selector = selectors.DefaultSelector()
        for conn in live:
            selector.register(conn, selectors.EVENT_READ)
        try:
            self._receive(selector, live, pending, on_result)
        finally:
            selector.close()

    def _receive(self, selector, live: dict, pending: dict, on_result) -> None:
        while live:
            for key, _ in selector.select(timeout=1.0):
                conn = key.fileobj
                k = live[conn]
                try:
                    kind, payload = conn.recv()
                except (EOFError, OSError):
                    # The worker died (OOM, crash): its unfinished calls become error records.
                    for i in sorted(pending[k]):
                        on_result(
                            i,
                            CallResult(
                                output=None, latency_ms=None, error="other: worker process died"
                            ),
                        )
                    pending[k].clear()
                    del live[conn]
                    selector.unregister(conn)
                    continue
                if kind == "results":
                    for i, result in payload:
                        pending[k].discard(i)
                        on_result(i, result)
                elif kind == "done":
                    self.requests += payload.get("requests", 0)
                    merge_paths(self.paths, payload.get("paths", {}))
                    self.calls_cpu_s += payload.get("cpu_s", 0.0)
                    del live[conn]
                    selector.unregister(conn)
                elif kind == "error":
                    raise RuntimeError(f"worker failed: {payload}")

    def close(self, *, now: bool = False) -> None:
        """Stop the workers: they exit on EOF; `now` terminates them without waiting."""
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.close()
        if now:
            for proc in self.procs:
                if proc.is_alive():
                    proc.terminate()
        deadline = time.monotonic() + 2
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(1)


# ---------------------------------------------------------------- in the worker


def _ignore_signals() -> None:
    # Ctrl-C reaches the whole process group; the parent decides, and closes our pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _zygote_main(conns: list[Connection], parent_ends: list[Connection]) -> None:
    """Worker 0 on Linux: import litellm once, fork workers 1..n-1, serve conns[0], reap them."""
    _ignore_signals()
    for end in parent_ends:
        end.close()
    with contextlib.suppress(Exception):  # a broken install is reported by each worker below
        from harness.calls._litellm import import_litellm

        import_litellm()
    kids = []
    for k in range(1, len(conns)):
        pid = os.fork()
        if pid == 0:
            for j, conn in enumerate(conns):
                if j != k:
                    conn.close()
            _serve_conn(conns[k])
            os._exit(0)
        kids.append(pid)
        # Only worker k may hold its pipe end, so the parent sees EOF if that worker dies.
        conns[k].close()
    _serve_conn(conns[0])
    # Reap the workers this process forked (their CPU and memory then count in the parent's
    # rusage, and no zombie is left behind).
    for pid in kids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    os._exit(0)  # skip atexit handlers inherited from the parent (pytest, sqlite, threads)


def _worker_main(conn: Connection) -> None:
    """A spawned worker (macOS, Windows): imports litellm itself."""
    _ignore_signals()
    try:
        _serve_conn(conn)
    finally:
        os._exit(0)


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker the moment its parent dies (even by SIGKILL), so no
    new request leaves after harness is gone; the pipe's EOF (below) is the portable net."""
    if sys.platform != "linux":
        return
    import ctypes

    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the call took effect
        os._exit(1)


def _serve_conn(conn: Connection) -> None:
    _die_with_parent()
    try:
        from harness.calls._litellm import provider_facts
        from harness.calls.engine import Engine, import_litellm
        from harness.suite import RateLimit

        import_litellm()
        try:
            message = conn.recv()
            while message[0] == "facts":  # the checks before the first call (WorkerPool.facts)
                conn.send(("facts", provider_facts(message[1])))
                message = conn.recv()
        except (EOFError, OSError):
            return  # the parent needed no calls after all
        _, jobs, concurrency, limits, cache_path, run_id = message
        if not jobs:  # more workers than the plan could use (a rate limit kept them idle)
            conn.send(("done", {"requests": 0}))
            return
        engine = Engine(
            concurrency=concurrency,
            cache=None,  # the parent looked the hits up in one batch; _serve stores answers
            rate_limits={k: RateLimit(**v) for k, v in limits.items()},
        )
        cache = None
        if cache_path is not None:
            from harness.calls.cache import Cache

            cache = Cache(cache_path)
        cpu = time.process_time()
        try:
            asyncio.run(_serve(conn, jobs, engine, cache, run_id))
        finally:
            if cache is not None:
                cache.close()
        cpu = time.process_time() - cpu
        conn.send(
            ("done", {"requests": engine.stats.requests, "paths": engine.paths, "cpu_s": cpu})
        )
    except (BrokenPipeError, EOFError, ConnectionResetError):
        pass
    except Exception as e:  # a bug: let the parent show it
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(e).__name__}: {e}"))


async def _serve(
    conn: Connection, jobs: list[tuple[int, Any]], engine, cache, run_id: str | None
) -> None:
    from harness.calls.cache import cache_key

    loop = asyncio.get_running_loop()
    out: list[tuple[int, Any]] = []

    def parent_gone() -> None:
        # The parent never writes after the job list, so readability means EOF: it exited.
        os._exit(1)

    loop.add_reader(conn.fileno(), parent_gone)

    ready = asyncio.Event()

    def answered(job: tuple[int, Any], result) -> None:
        i, spec = job
        if cache is not None:  # durable here, before the pipe (see WorkerPool.run)
            cache.put(cache_key(spec), result, spec.model, run_id)
        out.append((i, result))
        ready.set()

    async def flusher() -> None:
        # An answer goes to the parent (which writes it through to disk) on the loop's next
        # turn, never held back on a timer: a killed parent must lose no more than what was in
        # flight. Answers that finish while one send is under way share the next one.
        while True:
            await ready.wait()
            ready.clear()
            batch = out[:]
            del out[:]
            conn.send(("results", batch))

    task = asyncio.create_task(flusher())
    await engine.call_each(((job, job[1]) for job in jobs), answered)
    task.cancel()
    if out:
        conn.send(("results", out[:]))
