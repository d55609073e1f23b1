"""Response cache: SQLite (WAL) in runs/.cache.sqlite, shared by runs, processes and threads.

The key is a hash of every CallSpec field that can change an answer: model, api_base (the same
model name on another server is another model), messages, params, response_format and the repeat
index (repeats are separate samples, so each has its own entry). Only the fields listed in
`NOT_IN_KEY` are left out, so a field added to CallSpec is part of the key unless someone
decides it cannot change the answer. Only successful answers
are stored. A hit comes back marked `cached` with the latency, tokens and cost of the original
call, so latency metrics describe the model, not the cache.

Each answer also records the run that paid for it (`run_id`). A resumed run looks its remaining
calls up with `own_run`: an answer its own killed part paid for, which reached the cache but not
results/ (it was in a worker's pipe), comes back *not* marked cached, so the run's spend counts it
once instead of never.

The share of the list price it was paid at (`price_factor`: 0.5 for a Batch API answer), so a
resumed batch run's own answers count at what was paid, not the list price when the summary
re-prices them.

And the clock that timed it (`latency_clock`): an answer cached by a harness that timed calls with
a stopwatch (which counted the client's own work, see harness.calls.clock) comes back with its
latency unknown and a note, so it is never compared with latencies the kernel measured.

Durability: `put` commits before it returns (write-through; WAL with synchronous=NORMAL, so the
commit is a write to the WAL file, ~0.05 ms, no fsync). A process killed with SIGKILL therefore
loses no answer it was handed, and a re-run pays again for at most the calls that were in flight.
Never batch these writes behind a count or a timer: tests/cli/test_durability.py kills runs at
random points and counts the calls the server is paid for twice.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import fields
from pathlib import Path
from typing import Any

from harness.errors import SuiteError
from harness.types import CallResult, CallSpec

# How the call is sent or priced, never what comes back: a cached answer stays valid across them.
NOT_IN_KEY = frozenset({"timeout", "pricing", "rate_limit_key"})

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    output TEXT NOT NULL,
    latency_ms REAL,
    tokens_in INTEGER,
    tokens_out INTEGER,
    cost_usd REAL,
    created_at REAL DEFAULT (unixepoch('subsec')),
    run_id TEXT,
    latency_clock TEXT,
    price_factor REAL
)
"""


def cache_key(spec: CallSpec) -> str:
    payload = {f.name: getattr(spec, f.name) for f in fields(spec) if f.name not in NOT_IN_KEY}
    if spec.model.startswith("local/"):
        # The same model id can be served from another file (a GGUF written again): its
        # answers are keyed by what was served, not only by the name.
        from harness.calls.local_processes import served_identity

        payload["served"] = served_identity(spec.model)
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Cache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # check_same_thread=False: the lock serialises use across the loop and helper threads.
        self._db = sqlite3.connect(
            self.path, timeout=30, check_same_thread=False, isolation_level=None
        )
        try:
            self._open()
        except sqlite3.DatabaseError as e:
            self._db.close()
            if isinstance(e, sqlite3.OperationalError):  # locked, read-only, disk full: as it says
                raise
            raise SuiteError(
                f"not a readable answer store ({e}). Move it aside (with its -wal and -shm "
                "files) and run again: the answers it held are asked for, and paid for, again",
                file=str(self.path),
            ) from None

    def _open(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        try:
            self._db.execute(SCHEMA)
        except sqlite3.OperationalError:  # SQLite older than 3.42 lacks unixepoch('subsec')
            self._db.execute(SCHEMA.replace("DEFAULT (unixepoch('subsec'))", ""))
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
        # A cache written by an earlier harness gets the columns it lacks (NULL in its rows).
        for column, kind in (
            ("run_id", "TEXT"),
            ("latency_clock", "TEXT"),
            ("price_factor", "REAL"),
        ):
            if column in columns:
                continue
            try:
                self._db.execute(f"ALTER TABLE responses ADD COLUMN {column} {kind}")
            except sqlite3.OperationalError as e:  # another process added it first
                if "duplicate column" not in str(e):
                    raise

    def get(self, key: str):
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM responses WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else _hit(row)

    def get_many(self, keys: list[str], own_run: str | None = None) -> dict[str, Any]:
        """Hits among `keys` in one pass (a cached re-run of thousands of calls stays fast).
        Answers `own_run` paid for come back not marked cached (see the module docstring)."""
        out: dict[str, Any] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, {_COLUMNS}, run_id FROM responses WHERE key IN ({marks})",
                    chunk,
                ).fetchall()
                for key, *row, run_id in rows:
                    hit = _hit(row)
                    if own_run is not None and run_id == own_run:
                        hit.cached = False
                    out[key] = hit
        return out

    def put(self, key: str, result: Any, model: str = "", run_id: str | None = None) -> None:
        if result.error is not None or result.output is None:
            return
        row = (
            key,
            model,
            result.output,
            result.latency_ms,
            result.tokens_in,
            result.tokens_out,
            result.cost_usd,
            run_id,
            result.latency_clock,
            result.price_factor,
        )
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, model, output, latency_ms, tokens_in, "
                "tokens_out, cost_usd, run_id, latency_clock, price_factor) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


_COLUMNS = "output, latency_ms, tokens_in, tokens_out, cost_usd, latency_clock, price_factor"

STOPWATCH_NOTE = (
    "latency unknown for answers cached by an earlier harness, whose stopwatch counted the "
    "client's own work — run with --no-cache to measure them"
)


def _hit(row) -> CallResult:
    """A stored row (`_COLUMNS`) as a cached CallResult."""
    output, latency_ms, tokens_in, tokens_out, cost_usd, clock, factor = row
    unclocked = latency_ms is not None and clock is None
    return CallResult(
        output=output,
        latency_ms=None if unclocked else latency_ms,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=cost_usd,
        cached=True,
        note=STOPWATCH_NOTE if unclocked else None,
        latency_clock=clock,
        # A Batch API answer was paid at half the price: its cost stays what was paid.
        price_factor=1.0 if factor is None else factor,
    )
