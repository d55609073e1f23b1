"""The lean transport sends what litellm sends, and records what litellm's path records.

Each case sends the same call through litellm (`Engine(lean=False)`, the path before the lean
transport) and through the lean path (`Engine(lean=True)`) to the test server, which keeps every
request as it arrived. The contract: the same requests (path with query, body bytes, headers —
names compared case-insensitively, as HTTP defines them, and in any order), and the same record
(output, tokens, cost, note, error, attempts; latency is the server's and varies).
"""

from __future__ import annotations

import asyncio

import pytest

from harness.calls.engine import Engine
from harness.calls.transport import LEAN_PROVIDERS
from harness.types import CallSpec

# Every provider prefix litellm routes to an OpenAI-compatible chat endpoint that the lean path
# takes (transport.LEAN_PROVIDERS).
PROVIDERS = sorted(LEAN_PROVIDERS)

SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "intent",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"intent": {"type": "string", "enum": ["card_arrival", "other"]}},
            "required": ["intent"],
            "additionalProperties": False,
        },
    },
}

# Every param the suite schema types (harness.suite.variants._NUMBER_PARAMS, _INTEGER_PARAMS) and
# the usual others, with a header of the suite's own.
EVERY_PARAM = {
    "temperature": 0.2,
    "top_p": 0.9,
    "presence_penalty": 0.1,
    "frequency_penalty": 0.1,
    "max_tokens": 32,
    "seed": 7,
    "n": 1,
    "stop": ["\n\n"],
    "logit_bias": {"50256": -100},
    "user": "harness-eval",
    "extra_headers": {"X-Team": "evals"},
}

FEW_SHOT = [
    {"role": "system", "content": 'Answer with JSON: {"intent": ...}. Ünïcödé — “quotes” \\ \n'},
    {"role": "user", "content": "Where is my card?"},
    {"role": "assistant", "content": '{"intent": "card_arrival"}'},
    {"role": "user", "content": "When will the card I ordered arrive? 🙂"},
]

CASES = {
    "plain": dict(params={"temperature": 0, "max_tokens": 16}),
    "every param": dict(params=EVERY_PARAM),
    "json schema": dict(params={"temperature": 0}, response_format=SCHEMA),
    "json object": dict(params={"max_tokens": 16}, response_format={"type": "json_object"}),
    "few-shot roles": dict(params={"temperature": 0}, messages=FEW_SHOT),
    # o-series: litellm maps max_tokens to max_completion_tokens and keeps temperature 1 only.
    "o-series": dict(model="o3-mini", params={"max_tokens": 16, "reasoning_effort": "low"}),
}


# Providers whose litellm config has no `reasoning_effort` for the placeholder model.
REFUSES_REASONING_EFFORT = {"custom_openai", "groq", "llamafile", "lm_studio", "together_ai"}


def _base(server, provider: str) -> str:
    # Azure's endpoint is {api_base}/openai/deployments/{model}/chat/completions?api-version=
    return server.url.rsplit("/v1", 1)[0] if provider == "azure" else server.url


def _spec(server, provider: str, case: dict, text: str = "Question: where is my card?"):
    params = {"api_key": "sk-equivalence-0123", **case.get("params", {})}
    if provider == "azure":
        params["api_version"] = "2024-10-21"
    return CallSpec(
        model=f"{provider}/{case.get('model', 'fake-model')}",
        messages=case.get("messages") or [{"role": "user", "content": text}],
        params=params,
        api_base=_base(server, provider),
        response_format=case.get("response_format"),
        timeout=5,
        rate_limit_key="v",
    )


def _record(result) -> dict:
    return {
        k: getattr(result, k)
        for k in ("output", "tokens_in", "tokens_out", "cost_usd", "note", "error", "attempts")
    }


def _requests(server) -> list[dict]:
    return [
        {
            "path": r["path"],
            "body": r["body"],
            "headers": sorted((k.decode().lower(), v.decode()) for k, v in r["headers"]),
        }
        for r in server.raw_requests
    ]


