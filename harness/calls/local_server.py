"""Trained local models answered by a real inference server that harness starts and stops.

`harness run` (harness.run.serving) starts one OpenAI-compatible server per trained model —
llama.cpp's (`python -m llama_cpp.server`, llama-cpp-python's `server` deps in the `local`
extra) or vLLM's (harness.finetune.local.vllm) — on a free port of 127.0.0.1, waits for
GET /v1/models, and registers its endpoint here. From then on the engine sends that model's
calls to the server through litellm (`openai/<name>` or `hosted_vllm/<name>` at its api_base:
the lean transport when it vouches for the request), while the records, the cache key and the
(zero) price stay the variant's `local/ft-<job id>`.

Like for like with the in-process path (harness.calls.local_worker): the server loads the same
GGUF files (base + LoRA adapter, or the F32 full model) at the same context size; each request
carries the worker's sampling defaults (greedy, 256 tokens, no repeat penalty — the server's own
defaults are 0.8, 16 and 1.1) and a JSON-Schema `response_format` as the very GBNF grammar the
worker builds, which llama.cpp's server takes as `grammar` (its `response_format` knows no
`json_schema`). Answers are stripped as the worker strips them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import LocalModelCrashed, ProviderError, ServerCrashed
from harness.types import CallSpec

SERVE_ENV = "HARNESS_LOCAL_SERVE"  # "server" (default) or "in-process": the worker pool instead
SERVER_DEPS = ("fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")
SERVER_KEY = "no-key"  # what a started server is sent as its key: it checks none
ZERO_PRICE = {"input_per_1m": 0.0, "output_per_1m": 0.0}


def use_server() -> bool:
    """Trained models go through a started server unless HARNESS_LOCAL_SERVE=in-process."""
    value = os.environ.get(SERVE_ENV, "server").strip() or "server"
    if value not in ("server", "in-process"):
        from harness.errors import SuiteError

        raise SuiteError(f"{SERVE_ENV}={value!r}: write server or in-process")
    return value == "server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def last_line(log: Path) -> str:
    """The log's last non-empty line: what a server said before it died or hung."""
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip()[:300] if lines else "it printed nothing"


def _death_signal():
    """The child's pre-exec step on Linux: the kernel sends it SIGTERM when the thread that
    started it dies (harness killed with -9 included), so no server outlives its run. Resolved
    here in the parent: between fork and exec the child may not import (another thread of the
    parent may have held the import lock at the fork)."""
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Server:
    """An OpenAI-compatible server process: start, wait until healthy, stop."""

    name: str  # the model name it serves (what the request's `model` says)
    port: int = 0
    process: subprocess.Popen | None = None
    log: Path = Path("server.log")
    extra_args: list[str] = field(default_factory=list)

    engine = "server"  # what the errors and the report call it
    health_path = "/v1/models"
    litellm_prefix = "openai"

    def __post_init__(self):
        if not self.port:
            self.port = free_port()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, log: Path, command: list[str] | None = None) -> None:
        """Start the server (its own session, so a Ctrl-C at the terminal reaches harness, which
        stops it; output to `log`); `wait_healthy` next."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                command or self.command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                preexec_fn=_death_signal(),
            )
        self.log = log

    def healthy(self) -> bool:
        try:
            root = self.api_base.removesuffix("/v1")
            with urllib.request.urlopen(f"{root}{self.health_path}", timeout=2) as r:
                return r.status == 200 and self.serves_own_model(r.read())
        except (urllib.error.URLError, OSError):
            return False

    def serves_own_model(self, body: bytes) -> bool:
        """Whether what answered is this server: the port may have been taken between the pick
        and the bind (another run's server), and a stranger's 200 would send the run's calls to
        another model. /v1/models lists the model by name; vLLM's /health says nothing."""
        if self.health_path != "/v1/models":
            return True
        try:
            listed = {m.get("id") for m in json.loads(body).get("data") or []}
        except (ValueError, AttributeError):
            return False
        return self.name in listed

    def wait_healthy(self, timeout_s: float = 900.0) -> None:
        """Until the health path answers 200; ProviderError (exit 3) with the log's last line
        when the server died or did not come up in time (loading a 7B takes minutes)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ProviderError(
                    f"{self.engine} exited with status {self.process.returncode} before it "
                    f"served — {last_line(self.log)} (log: {self.log})"
                )
            if self.healthy():
                return
            time.sleep(0.25)
        self.stop()
        raise ProviderError(
            f"{self.engine} did not answer {self.health_path} within {timeout_s:.0f} s — "
            f"{last_line(self.log)} (log: {self.log})"
        )

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM to its process group (vLLM has worker children), SIGKILL after the grace."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@dataclass
class LlamaCppServer(Server):
    """llama-cpp-python's server on the GGUF files the in-process workers would load."""

    gguf: Path = Path()
    lora: Path | None = None
    n_ctx: int = 2048
    threads: int = 1

    engine = "llama.cpp server"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf)]
        if self.lora is not None:
            cmd += ["--lora_path", str(self.lora)]
        cmd += ["--model_alias", self.name, "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--n_ctx", str(self.n_ctx), "--n_threads", str(self.threads)]
        # Batch (prompt) decoding at the same threads: its default is every core.
        cmd += ["--n_threads_batch", str(self.threads), "--verbose", "False"]
        return cmd + list(self.extra_args)


