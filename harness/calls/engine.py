"""Model calls through litellm: cache, concurrency, rate limits, timeouts and retries in one place.

`Engine.call(CallSpec) -> CallResult` never raises for a provider problem: after retries a call
becomes a result with `error` set to a one-line reason ("rate_limit: ...", "timeout: ..."), so the
runner records it and counts it instead of dropping it. Retries happen here only (tenacity):
litellm's own retries and the OpenAI SDK's are switched off so the layers never multiply.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import json
import math
import os
import random
import re
import time
from dataclasses import dataclass
from typing import Any

from harness._util.text import strip_controls
from harness.calls import clock, local_server, transport
from harness.calls._litellm import (
    import_litellm,
    needs_local_provider,
    provider_facts,
    server_kwargs,
)
from harness.calls.cache import cache_key
from harness.calls.local_model import call_slot, ensure_registered
from harness.calls.local_processes import resolve, take_crash
from harness.errors import LocalModelCrashed, SuiteError
from harness.suite.secrets import expand_env, missing_env, redact_text
from harness.types import CallResult, CallSpec

RETRYABLE_KINDS = frozenset({"rate_limit", "server_error", "timeout", "connection"})
# Kinds a second attempt rarely changes (a deterministic bad reply): retried once at most.
RETRY_ONCE_KINDS = frozenset({"malformed_reply"})
_UNREADABLE_200 = re.compile(
    r"Invalid response object|Expecting (value|property name|',' delimiter|':' delimiter)|"
    r"Unterminated string|Extra data: line|Invalid control character|"
    r"provider returned '\w+' that is not"
)
DEFAULT_MAX_ATTEMPTS = 8


def check_credentials(variants, facts=provider_facts) -> None:
    """Stop before the first call when a selected variant lacks its API key or, for local/
    models, the `local` extra (exit 2). `facts` answers litellm's part (`provider_facts`; a
    worker pool's `facts` asks a worker that has litellm loaded)."""
    for model in sorted({v.model for v in variants if needs_local_provider(v.model)}):
        resolve(model)  # the extra is installed and, for a trained model, its files are there
    answers = facts([(v.model, v.api_base) for v in variants]) if variants else []
    check_calls_can_be_made(variants, [known for known, _ in answers])
    missing = {v.name: keys for v, (_, keys) in zip(variants, answers, strict=True)}
    ready = [name for name, keys in missing.items() if not keys]
    by_keys: dict[tuple[str, ...], list[str]] = {}
    for name, keys in missing.items():
        if keys:
            by_keys.setdefault(tuple(keys), []).append(name)
    problems = []
    for keys, names in by_keys.items():
        who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        verb = "needs" if len(names) == 1 else "need"
        hint = f", or run with --variant {ready[0]}" if ready else ""
        problems.append(f"{who} {verb} {' and '.join(keys)} — set it{hint}")
    if problems:
        raise SuiteError("; ".join(problems))


def check_calls_can_be_made(variants, known: list[bool]) -> None:
    """What only litellm can tell, asked before the first call (exit 2 instead of a failed
    call per example): each model names a provider (`known`, from `provider_facts`), each
    `${env:NAME}` is set."""
    problems = []
    for v, provider_known in zip(variants, known, strict=True):
        missing = missing_env([getattr(v, "params", None), v.api_base])
        if missing:
            problems.append(
                f"{v.name}: ${{env:{missing[0]}}} is not set — export {missing[0]} before the run"
            )
        if not provider_known:
            name = v.model.split("/")[-1]
            problems.append(
                f"{v.name}: model {v.model!r} names no provider litellm knows — write "
                f"provider/model, e.g. openai/{name} (also for an OpenAI-compatible api_base)"
            )
    if problems:
        raise SuiteError("; ".join(problems))


# ---------------------------------------------------------------- errors


class MalformedReply(Exception):
    """A 200 reply without an answer in it (`choices: []`, `content: null`): an error record,
    never an empty answer scored and cached. Not retried: the same request tends to get it again
    (a content filter, a tool call), and `--resume` retries error records."""