def _both(server, spec: CallSpec, faults=(), **engine) -> tuple[dict, dict, dict]:
    """(litellm's record and requests, the lean path's, the lean engine's paths); `faults`: the
    server's first replies, the same for each."""
    out = []
    paths = {}
    for lean in (False, True):
        server.reset_counts()
        server.sequence = list(faults)
        e = Engine(lean=lean, backoff=0.001, **engine)
        result = asyncio.run(e.call(spec))
        out.append({"record": _record(result), "requests": _requests(server)})
        paths = e.paths
    return out[0], out[1], paths


@pytest.fixture
def server(openai_server):
    # Groq's litellm config reads `service_tier` from every reply, as Groq sends it.
    return openai_server(
        '{"intent": "card_arrival"}',
        bodies={"": {"service_tier": "on_demand"}},
        statuses={"FORCE400": 400, "FORCE401": 401, "FORCE404": 404, "FORCE429": 429},
    )


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_same_request_and_record_through_litellm_and_the_lean_path(server, provider, case):
    spec = _spec(server, provider, CASES[case])
    theirs, ours, paths = _both(server, spec)
    assert ours == theirs
    if case == "o-series" and provider in REFUSES_REASONING_EFFORT:
        # litellm refuses the call before any request (UnsupportedParamsError): so does the lean
        # path, which then leaves the variant to litellm.
        assert theirs["requests"] == []
        assert theirs["record"]["error"].startswith(
            f"bad_request: {provider} does not support parameters: ['reasoning_effort']"
        )
        assert paths["v"]["path"] == "litellm (litellm builds no single HTTP request for it)"
        return
    assert len(theirs["requests"]) == 1
    assert theirs["record"]["error"] is None
    # Every case is sent by the lean path (a fallback would make the equality trivial).
    assert paths["v"] == {"path": f"lean ({provider})", "lean": 1, "litellm": 0}


