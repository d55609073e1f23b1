"""The lean transport: litellm resolves a variant's request once, aiohttp sends every call.

`litellm.acompletion` costs 5–9 ms of CPU per call (its logging object, cost calculator,
response building, the OpenAI SDK); against a fast self-hosted server that, not the server, is
the run's limit. For an OpenAI-compatible chat endpoint nothing in the request changes from one
call of a variant to the next but the messages. So, once per variant, litellm builds the request
itself — `get_llm_provider` names the provider, its parameter mapping (`get_optional_params`:
o-series rules, dropped or renamed params), the provider's URL, key, api-version and headers, and
the OpenAI SDK's serialisation — for placeholder messages of the variant's roles; the request is
caught as it reaches the (clocked, shared) aiohttp session, never sent. What it caught becomes a
`Route`: the URL, the headers, and the body as the bytes before and after the messages. A call
then costs the messages' `json.dumps`, one aiohttp request on the shared session and a
`json.loads` of the reply.

Equivalence is the contract (tests/calls/test_transport.py): the same variants sent both ways
reach the test server with the same body bytes and headers, and give the same records. Whatever
this path cannot vouch for goes through litellm as before, per variant, with the reason kept for
`--timings`: a provider that is not OpenAI-compatible, a param outside `PARAMS`, a proxy from the
environment, a request litellm would not build or whose messages it rewrites (a role the model does
not take). A call whose messages are not plain `{role, content}` strings of the variant's roles
goes through litellm too.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Any

from harness.calls import clock

# litellm's provider names whose chat endpoint is OpenAI's /chat/completions (get_llm_provider's
# answer). Each is in the equivalence test.
LEAN_PROVIDERS = frozenset(
    {
        "openai",
        "custom_openai",
        "azure",
        "hosted_vllm",
        "litellm_proxy",
        "llamafile",
        "lm_studio",
        "together_ai",
        "groq",
        "deepseek",
        "fireworks_ai",
        "openrouter",
    }
)

# The suite params this path vouches for: OpenAI's chat parameters (litellm maps them per model,
# e.g. max_tokens → max_completion_tokens for o-series) and litellm's connection settings. Any
# other key (a litellm feature such as `mock_response` or `fallbacks`, a provider's own param)
# keeps the variant on litellm.
PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "seed",
        "user",
        "reasoning_effort",
        "verbosity",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "service_tier",
        "store",
        "metadata",
        "prediction",
        "modalities",
        "web_search_options",
        "safety_identifier",
        "prompt_cache_key",
        "extra_headers",
        "extra_body",
        "api_key",
        "api_version",
        "organization",
        "drop_params",
    }
)

_PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")

# Placeholder text for each message: characters JSON escapes (quote, backslash, control) and a
# non-ASCII one, so the encoder settings are told apart from the bytes (ensure_ascii, separators).
_PROBE = '\x00harness-probe-{}"\\\n\té\u2028'


@dataclass(frozen=True)
class Route:
    """How one variant's calls are sent: everything but the messages is fixed."""

    provider: str
    model: str  # the model as litellm names it to the provider (get_llm_provider's)
    sdk: bool  # built by the OpenAI SDK (its errors reach litellm as the parsed message)
    url: Any  # yarl.URL, encoded as litellm built it
    headers: (
        Any  # multidict.CIMultiDict, as litellm's client set them (Host/Content-Length: aiohttp's)
    )
    prefix: bytes  # the body before the messages
    suffix: bytes  # and after them
    ensure_ascii: bool
    separators: tuple[str, str]
    keys: tuple[str, ...]  # each message's keys, in order ("role", "content")
    roles: frozenset[str]
    options: dict[str, Any]  # the aiohttp request options litellm's transport passed (timeout, ssl)

    def body(self, messages: list[dict]) -> bytes | None:
        """The request body for `messages`, or None when they are not what this route was built
        for (then litellm sends the call)."""
        keys, roles = self.keys, self.roles
        for m in messages:
            if type(m) is not dict or tuple(m) != keys or m["role"] not in roles:
                return None
            if type(m["content"]) is not str:
                return None
        text = json.dumps(messages, ensure_ascii=self.ensure_ascii, separators=self.separators)
        try:
            return self.prefix + text.encode() + self.suffix
        except UnicodeEncodeError:  # a lone surrogate: litellm's path reports it its own way
            return None


@dataclass(frozen=True)
class Fallback:
    """litellm sends this variant's calls, and why."""

    reason: str


