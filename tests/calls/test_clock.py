"""The latency clock reads the provider's time from the kernel, not the client's stopwatch."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time

import pytest

from harness.calls.clock import CallClock, tcp_elapsed_ms
from harness.calls.engine import CallSpec, Engine

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="TCP_INFO is Linux's")


@linux_only
def test_tcp_clock_is_request_to_reply_however_late_it_is_read():
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(100)
            time.sleep(0.08)  # the "provider" takes 80 ms
            conn.sendall(b"reply")

    threading.Thread(target=serve, daemon=True).start()
    client = socket.create_connection(listener.getsockname())
    client.sendall(b"request")
    assert client.recv(100) == b"reply"
    time.sleep(0.3)  # the client is busy elsewhere before it looks
    elapsed = tcp_elapsed_ms(client)
    client.close()
    listener.close()
    # Read at the kernel's tick (1-10 ms); the 300 ms the client was late are not in it.
    assert elapsed is not None and 70 <= elapsed <= 120, elapsed


def test_a_reading_above_the_stopwatch_is_not_believed():
    clock = CallClock()
    assert clock.read(12.5) == (12.5, "stopwatch")  # nothing read
    clock.tcp_ms = 40.0
    assert clock.read(12.5) == (12.5, "stopwatch")  # impossible: a reused connection
    assert clock.read(90.0) == (40.0, "tcp")


@linux_only
def test_latency_is_the_providers_time_not_the_blocked_event_loops(openai_server, fake_key):
    """Eight calls to a 100 ms server while the loop is blocked for 500 ms once they are sent:
    the stopwatch around each call reads 500+ ms, the provider took 100 ms."""
    server = openai_server("ok", latency=0.1)
    specs = [
        CallSpec(
            model="openai/fake-model",
            messages=[{"role": "user", "content": f"q{i}"}],
            api_base=server.url,
            timeout=10,
        )
        for i in range(8)
    ]
    results = []

    async def go() -> float:
        engine = Engine(concurrency=8)

        async def block_once_sent() -> None:
            while server.requests < 8:
                await asyncio.sleep(0.001)
            time.sleep(0.5)  # a CPU-bound loop: replies wait in their sockets

        start = time.perf_counter()
        await asyncio.gather(
            engine.call_each(enumerate(specs), lambda i, r: results.append(r)),
            block_once_sent(),
        )
        return time.perf_counter() - start

    wall = asyncio.run(go())
    assert wall >= 0.5
    assert len(results) == 8 and all(r.error is None for r in results)
    assert {r.latency_clock for r in results} == {"tcp"}
    latencies = sorted(r.latency_ms for r in results)
    assert latencies[0] >= 90 and latencies[-1] <= 250, latencies
