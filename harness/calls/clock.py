"""The latency clock: how long the provider took, read from the kernel's TCP clock.

A stopwatch around `litellm.acompletion` counts the client's own work: litellm's ~5 ms of CPU
per call before the request and after the reply, and, with many calls in flight, the time a
reply waits in the socket while the event loop serves the others. Against a 0 ms server at
concurrency 64 that read ~400 ms at the median: the client's queue, not the model.

The kernel knows better. `TCP_INFO` tells, for a connection, how long ago it last sent data and
how long ago it last received data (milliseconds, at the kernel's tick: 1–4 ms). Read as the
reply's headers are parsed, their difference is the time from the request's last byte leaving
this machine to the reply arriving: the network and the provider, and nothing the client did.
So each call runs under a `CallClock`; the connector hands it the connection the request goes
out on, and the trace hook reads the clock before the connection can carry another request.

Where there is no TCP socket to ask (a local model, a platform without `TCP_INFO`, a provider
client litellm does not route through the shared session), the stopwatch is the latency, as
before. A kernel reading larger than the stopwatch cannot be right (a connection reused by
another request in between), so the stopwatch wins then too.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import socket
import struct
from typing import Any

# struct tcp_info (linux/tcp.h): 8 bytes of u8 fields, then u32s from tcpi_rto on;
# tcpi_last_data_sent is the 10th u32 (byte 44), tcpi_last_data_recv the 12th (byte 52).
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_LAST_DATA_SENT, _LAST_DATA_RECV = 44, 52
_TCP_INFO_SIZE = 104

_CURRENT: contextvars.ContextVar[CallClock | None] = contextvars.ContextVar(
    "harness_call_clock", default=None
)


class CallClock:
    """One attempt's reading: the transport the request used, and the kernel's time for it."""

    __slots__ = ("transport", "tcp_ms")

    def __init__(self) -> None:
        self.transport: Any = None
        self.tcp_ms: float | None = None

    def read(self, wall_ms: float) -> tuple[float, str]:
        """(latency in ms, which clock gave it) for an attempt the stopwatch timed at wall_ms."""
        if self.tcp_ms is not None and self.tcp_ms <= wall_ms:
            return self.tcp_ms, "tcp"
        return wall_ms, "stopwatch"


def start() -> CallClock:
    """A fresh clock for the attempt about to be made in this task (its context)."""
    clock = CallClock()
    _CURRENT.set(clock)
    return clock


def tcp_elapsed_ms(sock) -> float | None:
    """Milliseconds from the last data sent on `sock` to the last data received on it."""
    if _TCP_INFO is None or sock is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_SIZE)
    except (OSError, AttributeError):  # not TCP (a Unix socket), or closed under us
        return None
    if len(raw) < _LAST_DATA_RECV + 4:
        return None
    (since_sent,) = struct.unpack_from("I", raw, _LAST_DATA_SENT)
    (since_received,) = struct.unpack_from("I", raw, _LAST_DATA_RECV)
    elapsed = int(since_sent) - int(since_received)
    return float(elapsed) if elapsed >= 0 else None


async def _on_request_end(session, ctx, params) -> None:
    clock = _CURRENT.get()
    if clock is None or clock.transport is None:
        return
    transport, clock.transport = clock.transport, None
    clock.tcp_ms = tcp_elapsed_ms(transport.get_extra_info("socket"))


_SESSIONS: dict[Any, Any] = {}  # running loop -> (session, the generator that closes it)


async def shared_session():
    """This event loop's clocked session, for litellm's `shared_session`.

    One per loop, for the loop's whole life: litellm caches its OpenAI clients by key (API key,
    base URL, timeout), not by session, so a session closed and replaced within one loop would
    leave the cached client rebuilding litellm's own, unclocked one. It is closed when the loop
    shuts down (`asyncio.run` closes open async generators, and `_closes_at_shutdown` is one).
    """
    loop = asyncio.get_running_loop()
    held = _SESSIONS.get(loop)
    if held is None or held[0].closed:
        opened = _session()
        keeper = _closes_at_shutdown(loop, opened)
        await keeper.__anext__()
        _SESSIONS[loop] = held = (opened, keeper)
    return held[0]


async def _closes_at_shutdown(loop, opened):
    try:
        yield
    finally:
        if _SESSIONS.get(loop, (None,))[0] is opened:
            del _SESSIONS[loop]
        await opened.close()


def _session():
    """An aiohttp session for litellm's `shared_session`: litellm's own settings (keep-alive,
    DNS cache, TCP keep-alive probes, no cookies, proxies from the environment only when litellm
    is told to trust it), plus the clock. TLS is set per request by litellm's transport, as for
    its own sessions. No connection limit: the engine's semaphore is the limit."""
    import aiohttp
    import litellm
    from litellm.constants import AIOHTTP_KEEPALIVE_TIMEOUT, AIOHTTP_TTL_DNS_CACHE
    from litellm.llms.custom_httpx.http_handler import build_aiohttp_keepalive_socket_factory
    from litellm.secret_managers.main import str_to_bool

    class ClockedConnector(aiohttp.TCPConnector):
        async def connect(self, req, traces, timeout):
            connection = await super().connect(req, traces, timeout)
            clock = _CURRENT.get()
            if clock is not None:
                clock.transport = connection.transport
            return connection

    kwargs: dict[str, Any] = {
        "limit": 0,
        "keepalive_timeout": AIOHTTP_KEEPALIVE_TIMEOUT,
        "ttl_dns_cache": AIOHTTP_TTL_DNS_CACHE,
    }
    factory = build_aiohttp_keepalive_socket_factory()
    if factory is not None:
        kwargs["socket_factory"] = factory
    trust_env = (
        bool(litellm.aiohttp_trust_env)
        or str_to_bool(os.getenv("AIOHTTP_TRUST_ENV", "False")) is True
    )
    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(_on_request_end)
    return aiohttp.ClientSession(
        connector=ClockedConnector(**kwargs),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=trust_env,
        trace_configs=[trace],
    )
