"""litellm's import and configuration, and the credential questions asked before any call.

The engine, the local provider, the worker pool and the embedding helper all need litellm
configured the same way (no debug banners, no retries of its own), so that lives here, below them.
"""

from __future__ import annotations

import gc
from typing import Any

_litellm = None

# Python's collector after `import litellm`: a litellm call leaves ~120 container objects that
# only the collector frees (reference cycles), so the default first threshold (700) ran a young
# collection every ~6 calls, and a full one re-scanned litellm's ~420k module objects (~0.28 s
# here) every ~1,500 calls. Freezing what the import built (module state, never garbage) and a
# first threshold of 10,000 cut the collector's CPU from ~0.44 to ~0.30 ms per call in a run's
# worker (from ~0.45 to ~0.1 ms in a bare loop; benchmarks/README.md, "CPU per call"). What is
# left is freeing the garbage itself. It changes when unreachable cycles are freed, never what a
# call returns; reference counting frees everything else at once, as before.
GC_THRESHOLD = (10_000, 10, 10)


def import_litellm():
    """Import and configure litellm once (~3 s, so only when a call is about to happen)."""
    global _litellm
    if _litellm is None:
        import litellm

        litellm.suppress_debug_info = True  # no "Give Feedback" banners on every error
        litellm.num_retries = 0
        # Also before the worker pool's fork: the workers inherit the frozen heap and never touch
        # its pages, so more of it stays shared between them.
        gc.freeze()
        gc.set_threshold(*map(max, GC_THRESHOLD, gc.get_threshold()))
        _litellm = litellm
    return _litellm


def needs_local_provider(model: str) -> bool:
    return model.startswith("local/")


def missing_credentials(model: str, api_base: str | None) -> list[str]:
    """Environment variables the model needs and lacks (none for api_base or local/ models)."""
    if api_base or needs_local_provider(model):
        return []
    litellm = import_litellm()
    try:
        info = litellm.validate_environment(model=model)
    except Exception:  # an unknown provider: the call itself will say what is wrong
        return []
    return list(info.get("missing_keys") or [])


def provider_facts(pairs: list[tuple[str, str | None]]) -> list[tuple[bool, list[str]]]:
    """What the checks before the first call ask litellm, for each (model, api_base): does it
    name a provider litellm knows, and which environment variables does it lack. A run with
    worker processes has them answered there (WorkerPool.facts), where litellm is imported
    anyway, so the run's own process never pays the ~3 s import."""
    answers = []
    for model, api_base in pairs:
        if needs_local_provider(model):
            answers.append((True, []))
            continue
        litellm = import_litellm()
        try:
            litellm.get_llm_provider(model=model, api_base=api_base)
            known = True
        except Exception:
            known = False
        answers.append((known, missing_credentials(model, api_base)))
    return answers


def server_kwargs(model: str, api_base: str | None) -> dict[str, Any]:
    """litellm arguments for `api_base`: a self-hosted OpenAI-compatible server needs no key,
    but the SDK insists on one, so a placeholder goes in when the environment has none."""
    if not api_base:
        return {}
    kwargs: dict[str, Any] = {"api_base": api_base}
    if missing_credentials(model, None):
        kwargs["api_key"] = "no-key"
    return kwargs


def count_tokens(model: str, messages: list[dict]) -> int:
    """Tokens of `messages` in `model`'s tokenizer (litellm's counter; for cost estimates)."""
    return int(import_litellm().token_counter(model=model, messages=messages))
