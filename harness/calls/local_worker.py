"""The local model's worker process: llama.cpp runs here, never in the harness process.

llama.cpp is native code compiled for a set of CPU features. When the build uses an instruction
the machine does not run (a native build made elsewhere; AVX-512/AMX that a hypervisor advertises
but does not enable) it dies with SIGILL — and a crash in-process would take the run with it,
silently. In a child, the parent sees the signal and stops the run with exit 3 and the fix.

Arguments: GGUF path, context size, threads, and optionally a LoRA adapter GGUF to apply.
Protocol: one JSON object per line on stdin, one answer per line on the original stdout. fd 1 is
pointed at stderr first, so whatever native code prints can never corrupt an answer.

    {"messages": [...], "params": {...}}   -> {"ok": {"text", "finish_reason", "prompt_tokens", ...}}
    a Python exception                     -> {"error": {"type", "message"}}

`python -m harness.calls.local_worker --info` prints the build's version and CPU features and exits
(no model load): what `harness doctor` shows.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from typing import Any

# Test-only switch: "SIGILL@3" makes the worker kill itself with SIGILL on its 3rd generate
# request, so tests can prove a native crash ends the run cleanly and resumes (no real bad CPU).
CRASH_ENV = "HARNESS_TEST_LOCAL_CRASH"

# Sampling params passed through to llama.cpp; anything else litellm forwards is ignored.
_SAMPLING = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
)
DEFAULT_MAX_TOKENS = 256  # a schema-constrained answer closes long before this
# What a request gets when the suite sets no value (greedy: the answers are reproducible);
# harness.calls.local_server sends the same to a started server, whose own defaults differ.
DEFAULTS = {"temperature": 0.0, "max_tokens": DEFAULT_MAX_TOKENS}


@functools.lru_cache(maxsize=32)
def _grammar(schema_json: str):
    # Converting a schema to a GBNF grammar costs milliseconds; a suite uses one schema throughout.
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_json_schema(schema_json, verbose=False)


def schema_of(response_format: Any) -> dict | None:
    """The JSON Schema an OpenAI-style response_format asks for (None: unconstrained text)."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
    if kind == "json_object":
        return response_format.get("schema") or {"type": "object"}
    return None


def grammar_for(response_format: Any):
    """A llama.cpp grammar for an OpenAI-style response_format (None: unconstrained text)."""
    schema = schema_of(response_format)
    return None if schema is None else _grammar(json.dumps(schema, sort_keys=True))


def _text(content: Any) -> str:
    # OpenAI content may be a list of parts; the model only reads text.
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


class Model:
    """The loaded model; answers one request at a time (the parent serialises them)."""

    def __init__(self, path: str, n_ctx: int, threads: int, lora: str | None = None):
        from llama_cpp import Llama

        self.llm = Llama(
            model_path=path,
            # A trained LoRA adapter (harness.finetune.local.gguf) on the unchanged base weights.
            lora_path=lora,
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,  # prompt (batch) decoding too: its default is every core
            verbose=False,
        )

    def generate(self, messages: list[dict], params: dict) -> dict:
        kwargs = {k: params[k] for k in _SAMPLING if params.get(k) is not None}
        kwargs = {**DEFAULTS, **kwargs}
        grammar = grammar_for(params.get("response_format"))
        chat = [
            {"role": m.get("role", "user"), "content": _text(m.get("content"))} for m in messages
        ]
        out = self.llm.create_chat_completion(messages=chat, grammar=grammar, **kwargs)
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return {
            # The grammar allows trailing whitespace after the JSON; it carries no meaning.
            "text": (choice["message"].get("content") or "").strip(),
            "finish_reason": choice.get("finish_reason") or "stop",
            "prompt_tokens": int(usage.get("prompt_tokens", 0)),
            "completion_tokens": int(usage.get("completion_tokens", 0)),
        }


def info() -> dict:
    import importlib.metadata

    import llama_cpp

    return {
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
        "version": importlib.metadata.version("llama-cpp-python"),
    }


def _crash_plan() -> tuple[int, int] | None:
    raw = os.environ.get(CRASH_ENV, "")
    if not raw:
        return None
    name, _, nth = raw.partition("@")
    return int(getattr(signal, name)), int(nth or 1)


def serve(path: str, n_ctx: int, threads: int, lora: str | None = None) -> None:
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # The parent handles Ctrl-C and tells the worker to stop by closing stdin; a terminal's
    # SIGINT reaches the whole process group, and must not kill a call halfway.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    crash = _crash_plan()
    # Loaded before the first request arrives, so its ~0.5 s overlaps the parent's own start-up.
    model = Model(path, n_ctx, threads, lora)
    for calls, line in enumerate(sys.stdin, start=1):
        request = json.loads(line)
        if crash is not None and calls == crash[1]:
            os.kill(os.getpid(), crash[0])
        try:
            answer: dict = {"ok": model.generate(request["messages"], request.get("params") or {})}
        except Exception as e:  # sent back and raised in the parent as the same kind of error
            answer = {"error": {"type": type(e).__name__, "message": str(e)}}
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--info"]:
        print(json.dumps(info()))
    else:
        serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:5])
