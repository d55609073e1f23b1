"""A lineage's identity from its test examples' content, so that edits do not reset its record.

A lineage is first known by the hash of its test file (harness.decide.history.lineage_id); its
registered protocol (harness.decide.protocol) keeps one fingerprint per test example (its inputs
and expected answer). A later run whose test file hashes differently still continues the lineage
when most of its examples are the registered ones: renaming the suite, dropping a row or adding
examples is the same experiment, never a silent fresh start.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import SuiteError

PROTOCOL_DIR = ".protocol"  # runs/.protocol/<lineage>.json: each lineage's registered protocol
# "Mostly overlaps": at least this share of the registered examples are in the new test set, and
# of the new test set's examples are registered ones.
OVERLAP = 0.5


def example_fingerprint(inputs: dict[str, Any], target: Any) -> str:
    """12 hex digits of an example's content: what the model sees and what it must answer."""
    canonical = json.dumps(
        {"inputs": inputs, "expected": target}, sort_keys=True, default=str, ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def fingerprints(examples) -> list[str]:
    """One fingerprint per test example (harness.data.dataset.Example), in data order."""
    return [example_fingerprint(e.inputs, e.target) for e in examples]


def protocol_path(runs_dir: str | Path, lineage: str) -> Path:
    return Path(runs_dir) / PROTOCOL_DIR / f"{lineage}.json"


def read_protocol(runs_dir: str | Path | None, lineage: str | None) -> dict | None:
    """A lineage's registered protocol as stored (a JSON mapping), or None."""
    if runs_dir is None or lineage is None:
        return None
    path = protocol_path(runs_dir, lineage)
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise unreadable_protocol(path, e.strerror or str(e)) from None
    try:
        data = json.loads(text)
    except ValueError:
        raise unreadable_protocol(path, "not JSON") from None
    if not isinstance(data, dict):
        raise unreadable_protocol(path, "not a protocol")
    return data


def unreadable_protocol(path: Path, why: str) -> SuiteError:
    """A protocol file that exists but cannot be read is never taken for "none registered": the
    run would register afresh over it (its limits, iterations and spend freed)."""
    return SuiteError(
        f"{why} — the lineage's registered protocol cannot be read; restore the file (from a "
        "backup or version control), or move it aside to register the lineage afresh (the runs "
        "it registered then name the replaced protocol as an amendment)",
        file=str(path),
    )


def overlap(registered: list[str], current: list[str]) -> float:
    """The smaller of the two shares: registered examples kept, current examples registered."""
    reg, cur = set(registered), set(current)
    if not reg or not cur:
        return 0.0
    shared = len(reg & cur)
    return min(shared / len(reg), shared / len(cur))


def find_lineage(
    runs_dir: str | Path | None, test_hash: str | None, current: list[str]
) -> tuple[str | None, float | None]:
    """(lineage, overlap): the registered lineage this test set continues, else its own hash.

    Its own hash when that lineage is registered (overlap None: the same file); else the
    registered lineage whose examples overlap most, when they mostly do; else the file's hash
    (a new lineage)."""
    if runs_dir is None or read_protocol(runs_dir, test_hash) is not None:
        return test_hash, None
    best, share = None, 0.0
    for path in sorted((Path(runs_dir) / PROTOCOL_DIR).glob("*.json")):
        reg = read_protocol(runs_dir, path.stem) or {}
        s = overlap(reg.get("examples") or [], current)
        if s > share:
            best, share = path.stem, s
    if best is not None and share >= OVERLAP:
        return best, share
    # A lineage whose protocol file is gone is still known by the run that registered it.
    for s in registering_runs(runs_dir):
        if read_protocol(runs_dir, s["lineage"]) is not None:
            continue  # already weighed above
        o = overlap(s["protocol"]["examples"], current)
        if o > share:
            best, share = s["lineage"], o
    if best is not None and share >= OVERLAP:
        return best, share if best != test_hash else None
    return test_hash, None


def registering_runs(runs_dir: str | Path) -> Iterator[dict[str, Any]]:
    """The summary.json of each run that registered its lineage (it keeps the registered
    examples): what still names a lineage whose protocol file is gone."""
    for path in sorted(Path(runs_dir).glob("*/*/summary.json")):
        try:
            s = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        p = s.get("protocol") if isinstance(s, dict) else None
        if isinstance(p, dict) and p.get("examples") and s.get("lineage"):
            yield s