def label(result: Route | Fallback) -> str:
    """`--timings`' one line for a variant's path."""
    if isinstance(result, Route):
        return f"lean ({result.provider})"
    return f"litellm ({result.reason})"


# ---------------------------------------------------------------- resolving a variant


def why_not(provider: str, params: dict[str, Any], response_format: Any) -> str | None:
    """Why this variant cannot take the lean path before litellm builds anything (None: it may)."""
    if provider not in LEAN_PROVIDERS:
        return f"provider {provider} is not an OpenAI-compatible chat endpoint"
    unknown = sorted(set(params) - PARAMS)
    if unknown:
        return f"params.{unknown[0]} is passed to litellm as is"
    if params.get("n") not in (None, 1):
        return "params.n > 1"
    if response_format is not None and not isinstance(response_format, dict):
        return "response_format is not a mapping"
    if any(os.environ.get(name) for name in _PROXY_ENV):
        return "a proxy is set in the environment"
    return None


class _Caught(Exception):
    """Raised where the request would have left: litellm has built it, nothing was sent."""


def _catching_session(caught: list[dict]):
    """An aiohttp session that records the request litellm makes through it and sends nothing.
    A ClientSession subclass because litellm's transport replaces anything else."""
    import aiohttp

    class CatchingSession(aiohttp.ClientSession):
        def _request(self, method, str_or_url, **kwargs):  # type: ignore[override]
            headers = kwargs.pop("headers", None) or {}
            pairs = headers.raw if hasattr(headers, "raw") else list(dict(headers).items())
            caught.append({"method": method, "url": str_or_url, "headers": pairs, **kwargs})
            raise _Caught()

    return CatchingSession()


def _catching_client(caught: list[dict]):
    """The same for the OpenAI SDK's clients that litellm builds without the shared session
    (azure): an httpx client whose transport records the request; litellm's
    `aclient_session` is the client its SDK paths take when set."""
    import httpx

    class CatchingTransport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request):
            t = request.extensions.get("timeout") or {}
            caught.append(
                {
                    "method": request.method,
                    "url": str(request.url),
                    "headers": request.headers.raw,
                    "data": request.content,
                    # as litellm's aiohttp transport maps httpx's timeouts
                    "timeout": _client_timeout(t.get("connect"), t.get("read"), t.get("pool")),
                    # the TLS settings litellm gives its SDK clients' transport
                    "ssl": _litellm_ssl(),
                }
            )
            raise _Caught()

    return httpx.AsyncClient(transport=CatchingTransport())


def _litellm_ssl():
    from litellm.llms.custom_httpx.http_handler import get_ssl_configuration

    ssl = get_ssl_configuration()
    return ssl if ssl is False or not isinstance(ssl, bool) else None


def _client_timeout(sock_connect, sock_read, connect):
    import aiohttp

    return aiohttp.ClientTimeout(sock_connect=sock_connect, sock_read=sock_read, connect=connect)


async def _refuse(*args, **kwargs):
    raise ConnectionRefusedError("harness: nothing is sent while litellm builds a request to catch")


async def build_route(
    litellm, provider: str, model: str, spec_messages: list[dict], kwargs: dict[str, Any]
) -> Route | Fallback:
    """Have litellm build this variant's request for placeholder messages of its roles, catch it
    before it is sent, and keep it as a `Route`. `kwargs` are litellm's arguments as the engine
    passes them (model, timeout, retries off, params, response_format, api_base).

    Nothing may leave while it does: litellm keeps its HTTP clients in a module cache keyed by
    key, base URL and timeout, not by session, so the request is built with a client cache of its
    own (the catching session is never handed to a real call, nor a real client to this one), and
    this loop opens no connection meanwhile, so a provider path that ignores both catchers fails
    to connect instead of sending the placeholder (the variant then stays on litellm). The
    engine starts no litellm call meanwhile (Engine._build_route).
    """
    probe = [dict(m) for m in spec_messages]
    keys = tuple(probe[0]) if probe else ()
    if keys not in (("role", "content"), ("content", "role")):
        return Fallback("messages are not plain {role, content} pairs")
    for i, m in enumerate(probe):
        if tuple(m) != keys or not isinstance(m["role"], str):
            return Fallback("messages are not plain {role, content} pairs")
        if not isinstance(m["content"], str):
            return Fallback("messages carry content parts")
        m["content"] = _PROBE.format(i)
    from litellm.caching.llm_caching_handler import LLMClientCache

    caught: list[dict] = []
    session = _catching_session(caught)
    client = _catching_client(caught)
    loop = asyncio.get_running_loop()
    saved = (litellm.in_memory_llm_clients_cache, litellm.aclient_session)
    litellm.in_memory_llm_clients_cache = LLMClientCache()
    litellm.aclient_session = client
    loop.create_connection = _refuse  # type: ignore[method-assign]
    try:
        await litellm.acompletion(
            messages=[dict(m) for m in probe], shared_session=session, **kwargs
        )
    except Exception:
        pass  # _Caught, as litellm maps it; or a request litellm refuses to build
    finally:
        del loop.create_connection  # the loop's own method again
        litellm.in_memory_llm_clients_cache, litellm.aclient_session = saved
        await session.close()
        await client.aclose()
    if len(caught) != 1:
        return Fallback("litellm builds no single HTTP request for it")
    return _route_from(provider, model, caught[0], probe, keys, float(kwargs["timeout"]))