def classify(exc: BaseException) -> tuple[str, bool]:
    """(reason kind, retryable) for an exception raised by a call."""
    if isinstance(exc, MalformedReply):
        return "malformed_reply", False
    if _UNREADABLE_200.search(str(exc)):
        # litellm reports a 200 whose body is not a chat completion as a 500: the same request
        # tends to get the same body, so one retry (RETRY_ONCE_KINDS), never eight paid ones.
        return "malformed_reply", True
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timeout", True
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    if "ContextWindowExceeded" in name:
        return "context_length", False
    if name in ("Timeout", "APITimeoutError"):
        return "timeout", True
    if name in ("APIConnectionError", "ConnectError", "ClientConnectionError"):
        return "connection", True
    if status == 429 or name == "RateLimitError":
        return "rate_limit", True
    if status == 401 or name == "AuthenticationError":
        return "auth", False
    if status == 403 or name == "PermissionDeniedError":
        return "permission", False
    if status == 404 or name == "NotFoundError":
        return "not_found", False
    if status in (400, 422) or name in ("BadRequestError", "UnprocessableEntityError"):
        return "bad_request", False
    if status == 408:
        return "timeout", True
    if isinstance(status, int) and status >= 500:
        return "server_error", True
    if name in ("InternalServerError", "ServiceUnavailableError", "BadGatewayError"):
        return "server_error", True
    return "other", False


def once_is_enough():
    """A tenacity stop for one call: after the second RETRY_ONCE_KINDS failure, whatever other
    transient faults came between."""
    seen = [0]

    def stop(retry_state) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if exc is not None and classify(exc)[0] in RETRY_ONCE_KINDS:
            seen[0] += 1
        return seen[0] >= 2

    return stop


def reason(exc: BaseException, attempts: int) -> str:
    kind, _ = classify(exc)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # Redacted before it is cut: a key cut in two by the limit would be matched by nothing.
    message = redact_text(re.sub(r"^litellm\.\w+:\s*", "", message))[:200]
    tail = f" (after {attempts} attempts)" if attempts > 1 else ""
    return strip_controls(redact_text(f"{kind}: {message}{tail}"))


def retry_after_seconds(exc: BaseException) -> float | None:
    """The provider's Retry-After (seconds or HTTP date; retry-after-ms too), if it sent one."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or getattr(
        exc, "headers", None
    )
    if not headers:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return float(ms) / 1000
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------- rate limits


class TokenBucket:
    """Async token bucket: `per_minute` units a minute, refilled continuously.

    The burst is one second's worth (at least one unit), so calls are spread evenly rather than
    sent in a burst a provider's sliding window would reject. A request larger than the burst
    still goes once the bucket is full, leaving a debt that later requests wait off.
    """

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.lock = asyncio.Lock()

    async def acquire(self, amount: float = 1.0) -> None:
        need = min(amount, self.capacity)
        async with self.lock:  # FIFO: waiters are served in order
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= need:
                    self.tokens -= amount
                    return
                await asyncio.sleep((need - self.tokens) / self.rate)


def estimate_tokens(spec: CallSpec) -> int:
    """Cheap upper-ish estimate for tpm budgeting (~4 characters a token, plus the answer budget)."""
    chars = sum(len(str(m.get("content") or "")) for m in spec.messages)
    return chars // 4 + int(spec.params.get("max_tokens") or 256)


# ---------------------------------------------------------------- pricing


def _pricing_pair(pricing: Any) -> tuple[float, float] | None:
    if pricing is None:
        return None
    if isinstance(pricing, dict):
        return float(pricing["input_per_1m"]), float(pricing["output_per_1m"])
    return float(pricing.input_per_1m), float(pricing.output_per_1m)


_PRICES: dict[str, tuple[float, float] | None] = {}


def litellm_prices(model: str) -> tuple[float, float] | None:
    """Per-token (input, output) USD prices from litellm's bundled list; None when unknown."""
    if model not in _PRICES:
        litellm = import_litellm()
        try:
            info = litellm.get_model_info(model)
            pair = (info.get("input_cost_per_token"), info.get("output_cost_per_token"))
            _PRICES[model] = None if None in pair else (float(pair[0]), float(pair[1]))
        except Exception:
            _PRICES[model] = None
    return _PRICES[model]