@pytest.mark.parametrize("status", ["FORCE400", "FORCE401", "FORCE404", "FORCE429"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_error_replies_make_the_same_error_records(server, provider, status):
    spec = _spec(server, provider, CASES["plain"], text=f"{status} please")
    theirs, ours, paths = _both(server, spec, max_attempts=2)
    assert ours == theirs
    assert theirs["record"]["error"] is not None
    assert paths["v"]["lean"] == len(ours["requests"]) >= 1


@pytest.mark.parametrize(
    "fault,kind",
    [("malformed", "malformed_reply"), ("drop", "server_error"), ("timeout", "timeout")],
)
def test_broken_replies_are_retried_as_litellm_retries_them(openai_server, fault, kind):
    server = openai_server("ok", hang_seconds=3)
    spec = _spec(server, "openai", CASES["plain"])
    spec = CallSpec(**{**spec.__dict__, "timeout": 1})
    theirs, ours, _ = _both(server, spec, faults=[fault, fault], max_attempts=2)
    assert ours["requests"] == theirs["requests"]
    assert theirs["record"]["error"].startswith(f"{kind}: ")
    if fault == "timeout":  # litellm's words say how long the attempt took
        assert ours["record"]["error"].startswith(f"{kind}: APITimeoutError - Request timed out.")
    else:
        assert ours == theirs


def test_what_the_lean_path_does_not_cover_goes_through_litellm(server):
    # A param litellm passes on as is, a provider that is not OpenAI-compatible, content parts.
    spec = _spec(server, "openai", {"params": {"top_k": 1, "max_tokens": 4}})
    e = Engine()
    asyncio.run(e.call(spec))
    assert e.paths["v"]["path"] == "litellm (params.top_k is passed to litellm as is)"
    parts = _spec(server, "openai", CASES["plain"])
    parts = CallSpec(
        **{
            **parts.__dict__,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        }
    )
    e = Engine()
    result = asyncio.run(e.call(parts))
    assert result.error is None
    assert e.paths["v"] == {
        "path": "litellm (messages carry content parts)",
        "lean": 0,
        "litellm": 1,
    }


OK_CHOICE = {"index": 0, "finish_reason": "stop"}
ODD_REPLIES = {
    # A content that is not text: litellm refuses the reply (server_error), never an answer.
    "CONTENTINT": {"choices": [{**OK_CHOICE, "message": {"role": "assistant", "content": 5}}]},
    "CONTENTLIST": {
        "choices": [{**OK_CHOICE, "message": {"role": "assistant", "content": [{"type": "text"}]}}]
    },
    "MSGSTR": {"choices": [{**OK_CHOICE, "message": "hello"}]},
    "CHOICESDICT": {"choices": {"a": 1}},
    "USAGELIST": {"usage": [1, 2]},
    # Token counts as strings: litellm reads them as numbers.
    "TOKENSTR": {"usage": {"prompt_tokens": "5", "completion_tokens": "1"}},
}


@pytest.mark.parametrize("marker", sorted(ODD_REPLIES))
def test_odd_200_replies_make_the_records_litellm_makes(openai_server, marker):
    server = openai_server("ok", bodies=ODD_REPLIES)
    spec = _spec(server, "openai", CASES["plain"], text=f"{marker} please")
    theirs, ours, paths = _both(server, spec, max_attempts=2)
    assert paths["v"]["path"] == "lean (openai)"
    mine, their = ours["record"], theirs["record"]
    assert mine["output"] == their["output"]
    assert (mine["tokens_in"], mine["tokens_out"]) == (their["tokens_in"], their["tokens_out"])
    assert mine["attempts"] == their["attempts"]
    assert (mine["error"] or "").split(":")[0] == (their["error"] or "").split(":")[0], (
        mine,
        their,
    )
    assert isinstance(mine["output"], str | None)


def test_an_api_base_with_credentials_in_it_stays_on_litellm(server):
    # aiohttp refuses a URL's userinfo beside the Authorization header: the record must be the
    # one litellm's path makes, and the variant's path must say why it took it.
    spec = _spec(server, "openai", CASES["plain"])
    spec = CallSpec(**{**spec.__dict__, "api_base": server.url.replace("://", "://bob:pw1234@")})
    theirs, ours, paths = _both(server, spec, max_attempts=2)
    assert ours == theirs
    assert paths["v"]["path"] == "litellm (api_base carries credentials in its URL)"
    assert "pw1234" not in str(ours)


def test_a_message_utf8_cannot_encode_makes_the_record_litellm_makes(server):
    # A lone surrogate (text cut from a UTF-16 source): no request is sent either way.
    spec = _spec(server, "openai", CASES["plain"], text="half an emoji \ud83d")
    theirs, ours, paths = _both(server, spec, max_attempts=2)
    assert ours == theirs
    assert theirs["requests"] == []
    assert paths["v"] == {"path": "lean (openai)", "lean": 0, "litellm": 2}


# Error bodies self-hosted servers send (vLLM's top-level `message`, FastAPI's `detail`, text).
ERROR_BODIES = {
    "ETEXT": (400, "plain text problem"),
    "EDETAIL": (400, '{"detail": "fastapi style problem"}'),
    "EMESSAGE": (400, '{"object": "error", "message": "vllm style problem", "code": 400}'),
    "EERRSTR": (400, '{"error": "a string"}'),
    "EEMPTY": (400, ""),
    "E503": (503, "upstream down"),
}


@pytest.mark.parametrize("marker", sorted(ERROR_BODIES))
@pytest.mark.parametrize("provider", ["openai", "hosted_vllm"])
def test_error_bodies_of_any_shape_make_the_records_litellm_makes(openai_server, provider, marker):
    server = openai_server("ok", statuses=ERROR_BODIES)
    spec = _spec(server, provider, CASES["plain"], text=f"{marker} please")
    theirs, ours, paths = _both(server, spec, max_attempts=1)
    assert paths["v"]["path"] == f"lean ({provider})"
    assert ours == theirs


def test_a_route_built_while_lean_calls_are_opening_connections_fails_none_of_them(
    openai_server,
):
    # The judge stage calls `engine.call` per task: the second judge's route is built while the
    # first judge's calls are in flight; nothing may refuse their connections meanwhile.
    server = openai_server("ok", latency=0.05)
    first = _spec(server, "openai", CASES["plain"])
    second = CallSpec(**{**first.__dict__, "params": {**first.params, "temperature": 0.5}})
    engine = Engine(concurrency=16, backoff=0.001)

    async def go():
        async def later():
            await asyncio.sleep(0.02)
            return await engine.call(second)

        calls = [engine.call(CallSpec(**{**first.__dict__, "repeat": i})) for i in range(16)]
        return await asyncio.gather(*calls, later())

    results = asyncio.run(go())
    assert [r.error for r in results] == [None] * 17
    assert [r.attempts for r in results] == [1] * 17
