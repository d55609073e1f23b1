"""Embedding calls: unit-length vectors of texts from any litellm embedding model.

Retrieval (embedding indexes) and scoring (embedding cosine) both embed; the call lives here,
with the provider machinery, so neither reaches into the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.calls._litellm import import_litellm, server_kwargs
from harness.calls.engine import classify, reason
from harness.errors import ProviderError

EMBED_BATCH = 64  # inputs per embedding request: well under every provider's limit


def embed_normalised(model: str, api_base: str | None, texts: Sequence[str], dtype):
    """Unit-length vectors (rows) of `texts` from any litellm embedding model, sent in batches of
    EMBED_BATCH (retried); a zero vector stays zero."""
    kwargs = server_kwargs(model, api_base)  # validate_environment is slow: once, not per batch
    rows: list[list[float]] = []
    for start in range(0, len(texts), EMBED_BATCH):
        rows.extend(_embed_batch(model, list(texts[start : start + EMBED_BATCH]), kwargs))
    vectors = np.asarray(rows, dtype=dtype)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def _embed_batch(model: str, batch: list[str], kwargs: dict[str, Any]) -> list[list[float]]:
    from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

    litellm = import_litellm()

    # Retries in one place (tenacity, on the engine's transient kinds); the SDK's are turned off.
    @retry(
        retry=retry_if_exception(lambda e: classify(e)[1]),
        stop=stop_after_attempt(4),
        wait=wait_exponential(multiplier=0.5, max=8),
        reraise=True,
    )
    def call():
        return litellm.embedding(model=model, input=batch, max_retries=0, timeout=60, **kwargs)

    try:
        response = call()
    except Exception as e:
        raise ProviderError(f"embedding model {model!r} failed: {reason(e, 1)}") from None
    items = sorted(response.data, key=lambda d: _field(d, "index") or 0)
    if len(items) != len(batch):
        raise ProviderError(
            f"embedding model {model!r} returned {len(items)} vectors for {len(batch)} inputs"
        )
    return [list(_field(d, "embedding")) for d in items]


def _field(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, dict) else getattr(item, name)