def price_tokens(pricing: Any, tokens_in: int | None, tokens_out: int | None) -> float | None:
    """USD of one call at a suite's `pricing:` (per 1M tokens); None without pricing or usage.
    The summary prices records with it too, so a price added later re-prices cached answers."""
    pair = _pricing_pair(pricing)
    if pair is None or tokens_in is None or tokens_out is None:
        return None
    return (tokens_in * pair[0] + tokens_out * pair[1]) / 1e6


# No single call or job trains or reads this many tokens: a count above it is a provider bug.
MAX_PLAUSIBLE_TOKENS = 10**12
IMPLAUSIBLE_USAGE = "the provider reported implausible token usage (negative, non-integer or huge)"


def plausible_count(value: Any, limit: int = MAX_PLAUSIBLE_TOKENS) -> int | None:
    """A token count from a provider as an int, or None (unknown) when it is not a finite,
    non-negative, plausible integer: `trained_tokens: -1e9` must not become a refund."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0 or value > limit or value != int(value):
        return None
    return int(value)


def usage_tokens(usage: Any) -> tuple[int | None, int | None, str | None]:
    """(tokens in, tokens out, note) from a reply's usage (object or dict): unknown unless
    both counts are plausible, and a prompt of 0 tokens (what litellm fills in for a usage the
    provider left out) is unknown too, so the call is unpriced rather than free."""
    get = usage.get if isinstance(usage, dict) else lambda k: getattr(usage, k, None)
    raw_in, raw_out = (get("prompt_tokens"), get("completion_tokens")) if usage else (None, None)
    tokens_in, tokens_out = plausible_count(raw_in), plausible_count(raw_out)
    if raw_in is not None and raw_out is not None and (tokens_in is None or tokens_out is None):
        return None, None, IMPLAUSIBLE_USAGE
    if not tokens_in or tokens_out is None:
        return None, None, None
    return tokens_in, tokens_out, None


def call_cost(
    spec: CallSpec, tokens_in: int | None, tokens_out: int | None
) -> tuple[float | None, str | None]:
    """(cost in USD, note). Unknown price → (None, why): never a silent 0 for a paid model,
    never a negative or infinite amount."""
    if tokens_in is None or tokens_out is None:
        return None, "the provider reported no token usage"
    if spec.pricing is not None:
        cost = price_tokens(spec.pricing, tokens_in, tokens_out)
    else:
        prices = litellm_prices(spec.model)
        if prices is None:
            return (
                None,
                f"no price for {spec.model} in litellm's price list — set `pricing:` on the "
                "variant",
            )
        cost = tokens_in * prices[0] + tokens_out * prices[1]
    if cost is not None and not (math.isfinite(cost) and cost >= 0):
        return None, f"the computed cost ({cost}) is not a finite, non-negative amount"
    return cost, None


# ---------------------------------------------------------------- the engine


# The call a task is making, for the retry hook (tenacity's callbacks don't get it).
_CALLING: contextvars.ContextVar = contextvars.ContextVar("harness_calling")


@dataclass
class EngineStats:
    requests: int = 0  # attempts sent to providers (retries included)


class _Gate:
    """Calls in flight (litellm's and the lean path's) and routes being built, across this
    process's engines."""

    calls = 0
    building = 0


_GATE = _Gate()


def lean_enabled() -> bool:
    """The lean transport is on unless `HARNESS_TRANSPORT=litellm` (every call through litellm,
    as before it: for a comparison, or a provider the lean path gets wrong)."""
    return os.environ.get("HARNESS_TRANSPORT", "auto").strip().lower() != "litellm"


