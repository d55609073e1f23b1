"""Engine: real litellm calls against the local OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import time

import pytest

from harness.calls.cache import Cache
from harness.calls.engine import (
    CallSpec,
    Engine,
    TokenBucket,
    classify,
    import_litellm,
    reason,
)
from harness.errors import SuiteError
from harness.suite import Pricing, RateLimit
from harness.suite.secrets import redact_text as redact


def spec(server, text="hello", **kw) -> CallSpec:
    base = dict(
        model="openai/fake-model",
        messages=[{"role": "user", "content": text}],
        api_base=server.url,
        timeout=5,
    )
    base.update(kw)
    return CallSpec(**base)


def run(coro):
    return asyncio.run(coro)


def test_answer_tokens_latency_and_pricing_override(openai_server, fake_key):
    server = openai_server("four words in reply", latency=0.05)
    pricing = Pricing(input_per_1m=2.0, output_per_1m=8.0)
    result = run(Engine().call(spec(server, "one two three", pricing=pricing)))
    assert result.error is None
    assert result.output == "four words in reply"
    # The server counts whitespace-separated words as tokens.
    assert (result.tokens_in, result.tokens_out) == (3, 4)
    assert result.cost_usd == pytest.approx((3 * 2.0 + 4 * 8.0) / 1e6)
    assert result.latency_ms >= 40  # the server's 50 ms, read at the kernel's tick (<= 10 ms)
    assert result.cached is False and result.attempts == 1


def test_unknown_price_is_null_with_a_note_never_zero(openai_server, fake_key):
    server = openai_server("ok")
    result = run(Engine().call(spec(server)))
    assert result.cost_usd is None
    assert "no price for openai/fake-model" in result.note and "pricing:" in result.note


def test_litellm_price_list_cost(openai_server, fake_key):
    server = openai_server("a b")
    result = run(Engine().call(spec(server, "x y z", model="openai/gpt-4o-mini")))
    litellm = import_litellm()
    p_in, p_out = litellm.cost_per_token(
        model="openai/gpt-4o-mini", prompt_tokens=3, completion_tokens=2
    )
    assert result.cost_usd == pytest.approx(p_in + p_out)


def test_bad_request_is_not_retried(openai_server, fake_key):
    server = openai_server("ok", statuses={"BROKEN": 400})
    result = run(Engine(backoff=0.001).call(spec(server, "BROKEN prompt")))
    assert server.requests == 1
    assert result.output is None
    assert result.error.startswith("bad_request: ")
    assert "\n" not in result.error


@pytest.mark.parametrize("status,kind", [(401, "auth"), (404, "not_found")])
def test_auth_and_not_found_are_not_retried(openai_server, fake_key, status, kind):
    server = openai_server("ok", statuses={"X": status})
    result = run(Engine(backoff=0.001).call(spec(server, "X")))
    assert server.requests == 1
    assert result.error.startswith(f"{kind}: ")


def test_transient_faults_are_retried_until_an_answer(openai_server, fake_key):
    server = openai_server(
        "fine", sequence=["500", "drop", "malformed", "429", "ok"], retry_after=0.01
    )
    result = run(Engine(backoff=0.001).call(spec(server)))
    assert result.output == "fine"
    assert result.attempts == 5
    assert server.requests == 5


def test_the_retry_hook_hears_each_retry_and_one_attempt_means_no_retry(openai_server, fake_key):
    # The first attempt runs outside tenacity (engine._call_with_retries): the retries after a
    # failed first attempt are still counted, announced and bounded by max_attempts.
    server = openai_server("fine", sequence=["500", "429", "ok"], retry_after=0.01)
    engine = Engine(backoff=0.001)
    heard = []
    engine.on_retry = heard.append
    call = spec(server)
    result = run(engine.call(call))
    assert (result.output, result.attempts, server.requests) == ("fine", 3, 3)
    assert heard == [call, call]

    server = openai_server("fine", sequence=["500", "ok"])
    engine = Engine(backoff=0.001, max_attempts=1)
    engine.on_retry = heard.append
    result = run(engine.call(spec(server)))
    assert (result.attempts, server.requests, len(heard)) == (1, 1, 2)
    assert result.error.startswith("server_error: ") and "attempts" not in result.error


def test_retry_after_is_honoured_and_retries_end_in_an_error_record(openai_server, fake_key):
    server = openai_server("ok", rate_429=1.0, retry_after=0.3)
    start = time.perf_counter()
    result = run(Engine(backoff=0.001, max_attempts=3).call(spec(server)))
    elapsed = time.perf_counter() - start
    assert server.requests == 3
    assert elapsed >= 0.6  # two waits of at least Retry-After, although the backoff is ~0
    assert result.error.startswith("rate_limit: ") and result.error.endswith("(after 3 attempts)")


def test_timeout_is_retried_then_recorded(openai_server, fake_key):
    server = openai_server("ok", rate_timeout=1.0, hang_seconds=3)
    result = run(Engine(backoff=0.001, max_attempts=2).call(spec(server, timeout=0.3)))
    assert server.requests == 2
    assert result.error.startswith("timeout: ")


def test_concurrency_bounds_requests_in_flight(openai_server, fake_key):
    server = openai_server("ok", latency=0.1)

    async def go():
        engine = Engine(concurrency=3)
        return await asyncio.gather(*(engine.call(spec(server, f"q{i}")) for i in range(12)))

    start = time.perf_counter()
    results = run(go())
    assert all(r.error is None for r in results)
    assert server.max_inflight == 3
    assert time.perf_counter() - start >= 0.4  # 12 calls / 3 at a time × 0.1 s


def test_rpm_limit_spreads_calls(openai_server, fake_key):
    server = openai_server("ok")

    async def go():
        engine = Engine(concurrency=16, rate_limits={"v": RateLimit(rpm=240)})
        return await asyncio.gather(
            *(engine.call(spec(server, f"q{i}", rate_limit_key="v")) for i in range(10))
        )

    start = time.perf_counter()
    run(go())
    # 240 rpm = 4/s with a burst of 4: the other 6 calls wait 0.25 s each.
    assert time.perf_counter() - start >= 1.4


def test_token_bucket_tpm_debt():
    async def go():
        bucket = TokenBucket(per_minute=600)  # 10 tokens/s, burst 10
        start = time.perf_counter()
        await bucket.acquire(25)  # larger than the burst: goes now, leaves a debt of 15
        await bucket.acquire(1)  # waits for the debt: ~1.6 s
        return time.perf_counter() - start

    assert run(go()) >= 1.5


def test_cache_hit_is_marked_and_keeps_latency(openai_server, fake_key, tmp_path):
    server = openai_server("cached answer", latency=0.1)
    cache = Cache(tmp_path / ".cache.sqlite")
    first = run(Engine(cache=cache).call(spec(server)))
    second = run(Engine(cache=cache).call(spec(server)))
    assert server.requests == 1
    assert second.cached is True and first.cached is False
    assert second.output == "cached answer"
    assert second.latency_ms == first.latency_ms >= 90  # the kernel's tick: see test_clock
    # Another repeat index is another sample: not a hit.
    run(Engine(cache=cache).call(spec(server, repeat=1)))
    assert server.requests == 2


def test_errors_are_not_cached(openai_server, fake_key, tmp_path):
    server = openai_server("ok", statuses={"BAD": 400})
    cache = Cache(tmp_path / ".cache.sqlite")
    run(Engine(cache=cache).call(spec(server, "BAD")))
    run(Engine(cache=cache).call(spec(server, "BAD")))
    assert server.requests == 2


def test_no_key_needed_for_api_base(openai_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = openai_server("ok")
    result = run(Engine().call(spec(server)))
    assert result.error is None


def test_concurrency_must_be_positive():
    with pytest.raises(SuiteError, match="--concurrency must be at least 1"):
        Engine(concurrency=0)


def test_classify_and_redact(monkeypatch):
    monkeypatch.setenv("SOME_API_KEY", "sk-supersecret-123")
    assert classify(asyncio.TimeoutError()) == ("timeout", True)
    assert classify(ValueError("x")) == ("other", False)
    assert redact("bad key sk-supersecret-123 and Bearer abc.def") == "bad key *** and Bearer ***"


@pytest.mark.parametrize("at", [180, 190, 195, 199])
def test_a_key_cut_by_the_reasons_length_limit_is_still_redacted(monkeypatch, at):
    # A 401 whose body echoes the key (a proxy, or the lean path's raw body for a provider
    # without the SDK): the one-line reason is cut at 200 characters, which must not leave the
    # key's first characters in the record.
    key = "sk-rotated-abcdef0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    text = reason(RuntimeError("x" * at + key + " was refused"), 1)
    assert key[:6] not in text
    assert len(text) <= 220