def _route_from(
    provider: str, model: str, caught: dict, probe: list[dict], keys, timeout: float
) -> Route | Fallback:
    import aiohttp
    import multidict
    import yarl

    data = caught.get("data")
    if caught["method"] != "POST" or not isinstance(data, bytes | bytearray):
        return Fallback("litellm's request is not a JSON POST")
    data = bytes(data)
    try:
        sent = json.loads(data)
    except ValueError:
        return Fallback("litellm's request body is not JSON")
    if not isinstance(sent, dict) or sent.get("messages") != probe or sent.get("stream"):
        return Fallback("litellm rewrites the messages for this model")
    for ensure_ascii in (False, True):
        for separators in ((",", ":"), (", ", ": ")):
            text = json.dumps(probe, ensure_ascii=ensure_ascii, separators=separators).encode()
            if data.count(text) == 1:
                prefix, suffix = data.split(text)
                break
        else:
            continue
        break
    else:
        return Fallback("litellm's request body is not one json.dumps")
    headers = multidict.CIMultiDict()
    for name, value in caught["headers"]:
        name = name.decode("latin-1") if isinstance(name, bytes) else name
        value = value.decode("latin-1") if isinstance(value, bytes) else value
        if name.lower() in ("host", "content-length", "transfer-encoding"):
            continue  # aiohttp's own, per request (a redirect's Host is the new host)
        headers.add(name, value)
    url = caught["url"]
    if isinstance(url, str) or not isinstance(url, yarl.URL):
        url = yarl.URL(str(url), encoded=True)
    if url.raw_user or url.raw_password:
        # aiohttp turns them into an Authorization of its own beside the key's: litellm's path
        # fails on it as it always has, and the record should read as it does there.
        return Fallback("api_base carries credentials in its URL")
    # What litellm's transport asks aiohttp for besides the request (timeouts, TLS, SNI); the
    # reply is decompressed by aiohttp here (litellm's httpx did that after its transport).
    options = {
        k: v
        for k, v in caught.items()
        if k in ("timeout", "ssl", "server_hostname", "proxy") and v is not None
    }
    # Plus the engine's safety net over the client's own timeouts (connect, read), as its
    # `wait_for` around litellm: a reply dripping in never holds a call forever.
    t = options.get("timeout")
    options["timeout"] = aiohttp.ClientTimeout(
        total=timeout + 5,
        connect=getattr(t, "connect", None),
        sock_connect=getattr(t, "sock_connect", None),
        sock_read=getattr(t, "sock_read", timeout),
    )
    return Route(
        provider=provider,
        model=model,
        sdk=any(name.lower() == "x-stainless-lang" for name in headers),
        url=url,
        headers=headers,
        prefix=prefix,
        suffix=suffix,
        ensure_ascii=ensure_ascii,
        separators=separators,
        keys=keys,
        roles=frozenset(m["role"] for m in probe),
        options=options,
    )


# ---------------------------------------------------------------- sending a call


class Timeout(Exception):
    """No reply within the variant's timeout (litellm's class of the same name)."""


class InternalServerError(Exception):
    """A dropped connection or a 2xx reply that is not JSON (litellm's class for both)."""


class ProviderError(Exception):
    """An error reply litellm could not map: `status_code` and `headers` as the engine's
    `classify` and `retry_after_seconds` read them from litellm's own exceptions."""

    def __init__(self, message: str, status_code: int, headers=None):
        super().__init__(message)
        self.status_code = status_code
        self.headers = headers