class Engine:
    """Reusable call engine (the runner and the judge share it).

    concurrency bounds in-flight requests across everything this engine sends; rate_limits maps a
    rate_limit_key to suite.RateLimit (rpm/tpm); cache is a harness.calls.cache.Cache or None.
    """

    def __init__(
        self,
        *,
        concurrency: int = 8,
        cache=None,
        rate_limits: dict[str, Any] | None = None,
        max_attempts: int | None = None,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        lean: bool | None = None,
    ):
        if concurrency < 1:
            raise SuiteError(f"--concurrency must be at least 1 (got {concurrency})")
        self.concurrency = concurrency
        self.semaphore = asyncio.Semaphore(concurrency)
        self.cache = cache
        self.max_attempts = max_attempts or DEFAULT_MAX_ATTEMPTS
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stats = EngineStats()
        self.on_retry = None  # on_retry(spec) before each retry: progress shows retries live
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        for key, limit in (rate_limits or {}).items():
            if limit is None:
                continue
            if getattr(limit, "rpm", None):
                self._buckets[(key, "rpm")] = TokenBucket(limit.rpm)
            if getattr(limit, "tpm", None):
                self._buckets[(key, "tpm")] = TokenBucket(limit.tpm)
        self._server_kwargs: dict[tuple[str, str], dict[str, Any]] = {}
        self._crash: LocalModelCrashed | None = None
        # The path each variant's calls take (harness.calls.transport), resolved once per variant.
        self.lean = lean_enabled() if lean is None else lean
        self._routes: dict[tuple, transport.Route | transport.Fallback] = {}
        self._last: tuple | None = None  # the last spec's variant and route: most calls repeat it
        self._resolving = asyncio.Lock()
        self.paths: dict[str, dict[str, Any]] = {}  # variant -> {"path", "lean", "litellm"}

    # -------------------------------------------------------- public

    async def call(self, spec: CallSpec) -> CallResult:
        key = None
        if self.cache is not None:
            key = cache_key(spec)
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        result = await self._call_with_retries(spec)
        if result.error is None and self.cache is not None:
            self.cache.put(key, result, spec.model)
        return result

    async def call_each(self, items, on_result) -> None:
        """`call(spec)` for each `(tag, spec)` of `items`, `on_result(tag, result)` as each ends.

        `concurrency` runners share one iterator, so at most that many coroutines exist however
        many calls there are (100k calls were 100k tasks: memory per call, and a scheduler that
        woke each one through the semaphore). A call waiting out a retry keeps its runner, so a
        provider that said "slow down" is not handed the next request in its place.
        """
        if self.lean:
            items = list(items)
            # Every variant's route before the first call: nothing is in flight while litellm
            # builds a request to catch (see `_route`).
            for _, spec in items:
                served = local_server.endpoint_for(spec.model)
                if served is not None:
                    await self._route(served.spec(spec))
                elif not needs_local_provider(spec.model):
                    await self._route(spec)
        todo = iter(items)

        async def runner() -> None:
            for tag, spec in todo:
                on_result(tag, await self.call(spec))

        await asyncio.gather(*(runner() for _ in range(self.concurrency)))

    # -------------------------------------------------------- internals

    def _wait(self, retry_state) -> float:
        exc = retry_state.outcome.exception()
        n = retry_state.attempt_number
        # Full jitter: uniform(0, backoff * 2^n), capped; never earlier than the provider asked.
        wait = random.uniform(0, min(self.max_backoff, self.backoff * 2 ** (n - 1)))
        after = retry_after_seconds(exc) if exc is not None else None
        if after is not None:
            wait = max(wait, min(after, self.max_backoff * 4))
        return wait

    def _announce_retry(self, retry_state) -> None:
        if self.on_retry is not None:
            self.on_retry(_CALLING.get(None))

    async def _call_with_retries(self, spec: CallSpec) -> CallResult:
        # Most calls succeed at once: the first attempt runs outside tenacity, whose per-call
        # set-up (retrying object, action chain, async wrappers: ~300 Python calls) was ~4% of a
        # call's CPU (benchmarks/README.md, scale.py). A failure enters the same retry policy.
        try:
            result = await self._attempt(spec)
        except LocalModelCrashed:
            raise  # not a failed call: the model is gone, and the run must stop
        except Exception as exc:
            return await self._retry(spec, exc)
        result.attempts = 1
        return result

    async def _retry(self, spec: CallSpec, first: Exception) -> CallResult:
        """Attempts 2.. after `first` failed: tenacity sees `first` as its attempt 1, so the
        retry rule, the backoff and the attempt count are those of one retry loop."""
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        _CALLING.set(spec)  # per task: `_announce_retry` names the call it retries
        attempts = 0
        failed: Exception | None = first
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(lambda e: classify(e)[1]),
                stop=stop_after_attempt(self.max_attempts) | once_is_enough(),
                wait=self._wait,
                # Not in `_wait`: tenacity asks for the wait before it checks the stop, so the
                # last failed attempt was announced as a retry that never came.
                before_sleep=self._announce_retry,
                reraise=True,
            ):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    if failed is not None:
                        exc, failed = failed, None
                        raise exc
                    result = await self._attempt(spec)
        except LocalModelCrashed:
            raise
        except Exception as exc:
            return CallResult(
                output=None, latency_ms=None, error=reason(exc, attempts), attempts=attempts
            )
        result.attempts = attempts
        return result

    async def _attempt(self, spec: CallSpec) -> CallResult:
        served = local_server.endpoint_for(spec.model)
        if served is not None:  # a trained model whose server harness started
            async with served.slot():
                try:
                    return served.finish(await self._attempt(served.spec(spec)))
                except Exception:
                    crash = served.crashed()
                    if crash is None:
                        raise
                    self._crash = crash
                    raise crash from None
        await self._throttle(spec)
        local = needs_local_provider(spec.model)
        if self.lean and not local:
            route = await self._route(spec)
            if isinstance(route, transport.Route):
                body = route.body(spec.messages)
                if body is not None:
                    self._count(spec, "lean", route)
                    return await self._send_lean(spec, route, body)
            self._count(spec, "litellm", route)
        elif not local:
            self._count(spec, "litellm", transport.Fallback("HARNESS_TRANSPORT=litellm"))
        litellm = import_litellm()
        gate = self.semaphore
        if local:
            ensure_registered(spec.model)
            # The local model answers one call at a time: queueing behind the global semaphore
            # would count waiting time as model latency.
            gate = call_slot()
        kwargs = self._litellm_kwargs(spec)
        async with gate:
            if self._crash is not None:
                # Calls queued behind the one that crashed stop here, before litellm starts
                # work that the run's teardown would leave half done.
                raise self._crash
            if not local:
                kwargs["shared_session"] = await clock.shared_session()
            async with self._sending() as elapsed:
                try:
                    response = await asyncio.wait_for(
                        litellm.acompletion(
                            model=spec.model,
                            messages=spec.messages,
                            timeout=spec.timeout,
                            num_retries=0,  # retries live in _call_with_retries only
                            max_retries=0,  # and not in the OpenAI SDK either
                            **kwargs,
                        ),
                        # A safety net over the client's own timeout (connect + read), never shorter.
                        timeout=spec.timeout + 5,
                    )
                except Exception:
                    if local:
                        crash = take_crash()
                        if crash is not None:
                            self._crash = crash
                            raise crash from None
                    raise
                # The provider's time, not the client's (harness.calls.clock).
                latency = elapsed()
        return self._result(spec, response, latency)

    @contextlib.asynccontextmanager
    async def _sending(self):
        """One request in flight, on either path: it waits while a route is built (this loop
        opens no connection then: transport.build_route, and a build waits for the requests in
        flight), is counted, and yields the reader of its latency (the provider's time, not the
        client's: harness.calls.clock)."""
        while _GATE.building:
            await asyncio.sleep(0.005)
        self.stats.requests += 1
        timer = clock.start()
        start = time.perf_counter()
        _GATE.calls += 1
        try:
            yield lambda: timer.read((time.perf_counter() - start) * 1000)
        finally:
            _GATE.calls -= 1

    def _litellm_kwargs(self, spec: CallSpec) -> dict[str, Any]:
        """litellm's arguments for `spec` beyond model, messages, timeout and retries."""
        # `${env:NAME}` references become values only here, in the request itself.
        kwargs = expand_env(spec.params)
        if spec.response_format is not None:
            kwargs["response_format"] = spec.response_format
        if spec.api_base:
            key = (spec.model, spec.api_base)
            if key not in self._server_kwargs:  # once per model: validate_environment is slow
                self._server_kwargs[key] = server_kwargs(spec.model, expand_env(spec.api_base))
            kwargs.update(self._server_kwargs[key])
        return kwargs

    # -------------------------------------------------------- the lean transport

    async def _route(self, spec: CallSpec) -> transport.Route | transport.Fallback:
        """The variant's path, built by litellm on its first call (harness.calls.transport)."""
        last = self._last
        if (
            last is not None
            and last[0] is spec.response_format
            and last[1] == spec.model
            and last[2] == spec.api_base
            and last[3] == spec.timeout
            and last[4] == spec.params
        ):
            return last[5]
        key = (
            spec.model,
            spec.api_base,
            spec.timeout,
            json.dumps([spec.params, spec.response_format], sort_keys=True, default=str),
        )
        route = self._routes.get(key)
        if route is None:
            async with self._resolving:
                route = self._routes.get(key)
                if route is None:
                    route = await self._build_route(spec)
                    self._routes[key] = route
        self._last = (
            spec.response_format,
            spec.model,
            spec.api_base,
            spec.timeout,
            spec.params,
            route,
        )
        return route

    async def _build_route(self, spec: CallSpec) -> transport.Route | transport.Fallback:
        litellm = import_litellm()
        api_base = expand_env(spec.api_base) if spec.api_base else None
        try:
            model, provider, _, _ = litellm.get_llm_provider(model=spec.model, api_base=api_base)
        except Exception:
            return transport.Fallback("litellm names no provider for the model")
        why = transport.why_not(provider, spec.params, spec.response_format)
        if why is not None:
            return transport.Fallback(why)
        kwargs = self._litellm_kwargs(spec)
        kwargs.update(model=spec.model, timeout=spec.timeout, num_retries=0, max_retries=0)
        # litellm builds the request to catch with a client cache of its own: no litellm call of
        # any engine in this process may be under way meanwhile, or it could put a real client
        # (on the shared session's open connections) where the catch takes it
        # (transport.build_route).
        while _GATE.building:  # one at a time: each swaps litellm's client cache
            await asyncio.sleep(0.005)
        _GATE.building += 1
        try:
            while _GATE.calls:
                await asyncio.sleep(0.005)
            return await transport.build_route(litellm, provider, model, spec.messages, kwargs)
        finally:
            _GATE.building -= 1

    def _count(self, spec: CallSpec, path: str, route) -> None:
        """Requests per variant and path, for `--timings`."""
        name = spec.rate_limit_key or spec.model
        entry = self.paths.get(name)
        if entry is None:
            entry = self.paths[name] = {"path": transport.label(route), "lean": 0, "litellm": 0}
        entry[path] += 1

    async def _send_lean(self, spec: CallSpec, route: transport.Route, body: bytes) -> CallResult:
        async with self.semaphore, self._sending() as elapsed:
            reply = await transport.send(route, body)
            latency = elapsed()
        output, finish, tokens_in, tokens_out = transport.parse_reply(route, reply)
        if output is None:
            if finish is ...:
                raise MalformedReply("the provider's reply has no choices (`choices: []`)")
            raise MalformedReply(f"the provider's reply has no content (finish_reason: {finish})")
        return self._finish(spec, output, tokens_in, tokens_out, latency, finish)

    async def _throttle(self, spec: CallSpec) -> None:
        if spec.rate_limit_key is None or not self._buckets:
            return
        rpm = self._buckets.get((spec.rate_limit_key, "rpm"))
        if rpm is not None:
            await rpm.acquire(1)
        tpm = self._buckets.get((spec.rate_limit_key, "tpm"))
        if tpm is not None:
            await tpm.acquire(estimate_tokens(spec))

    def _result(self, spec: CallSpec, response, latency: tuple[float, str]) -> CallResult:
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise MalformedReply("the provider's reply has no choices (`choices: []`)")
        output = getattr(getattr(choices[0], "message", None), "content", None)
        if output is None:
            finish = getattr(choices[0], "finish_reason", None)
            raise MalformedReply(f"the provider's reply has no content (finish_reason: {finish})")
        usage = getattr(response, "usage", None)
        get = usage.get if isinstance(usage, dict) else lambda k: getattr(usage, k, None)
        raw = (get("prompt_tokens"), get("completion_tokens")) if usage else (None, None)
        return self._finish(spec, output, *raw, latency, getattr(choices[0], "finish_reason", None))

    def _finish(
        self, spec: CallSpec, output: str, raw_in, raw_out, latency, finish: Any
    ) -> CallResult:
        tokens_in, tokens_out, bad = usage_tokens(
            None
            if raw_in is None and raw_out is None
            else {"prompt_tokens": raw_in, "completion_tokens": raw_out}
        )
        cost, note = call_cost(spec, tokens_in, tokens_out)
        note = bad or note
        return CallResult(
            output=output,
            latency_ms=round(latency[0], 3),
            latency_clock=latency[1],
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost,
            note=note,
            truncated=finish == "length",
        )
