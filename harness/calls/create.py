"""Paid objects at a provider (uploaded files, fine-tuning jobs, batches) are created once.

A create that fails after the provider made the object (a 500 or a dropped connection once the
job exists) must not be sent again blindly: each blind retry is another paid job no record knows
of. So the SDK's own retries are off for creates (`max_retries=0`), and before every retry the
object is looked up by what harness attached to it (metadata, or a file's name and purpose) and
adopted when found. Reads (retrieve, list, events) keep the SDK's retries: they cost nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from harness.errors import ProviderError

T = TypeVar("T")
ATTEMPTS = 3
BACKOFF_S = 1.0


def retryable(e: BaseException) -> bool:
    """A create whose outcome is unknown: the object may exist (5xx, 429, timeout, connection)."""
    import openai

    if isinstance(e, openai.APIStatusError):
        return e.status_code == 429 or e.status_code >= 500
    return isinstance(e, openai.APIConnectionError)  # APITimeoutError included


def create_once(
    what: str,
    create: Callable[[], T],
    find: Callable[[], list[T]],
    *,
    describe: Callable[[BaseException], str],
    attempts: int = ATTEMPTS,
    backoff_s: float = BACKOFF_S,
) -> tuple[T, list[T]]:
    """`create()` at most `attempts` times, looking the object up with `find()` after every
    failure whose outcome is unknown. Returns (the object, every other one `find` turned up:
    duplicates an earlier blind retry paid for, to be recorded and counted by the caller).
    A definite refusal (4xx) or the last failure is a ProviderError with `describe(e)`."""
    for attempt in range(attempts):
        try:
            return create(), []
        except Exception as e:
            if not retryable(e):
                raise ProviderError(f"{what}: {describe(e)}") from None
            error = e
        found = find()
        if found:
            return found[0], found[1:]
        if attempt + 1 < attempts:
            time.sleep(backoff_s * (attempt + 1))
    raise ProviderError(
        f"{what}: {describe(error)} — tried {attempts} times and the provider has no such "
        "object (looked up by harness's metadata), so nothing was paid for it"
    )


def no_retries(client: Any) -> Any:
    """The same client with the SDK's retries off: for creates, never a blind second POST."""
    return client.with_options(max_retries=0)
