"""Worker processes that make the model calls, so litellm's per-call CPU never stalls one loop.

litellm spends ~4-5 ms of CPU per call (logging, cost, the OpenAI SDK); at 32 calls in flight and
200 ms latency that is most of a core, and replies queue on a single event loop in waves. Each
worker runs its own `Engine` (its share of the concurrency and rate limits) and sends results back
in small batches; the parent scores, records and caches them. Workers are started before the data
is prepared, so their `import litellm` (~3 s) overlaps the parent's work.

A worker exits as soon as its parent goes away (its pipe reaches EOF), so a killed run leaves no
orphan sending requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import signal
import sys
import time
from multiprocessing.connection import Connection, wait
from typing import Any

BATCH_SECONDS = 0.03  # how long a worker gathers results before sending them (fewer pipe writes)


def default_workers(concurrency: int) -> int:
    cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4, concurrency))


def _share(total: float | int | None, n: int, i: int):
    if total is None:
        return None
    base, extra = divmod(int(total), n)
    return max(1, base + (1 if i < extra else 0))


class WorkerPool:
    """`start()` early; `run(specs, on_result)` later; `close()` always (also on Ctrl-C)."""

    def __init__(self, n: int, concurrency: int, rate_limits: dict[str, Any] | None = None):
        self.n = max(1, min(n, concurrency))
        self.concurrency = concurrency
        self.rate_limits = rate_limits or {}
        self.procs: list[mp.Process] = []
        self.conns: list[Connection] = []
        self.requests = 0

    def start(self) -> WorkerPool:
        # fork: the child starts instantly with the parent's modules; spawn where fork is unsafe.
        forking = sys.platform == "linux"
        ctx = mp.get_context("fork" if forking else "spawn")
        for i in range(self.n):
            parent, child = ctx.Pipe(duplex=True)
            # A forked child inherits the parent's ends of every pipe (its own included); it must
            # close them, or it would never see EOF when the parent dies.
            inherited = [*self.conns, parent] if forking else []
            limits = {
                key: {
                    "rpm": _share(getattr(v, "rpm", None), self.n, i),
                    "tpm": _share(getattr(v, "tpm", None), self.n, i),
                }
                for key, v in self.rate_limits.items()
                if v is not None
            }
            proc = ctx.Process(
                target=_worker_main,
                args=(child, _share(self.concurrency, self.n, i), limits, inherited),
                name=f"harness-worker-{i}",
                daemon=True,
            )
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)
        return self

    def run(self, specs: list[Any], on_result) -> None:
        """Send every spec; call `on_result(index, CallResult)` in this process as results come."""
        from harness.engine import CallResult

        shares = [[(i, s) for i, s in enumerate(specs) if i % self.n == k] for k in range(self.n)]
        pending = {k: {i for i, _ in share} for k, share in enumerate(shares)}
        for conn, share in zip(self.conns, shares, strict=True):
            conn.send(("jobs", share))
        live = {conn: k for k, conn in enumerate(self.conns)}
        while live:
            for conn in wait(list(live), timeout=1.0):
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
                    continue
                if kind == "results":
                    for i, result in payload:
                        pending[k].discard(i)
                        on_result(i, result)
                elif kind == "done":
                    self.requests += payload.get("requests", 0)
                    del live[conn]
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


def _worker_main(
    conn: Connection, concurrency: int, limits: dict[str, dict], inherited: list
) -> None:
    # Ctrl-C reaches the whole process group; the parent decides, and closes our pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for other in inherited:
        other.close()
    try:
        from harness.engine import Engine, import_litellm
        from harness.suite import RateLimit

        import_litellm()
        try:
            kind, jobs = conn.recv()
        except (EOFError, OSError):
            return  # the parent needed no calls after all
        engine = Engine(
            concurrency=concurrency,
            cache=None,  # the parent owns the cache (one writer, batched)
            rate_limits={k: RateLimit(**v) for k, v in limits.items()},
        )
        asyncio.run(_serve(conn, jobs, engine))
        conn.send(("done", {"requests": engine.stats.requests}))
    except (BrokenPipeError, EOFError, ConnectionResetError):
        pass
    except Exception as e:  # a bug: let the parent show it
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        os._exit(0)  # skip atexit handlers inherited from the parent (pytest, sqlite, threads)


async def _serve(conn: Connection, jobs: list[tuple[int, Any]], engine) -> None:
    loop = asyncio.get_running_loop()
    out: list[tuple[int, Any]] = []

    def parent_gone() -> None:
        # The parent never writes after the job list, so readability means EOF: it exited.
        os._exit(1)

    loop.add_reader(conn.fileno(), parent_gone)

    async def one(i: int, spec) -> None:
        result = await engine.call(spec)
        out.append((i, result))

    async def flusher() -> None:
        while True:
            await asyncio.sleep(BATCH_SECONDS)
            if out:
                batch = out[:]
                del out[:]
                conn.send(("results", batch))

    task = asyncio.create_task(flusher())
    await asyncio.gather(*(one(i, s) for i, s in jobs))
    task.cancel()
    if out:
        conn.send(("results", out[:]))