def missing_server_deps() -> list[str]:
    import importlib.util

    return [m for m in SERVER_DEPS if importlib.util.find_spec(m) is None]


# ---------------------------------------------------------------- routing the calls


@dataclass(frozen=True)
class Endpoint:
    """Where a trained model's calls go while its server runs."""

    model_id: str  # local/ft-<job id>: what the variant, records and cache name
    litellm_model: str  # openai/<name> or hosted_vllm/<name>
    api_base: str
    engine: str  # "llama.cpp server" or "vLLM": what the report names
    precision: str | None = None  # what the server runs it at, for the report
    defaults: dict[str, Any] = field(default_factory=dict)  # when the suite sets no value
    body_defaults: dict[str, Any] = field(default_factory=dict)  # the server's own fields
    grammar_as_body: bool = False  # llama.cpp's server: the schema goes as its GBNF `grammar`
    max_in_flight: int = 1  # llama.cpp's server answers one request at a time
    server: Server | None = None  # the process behind it: a failed call asks whether it died

    def crashed(self) -> LocalModelCrashed | None:
        """The server's death, when a call failed because it is gone (the run stops: every
        later call would fail the same way)."""
        proc = self.server.process if self.server is not None else None
        if proc is None or proc.poll() is None:
            return None
        code = proc.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited ({code})"
        return ServerCrashed(
            f"the {self.engine} answering {self.model_id} {how} while serving — "
            f"{last_line(self.server.log)} (log: {self.server.log})"
        )

    def spec(self, spec: CallSpec) -> CallSpec:
        """The call as the server takes it; price zero as for the in-process model."""
        params = {**self.defaults, **spec.params}
        body = {**self.body_defaults, **(params.get("extra_body") or {})}
        response_format = spec.response_format
        if self.grammar_as_body and response_format is not None:
            grammar = gbnf(response_format)
            if grammar is not None:
                body["grammar"] = grammar
                response_format = None
        if body:
            params["extra_body"] = body
        # Harness's own server takes no key; without one litellm would send the environment's
        # OPENAI_API_KEY (or HOSTED_VLLM_API_KEY) to whatever listens on the port.
        params["api_key"] = SERVER_KEY
        return replace(
            spec,
            model=self.litellm_model,
            api_base=self.api_base,
            params=params,
            response_format=response_format,
            pricing=spec.pricing or ZERO_PRICE,
        )

    def finish(self, result):
        """The answer as the in-process worker returns it (the grammar allows trailing
        whitespace after the JSON; it carries no meaning)."""
        if self.grammar_as_body and result.output is not None:
            result.output = result.output.strip()
        return result

    def slot(self) -> asyncio.Semaphore:
        """The running loop's queue for this server, held before the latency clock starts: a
        call's latency is the server's work, not the wait behind other calls in its queue."""
        loop = asyncio.get_running_loop()
        slots = _slots.setdefault(self.model_id, weakref.WeakKeyDictionary())
        sem = slots.get(loop)
        if sem is None:
            sem = slots[loop] = asyncio.Semaphore(self.max_in_flight)
        return sem


_endpoints: dict[str, Endpoint] = {}
_slots: dict[str, weakref.WeakKeyDictionary] = {}


def register(endpoint: Endpoint) -> None:
    _endpoints[endpoint.model_id] = endpoint


def unregister(model_id: str) -> None:
    _endpoints.pop(model_id, None)
    _slots.pop(model_id, None)


def endpoint_for(model: str) -> Endpoint | None:
    """The running server of a model id, if harness started one."""
    return _endpoints.get(model) if _endpoints else None


def gbnf(response_format: Any) -> str | None:
    """The GBNF grammar text local_worker.grammar_for compiles for this response_format."""
    from harness.calls.local_worker import schema_of

    schema = schema_of(response_format)
    return None if schema is None else _gbnf(json.dumps(schema, sort_keys=True))


@functools.lru_cache(maxsize=32)
def _gbnf(schema_json: str) -> str:
    # Milliseconds per conversion, and a suite asks with one schema throughout.
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return json_schema_to_gbnf(schema_json)
