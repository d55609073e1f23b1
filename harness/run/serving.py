"""The inference servers of a run: started before a trained variant's first call, stopped when
the run ends (also on Ctrl-C or an error; harness.run.execute.PoolSlot.close).

A `local/ft-<job id>` variant is answered by a real OpenAI-compatible server, reached through
litellm (harness.calls.local_server): vLLM when its job was served by vLLM (`finetune.serve`,
the peft adapter on its transformers base, or the full model, at the training precision);
otherwise llama.cpp's server on the job's GGUF files — the LoRA adapter on the very base file
the prompt variants load, or the full fine-tune's F32 GGUF. One server per trained model, on a
free port of 127.0.0.1; its log is `servers/<model>.log` in the run directory.

The prompt variants on the same base (`local/smollm2`, `local/hf:...`) stay on the in-process
llama.cpp workers: they load the same base file at the same precision, and llama-cpp-python's
server holds one model at a time (a base and an adapter behind one server would reload on each
switch). HARNESS_LOCAL_SERVE=in-process answers trained GGUF models in-process too.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from harness.calls import local_server
from harness.calls._litellm import needs_local_provider
from harness.calls.local_processes import N_CTX, n_threads, resolve
from harness.calls.local_server import Endpoint, LlamaCppServer, Server
from harness.calls.local_trained import TRAINED_PREFIX, Served
from harness.calls.local_worker import DEFAULTS
from harness.errors import SuiteError

LOG_DIR = "servers"
# llama.cpp's server samples with a repeat penalty of 1.1 unless told; the in-process path's
# Llama.create_chat_completion uses 1.0 (none).
LLAMA_CPP_BODY = {"repeat_penalty": 1.0}
HEALTH_TIMEOUT_ENV = "HARNESS_SERVER_TIMEOUT_S"
HEALTH_TIMEOUT_S = {"llama.cpp": 120.0, "vllm": 900.0}  # vLLM loads a 7B in minutes


def served_models(selected) -> list[str]:
    """The trained local models of the selected variants that a started server answers."""
    trained = {
        v.model
        for v in selected
        if needs_local_provider(v.model) and v.model.split("/", 1)[1].startswith(TRAINED_PREFIX)
    }
    if not trained or not local_server.use_server():
        # Unless they are vLLM's, which only a server answers.
        return sorted(m for m in trained if resolve(m).engine == "vllm")
    return sorted(trained)


def check_servable(models: list[str]) -> None:
    """Before any call (exit 2): llama.cpp's server needs the `local` extra's server deps."""
    if not any(resolve(m).engine == "llama.cpp" for m in models):
        return
    missing = local_server.missing_server_deps()
    if missing:
        raise SuiteError(
            f"a trained local model is answered by llama.cpp's server, which needs "
            f"{', '.join(missing)} — pip install -e '.[local]' (or set "
            f"{local_server.SERVE_ENV}=in-process to answer it in this process's workers)"
        )


class Servers:
    """The servers one run started; `stop` ends them all (idempotent)."""

    def __init__(self, models: list[str]):
        self.models = models
        self.running: dict[str, Server] = {}

    def start(self, run_dir: Path) -> list[str]:
        """Start and health-check a server per model not yet running; a note per server for
        the summary (engine, precision, log)."""
        notes = []
        for model_id in self.models:
            # Running already: this run's, or the outer run's (the forgetting check is a run
            # inside the run; a second vLLM on the same GPU would not fit).
            if model_id in self.running or local_server.endpoint_for(model_id) is not None:
                continue
            served = resolve(model_id)
            server, endpoint = _server(served)
            self.running[model_id] = server
            server.start(run_dir / LOG_DIR / f"{server.name}.log")
            server.wait_healthy(_timeout(served.engine))
            local_server.register(endpoint)
            notes.append(
                f"{model_id}: answered by the {endpoint.engine} that harness started at "
                f"{server.api_base} ({endpoint.precision}); log: {server.log}"
            )
        return notes

    def stop(self) -> None:
        running, self.running = self.running, {}
        for model_id, server in running.items():
            local_server.unregister(model_id)
            with contextlib.suppress(Exception):  # the others are stopped all the same
                server.stop(grace_s=10.0)


def _timeout(engine: str) -> float:
    import os

    raw = os.environ.get(HEALTH_TIMEOUT_ENV, "").strip()
    try:
        return float(raw) if raw else HEALTH_TIMEOUT_S[engine]
    except ValueError:
        raise SuiteError(f"{HEALTH_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None


def _server(served: Served) -> tuple[Server, Endpoint]:
    name = served.model_id.split("/", 1)[1]
    if served.engine == "vllm":
        from harness.finetune.local.vllm import server_for

        vllm = server_for(served.gguf.parent)
        return vllm, Endpoint(
            model_id=served.model_id,
            litellm_model=vllm.litellm_model(),
            api_base=vllm.api_base,
            engine="vLLM server",
            precision=f"dtype {vllm.dtype}" + (" + LoRA adapter" if vllm.adapter else ""),
            defaults=dict(DEFAULTS),
            max_in_flight=64,  # vLLM batches the requests it holds
            server=vllm,
        )
    server = LlamaCppServer(
        name=name, gguf=served.gguf, lora=served.lora, n_ctx=N_CTX, threads=n_threads()
    )
    return server, Endpoint(
        model_id=served.model_id,
        litellm_model=f"{server.litellm_prefix}/{name}",
        api_base=server.api_base,
        engine="llama.cpp server",
        precision=precision(served),
        defaults=dict(DEFAULTS),
        body_defaults=dict(LLAMA_CPP_BODY),
        grammar_as_body=True,
        server=server,
    )


def precision(served: Served) -> str:
    """What the served GGUF files hold: `Q4_1 base + F32 LoRA adapter`, `F32`."""
    base = file_type(served.gguf)
    return base if served.lora is None else f"{base} base + {file_type(served.lora)} LoRA adapter"


def file_type(path: Path) -> str:
    """A GGUF file's type as llama.cpp names it (general.file_type; an adapter's tensors)."""
    try:
        import gguf
    except ImportError:
        return "?"
    try:
        reader = gguf.GGUFReader(str(path))
        field = reader.fields.get(gguf.Keys.General.FILE_TYPE)
        if field is not None:
            name = gguf.LlamaFileType(int(field.contents())).name
            return name.removeprefix("MOSTLY_").removeprefix("ALL_")
        types = {t.tensor_type.name for t in reader.tensors}
    except (OSError, ValueError, KeyError, IndexError):
        return "?"  # an unreadable file: the server says what is wrong with it
    return "/".join(sorted(types)) or "?"
