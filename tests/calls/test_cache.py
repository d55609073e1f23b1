"""Response cache: keys, hits, batching, WAL, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import threading

from harness.calls.cache import STOPWATCH_NOTE, Cache, cache_key
from harness.calls.engine import CallResult, CallSpec


def spec(**kw) -> CallSpec:
    base = dict(
        model="openai/m", messages=[{"role": "user", "content": "hi"}], params={"temperature": 0}
    )
    base.update(kw)
    return CallSpec(**base)


def ok(text="answer", latency=123.4) -> CallResult:
    return CallResult(
        output=text,
        latency_ms=latency,
        tokens_in=5,
        tokens_out=2,
        cost_usd=0.001,
        latency_clock="tcp",
    )


def test_key_covers_model_server_messages_params_format_and_repeat():
    k = cache_key(spec())
    assert k == cache_key(spec(params={"temperature": 0}))
    assert k != cache_key(spec(model="openai/other"))
    # The same model name on another server is another model.
    assert k != cache_key(spec(api_base="http://a:8000/v1"))
    assert cache_key(spec(api_base="http://a:8000/v1")) != cache_key(spec(api_base="http://b/v1"))
    assert k != cache_key(spec(messages=[{"role": "user", "content": "hi!"}]))
    assert k != cache_key(spec(params={"temperature": 1}))
    assert k != cache_key(spec(response_format={"type": "json_object"}))
    assert k != cache_key(spec(repeat=1))
    # Timeouts, prices and rate-limit grouping don't change the answer.
    assert k == cache_key(spec(timeout=3, rate_limit_key="x", pricing={"input_per_1m": 1.0}))


def test_hit_keeps_original_latency_tokens_and_cost(tmp_path):
    cache = Cache(tmp_path / "c.sqlite")
    cache.put("k", ok(), "openai/m")
    hit = cache.get("k")
    assert (hit.output, hit.latency_ms, hit.tokens_in, hit.tokens_out, hit.cost_usd) == (
        "answer",
        123.4,
        5,
        2,
        0.001,
    )
    assert hit.cached is True
    assert cache.get("missing") is None
    assert cache.get_many(["k", "missing"]) == {"k": hit}  # the batch lookup gives the same


def test_a_put_is_committed_before_it_returns(tmp_path):
    """Write-through: another connection sees the answer at once, before any close — what a
    process killed right after `put` leaves behind."""
    path = tmp_path / "c.sqlite"
    cache = Cache(path)
    cache.put("k", ok())
    other = sqlite3.connect(path)
    assert other.execute("SELECT key, output FROM responses").fetchall() == [("k", "answer")]
    other.close()
    cache.close()


def test_errors_are_never_stored(tmp_path):
    cache = Cache(tmp_path / "c.sqlite")
    cache.put("k", CallResult(output=None, latency_ms=None, error="timeout: x"))
    assert cache.get("k") is None and len(cache) == 0


def test_wal_mode(tmp_path):
    Cache(tmp_path / "c.sqlite").close()
    mode = sqlite3.connect(tmp_path / "c.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_threads_share_one_cache(tmp_path):
    cache = Cache(tmp_path / "c.sqlite")

    def write(t):
        for i in range(50):
            cache.put(f"{t}-{i}", ok(f"{t}-{i}"))
            assert cache.get(f"{t}-{i}").output == f"{t}-{i}"

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 200


def _writer(path, t):
    cache = Cache(path)
    for i in range(100):
        cache.put(f"{t}-{i}", ok())
    cache.close()


def test_processes_write_concurrently(tmp_path):
    path = tmp_path / "c.sqlite"
    Cache(path).close()
    procs = [mp.get_context("spawn").Process(target=_writer, args=(path, t)) for t in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(Cache(path)) == 300


def test_an_answer_the_run_itself_paid_for_is_its_spend_not_a_hit(tmp_path):
    cache = Cache(tmp_path / "c.sqlite")
    cache.put("mine", ok("a"), "openai/m", "20261201-100000-aaaa")
    cache.put("theirs", ok("b"), "openai/m", "20261130-090000-bbbb")
    hits = cache.get_many(["mine", "theirs"], own_run="20261201-100000-aaaa")
    assert (hits["mine"].cached, hits["theirs"].cached) == (False, True)
    assert hits["mine"].cost_usd == 0.001  # counted once, in the run that paid
    # A new run (no own_run) finds both in the cache.
    assert all(h.cached for h in cache.get_many(["mine", "theirs"]).values())
    cache.close()


def test_a_cache_from_before_run_ids_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, output TEXT NOT NULL,"
        " latency_ms REAL, tokens_in INTEGER, tokens_out INTEGER, cost_usd REAL, created_at REAL)"
    )
    db.execute("INSERT INTO responses VALUES ('k', 'openai/m', 'old', 5.0, 1, 1, 0.5, 0)")
    db.commit()
    db.close()
    first, second = Cache(path), Cache(path)  # the second finds the column already there
    hit = first.get_many(["k"], own_run="any")["k"]
    assert (hit.output, hit.cached) == ("old", True)  # nobody's own answer: a cache hit
    # Its 5 ms came from a stopwatch that counted the client's own work: not a latency to
    # compare with the kernel's, so unknown, with the note the run shows.
    assert hit.latency_ms is None and hit.note == STOPWATCH_NOTE
    assert (hit.tokens_in, hit.cost_usd) == (1, 0.5)
    second.put("k2", ok(), "openai/m", "r")
    assert second.get_many(["k2"], own_run="r")["k2"].cached is False
    first.close()
    second.close()


def test_a_local_model_written_again_does_not_reuse_the_old_files_answers(tmp_path, monkeypatch):
    # The same id `local/ft-<job>` served from a GGUF written again (a writer fix, a deleted file
    # re-materialised) must miss the cache: the old file's answers are another model's.
    import os

    from harness.calls import local_processes, local_trained
    from harness.calls.cache import cache_key
    from harness.types import CallSpec

    monkeypatch.setenv(local_trained.MODELS_ENV, str(tmp_path))
    folder = tmp_path / "ft-job1"
    folder.mkdir()
    (folder / "model.gguf").write_bytes(b"first")
    local_trained.write_manifest(folder, "full", local_processes.model_path(), "model.gguf")
    spec = CallSpec(model="local/ft-job1", messages=[{"role": "user", "content": "hi"}])
    base = CallSpec(model="local/smollm2", messages=spec.messages)
    local_processes.served_identity.cache_clear()
    before, base_before = cache_key(spec), cache_key(base)
    assert cache_key(spec) == before  # stable while the file is the same
    (folder / "model.gguf").write_bytes(b"second")
    os.utime(folder / "model.gguf", ns=(1, 1))
    local_processes.served_identity.cache_clear()
    assert cache_key(spec) != before
    assert cache_key(base) == base_before  # the shipped base is keyed by its name and size
    # A model that cannot be resolved still gets a key (its call fails with its own error).
    missing = CallSpec(model="local/ft-nojob", messages=spec.messages)
    assert len(cache_key(missing)) == 64
    local_processes.served_identity.cache_clear()
