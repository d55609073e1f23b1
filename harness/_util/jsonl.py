"""Reading the run directory's JSONL files, with the torn-line policy said at each call.

Records are appended and fsynced in batches, so a kill can leave a half-written last line.
Two policies, both explicit:
- "stop": the valid prefix only (what resume keeps before appending; a torn line ends it);
- "skip": every line that parses (reports and stages: a torn line is simply not there yet).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Literal

TornLinePolicy = Literal["stop", "skip"]


def read_valid_prefix(path: Path) -> tuple[list[dict[str, Any]], int]:
    """(records, byte length of the valid prefix). A torn or corrupt line ends the valid part."""
    records: list[dict[str, Any]] = []
    valid = 0
    if not path.exists():
        return records, 0
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end == -1:
            break  # no newline: the last write was cut short
        line = data[pos:end]
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
        pos = end + 1
        valid = pos
    return records, valid


def read_lines(path: Path, *, on_torn: TornLinePolicy) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file ([] when it does not exist), per the torn-line policy."""
    if on_torn == "stop":
        return read_valid_prefix(path)[0]
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def write_lines_atomic(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace `path` with `rows`, one JSON object per line, fsynced before the rename."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, value: Any) -> None:
    """Replace `path` with `value` as indented JSON (a reader never sees half a file). The temp
    file is this writer's own: two processes saving one file (two runs giving a registered
    protocol its baseline scores) must not rename each other's."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(
            json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
        )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
