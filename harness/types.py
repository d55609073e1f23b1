"""Value types that cross layers: what a call is (`CallSpec`) and what it returned (`CallResult`).

They sit at the bottom so the cache, the worker pool, the engine and the run plan share them
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CallSpec:
    model: str
    messages: list[dict]
    params: dict[str, Any] = field(default_factory=dict)
    api_base: str | None = None
    response_format: dict | None = None
    timeout: float = 60.0
    repeat: int = 0
    pricing: Any = (
        None  # suite.Pricing or {"input_per_1m", "output_per_1m"}; overrides litellm's list
    )
    rate_limit_key: str | None = None  # calls sharing a key share its rpm/tpm budget (the variant)


@dataclass
class CallResult:
    output: str | None
    latency_ms: float | None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    cached: bool = False
    error: str | None = None
    attempts: int = 0
    note: str | None = None  # e.g. why cost is null; reported once per variant, not per record
    price_factor: float = 1.0  # of the list price: 0.5 for OpenAI Batch API answers
    latency_clock: str | None = None  # "tcp" (the kernel's: harness.calls.clock) or "stopwatch"
    truncated: bool = False  # finish_reason "length": the answer was cut at max_tokens