def _error_message(raw: bytes, status: int) -> str:
    """The message litellm keeps from the OpenAI SDK's error: the body's `message` (under
    `error`, or at the top as vLLM sends it), else only "Error code: N" — never the body's text."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    error = body.get("error", body) if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str) and message:
        return message
    return f"Error code: {status}"


def _prefix(route: Route) -> str:
    return {"openai": "OpenAI", "custom_openai": "OpenAI", "azure": "Azure"}.get(
        route.provider, route.provider.capitalize()
    )


def provider_error(route: Route, status: int, raw: bytes, headers) -> Exception:
    """The exception litellm raises for this error reply: the provider config's error class,
    mapped by litellm's `exception_type` (RateLimitError, BadRequestError,
    ContextWindowExceededError, ...), so the engine classifies and retries it as before and the
    record reads the same. The SDK hands litellm the error's message, litellm's own HTTP handler
    the body's text."""
    message = _error_message(raw, status) if route.sdk else raw.decode("utf-8", "replace")
    try:
        import httpx
        import litellm
        from litellm.types.utils import LlmProviders
        from litellm.utils import ProviderConfigManager

        config = ProviderConfigManager.get_provider_chat_config(
            model=route.model, provider=LlmProviders(route.provider)
        )
        original = config.get_error_class(
            error_message=message, status_code=status, headers=httpx.Headers(dict(headers))
        )
        litellm.exception_type(
            model=route.model, original_exception=original, custom_llm_provider=route.provider
        )
    except Exception as mapped:  # exception_type raises what it maps to
        if getattr(mapped, "status_code", None) is not None or "Error" in type(mapped).__name__:
            if not getattr(mapped, "headers", None):
                # Retry-After, where the engine looks for it (litellm's own call keeps the
                # reply's headers on the exception's response)
                mapped.headers = headers
            return mapped
    return ProviderError(f"{_prefix(route)}Exception - {message}", status, headers)


async def send(route: Route, body: bytes) -> dict:
    """POST one call on this loop's clocked session; the reply's JSON, or the exception the
    engine classifies (ProviderError with the status, a timeout, a dropped connection)."""
    import aiohttp

    session = await clock.shared_session()
    try:
        async with session.request(
            "POST", route.url, headers=route.headers, data=body, **route.options
        ) as response:
            raw = await response.read()
            status = response.status
            headers = response.headers
    except (asyncio.TimeoutError, TimeoutError):  # aiohttp's ServerTimeoutError is one too
        t = route.options["timeout"]
        raise Timeout(
            f"APITimeoutError - Request timed out. - timeout value={t.sock_read}"
        ) from None
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
        # As litellm reports them: the SDK's words, or the aiohttp error its handler saw.
        what = "Connection error." if route.sdk else str(e)
        raise InternalServerError(
            f"InternalServerError: {_prefix(route)}Exception - {what}"
        ) from None
    if status >= 400:
        raise provider_error(route, status, raw, headers)
    try:
        return json.loads(raw)
    except ValueError as e:
        raise InternalServerError(f"InternalServerError: {_prefix(route)}Exception - {e}") from None


def _tokens(value) -> int | None:
    """A usage count as litellm's response model reads it (`"5"` is 5); None when not a count."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str | float):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def parse_reply(route: Route, reply: Any) -> tuple[str | None, Any, int | None, int | None]:
    """(content, finish_reason, prompt tokens, completion tokens) of a 200 reply; content None
    with finish_reason `...` when there are no choices. A reply whose shape litellm's response
    model refuses (not an object, choices not a list, a message or usage that is not an object,
    content that is not text) raises the InternalServerError litellm raises for it: retried, and
    never recorded as an answer."""

    def invalid(what: str) -> InternalServerError:
        return InternalServerError(
            f"InternalServerError: {_prefix(route)}Exception - Invalid response object ({what})"
        )

    if not isinstance(reply, dict):
        raise invalid("the reply is not a JSON object")
    choices = reply.get("choices")
    if choices is not None and not isinstance(choices, list):
        raise invalid("choices is not a list")
    usage = reply.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise invalid("usage is not an object")
    usage = usage or {}
    tokens_in, tokens_out = (
        _tokens(usage.get("prompt_tokens")),
        _tokens(usage.get("completion_tokens")),
    )
    if not choices:
        return None, ..., tokens_in, tokens_out
    first = choices[0]
    if not isinstance(first, dict):
        raise invalid("a choice is not an object")
    message = first.get("message")
    if message is not None and not isinstance(message, dict):
        raise invalid("the message is not an object")
    content = (message or {}).get("content")
    if content is not None and not isinstance(content, str):
        raise invalid("the message's content is not text")
    return content, first.get("finish_reason"), tokens_in, tokens_out
