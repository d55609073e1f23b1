"""A corrupted answer store (the shared cache, a --no-cache run's journal) is exit 2 naming the
file and the fix, never a traceback."""

from __future__ import annotations

import signal

from conftest import intent_answer, write_suite
from test_durability import _start, _stop_after


def _garbage(path) -> None:
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    path.write_bytes(b"this is not a database\n" * 400)


def test_a_corrupted_journal_is_exit_2_naming_it(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer, latency=0.01)
    suite = write_suite(tmp_path, server.url, n=120, variants="\n  - name: zero-shot\n")
    proc = _start(suite, tmp_path, "--no-cache", "--workers", "0")
    _stop_after(proc, server, 30, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    (journal,) = (tmp_path / "runs" / "test-suite").glob("*/answers.sqlite")
    _garbage(journal)
    proc = _start(suite, tmp_path, "--resume")
    out, err = (s.decode() for s in proc.communicate(timeout=120))
    assert proc.returncode == 2, (out, err)
    assert "Traceback" not in err
    assert f"{journal}: not a readable answer store" in err, err


def test_a_corrupted_cache_is_exit_2_naming_it(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=6, variants="\n  - name: zero-shot\n")
    cache = tmp_path / "runs" / ".cache.sqlite"
    cache.parent.mkdir()
    _garbage(cache)
    proc = _start(suite, tmp_path)
    out, err = (s.decode() for s in proc.communicate(timeout=120))
    assert proc.returncode == 2, (out, err)
    assert "Traceback" not in err
    assert f"{cache}: not a readable answer store" in err, err
    assert server.requests == 0
