"""The run directory `runs/<suite>/<run-id>/`: resolved suite, per-variant JSONL results, resume.

Records are appended as calls finish. Each line is written to the OS before `append` returns
(write-through), so a kill -9 of harness loses no answered call: `--resume` repeats at most the
calls that were in flight. Only fsync (which matters when the machine itself goes down) is
batched, by a background thread every `interval` seconds, so the event loop never waits on the
disk. A kill can leave a half-written last line; resume cuts it off before appending.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness._util.jsonl import read_valid_prefix, write_lines_atomic
from harness.errors import SuiteError
from harness.rundir.paths import RESULTS, results_path, stage_scores_path, suite_runs_dir
from harness.suite import VariantSpec, suite_hash
from harness.suite.secrets import redact


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


# ---------------------------------------------------------------- the run directory


@dataclass
class RunDir:
    path: Path
    suite_name: str
    run_id: str
    meta: dict[str, Any] = field(default_factory=dict)  # the `run:` block of suite.yaml
    suite_doc: dict[str, Any] = field(default_factory=dict)  # its suite.yaml, as written then

    @property
    def results_dir(self) -> Path:
        return self.path / RESULTS

    def results_path(self, variant: str) -> Path:
        return results_path(self.path, variant)

    def records(self, variant: str) -> list[dict]:
        return read_valid_prefix(self.results_path(variant))[0]

    def prepare_resume(self, variant: str) -> set[tuple[str, int]]:
        """Completed (id, repeat) pairs of a variant; drops torn lines and error records.

        Error records are dropped so resume gives failed calls another chance; answered calls
        are never repeated. The file is rewritten atomically when anything is dropped.
        """
        path = self.results_path(variant)
        records, valid = read_valid_prefix(path)
        kept: dict[tuple[str, int], dict] = {}
        for r in records:
            if r.get("error") is None and "id" in r:
                kept[(str(r["id"]), int(r.get("repeat", 0)))] = r
        if path.exists() and (len(kept) != len(records) or valid != path.stat().st_size):
            write_lines_atomic(path, list(kept.values()))
        return set(kept)


def create_run(
    runs_dir: str | Path,
    suite,
    dataset,
    *,
    variants: list[str],
    limit: int | None,
    shard: str | None = None,
    merged_from: list[str] | None = None,
    no_cache: bool = False,
) -> RunDir:
    run_id = new_run_id()
    path = suite_runs_dir(runs_dir, suite.name) / run_id
    while path.exists():  # two runs in the same second
        run_id = new_run_id()
        path = suite_runs_dir(runs_dir, suite.name) / run_id
    (path / RESULTS).mkdir(parents=True)
    meta = {"run_id": run_id, "variants": variants, "limit": limit, "started_at": _now()}
    if shard is not None:
        meta["shard"] = shard  # "i/N": `harness merge` checks the slices add up
    if merged_from is not None:
        meta["merged_from"] = merged_from
    if no_cache:
        meta["no_cache"] = True  # `--resume` keeps it: the cache stays out of the whole run
    write_resolved_suite(path / "suite.yaml", suite, dataset, meta)
    return RunDir(path=path, suite_name=suite.name, run_id=run_id, meta=meta)


def open_run(runs_dir: str | Path, suite, run_id: str | None) -> RunDir:
    """The run to resume: `run_id`, or the latest run of the suite when None/'latest'."""
    import yaml

    base = suite_runs_dir(runs_dir, suite.name)
    if run_id in (None, "", "latest"):
        candidates = (
            sorted(p for p in base.glob("*") if (p / "suite.yaml").exists())
            if base.exists()
            else []
        )
        if not candidates:
            raise SuiteError(
                f"--resume: no run of suite {suite.name!r} under {base} — start one without --resume"
            )
        path = candidates[-1]
    else:
        path = base / run_id
        if not (path / "suite.yaml").exists():
            found = sorted(p.name for p in base.glob("*")) if base.exists() else []
            raise SuiteError(
                f"--resume: no run {run_id!r} under {base}"
                + (
                    f" — runs: {', '.join(found[-5:])}"
                    if found
                    else " — start one without --resume"
                )
            )
    resolved = yaml.safe_load((path / "suite.yaml").read_text(encoding="utf-8")) or {}
    meta = resolved.get("run") or {}
    return RunDir(
        path=path,
        suite_name=suite.name,
        run_id=path.name,
        meta=meta | {"data_hashes": resolved.get("data_hashes", {})},
        suite_doc=resolved,
    )


# Keys of the resolved suite.yaml that describe the run, not the settings the answers depend on
# (`defaults` are compared where they apply: in the resolved variants).
RUN_KEYS = ("source", "suite_hash", "data_hashes", "run", "description", "defaults")


def changed_settings(run: RunDir, suite) -> list[str]:
    """What differs between the suite a run started with and `suite`, one line per setting
    ("variants.zero-shot.user (suite.yaml:14): 'Q: {{ text }}' → 'Question: {{ text }}'"),
    for the variants the run holds. Credentials compare redacted, as both are stored."""
    import yaml

    def comparable(doc: dict) -> dict:
        doc = {k: v for k, v in doc.items() if k not in RUN_KEYS}
        doc["variants"] = {
            v.get("name"): v
            for v in doc.get("variants") or []
            if v.get("name") in (run.meta.get("variants") or [v.get("name")])
        }
        return yaml.safe_load(yaml.safe_dump(doc))  # the same types as the file read back

    before, now = comparable(run.suite_doc), comparable(resolved_doc(suite))
    index = {v.name: v.index for v in suite.variants}
    lines = []
    for key, old, new in _differences(before, now):
        where = key
        if key[0] == "variants" and key[1] in index:
            where = ("variants", index[key[1]], *key[2:])
            if where not in suite.locations and ("defaults", *key[2:]) in suite.locations:
                where = ("defaults", *key[2:])  # inherited: the line that sets it
        line, _ = suite.locate(where)
        at = f" ({suite.display_path}:{line})" if line else ""
        lines.append(f"{'.'.join(map(str, key))}{at}: {_shown(old)} → {_shown(new)}")
    return lines


_ABSENT = object()


def _differences(a: Any, b: Any, key: tuple = ()) -> list[tuple[tuple, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in [*a, *(k for k in b if k not in a)]:
            out += _differences(a.get(k, _ABSENT), b.get(k, _ABSENT), (*key, k))
        return out
    return [] if a == b else [(key, a, b)]


def _shown(value: Any) -> str:
    if value is _ABSENT:
        return "(not set)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def resolved_doc(suite) -> dict[str, Any]:
    """The suite's settings as a run stores them: top-level keys as written, variants resolved
    (defaults and extends applied), credentials redacted."""
    variants = []
    for v in suite.variants:
        dumped = v.model_dump(mode="json", exclude_none=True)
        if dumped.get("finetune") is not None:
            # Its `finetune:<name>` model is a placeholder the loader refuses as typed; loading
            # the file sets it again (a report of such a run lost its inputs and answers).
            dumped.pop("model", None)
        variants.append(
            {
                k: val
                for k, val in dumped.items()
                if k in VariantSpec.model_fields and k != "extends"
            }
        )
    doc = {k: v for k, v in suite.raw.items() if k != "variants"}
    doc["variants"] = variants
    return redact(doc)


def write_resolved_suite(path: Path, suite, dataset, meta: dict) -> None:
    """The suite as run: top-level keys as written, variants resolved, data hashes, run options.

    The top level stays a valid suite (plus `source`, `suite_hash`, `data_hashes`, `run`), so a
    report can rebuild the Suite from this file alone. No credential is written (`redact`).
    """
    import yaml

    doc = resolved_doc(suite)
    doc["source"] = str(suite.path)
    doc["suite_hash"] = suite_hash(suite)
    doc["data_hashes"] = dict(dataset.hashes)
    doc["run"] = {**meta, "harness_version": __version__}
    text = "# Resolved by harness: the suite as run (defaults and extends applied), data hashes, run options.\n"
    text += yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# ---------------------------------------------------------------- appending


class ResultsWriter:
    """Appends records to results/<variant>.jsonl: written through to the OS on `append`,
    fsync'd in batches by a background thread.

    The guarantee (tests/cli/test_durability.py kills runs and counts paid calls): when `append`
    returns, the line is in the file. Never hold records back in memory to batch the writes.
    """

    def __init__(self, run: RunDir, *, interval: float = 0.2):
        self.run = run
        self.interval = interval
        self._lock = threading.Lock()  # the loop, the fsync thread and close() never interleave
        self._stop = threading.Event()
        self._dirty: set[str] = set()
        self._files: dict[str, Any] = {}
        self.written = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._sync_loop, name="results-fsync", daemon=True)
        self._thread.start()

    def append(self, variant: str, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            if self._error is not None:
                return  # surfaced by close(): a full disk must not pass silently
            try:
                f = self._files.get(variant)
                if f is None:
                    path = self.run.results_path(variant)
                    f = self._files[variant] = open(path, "a", encoding="utf-8")  # noqa: SIM115
                f.write(line)
                f.flush()  # to the OS now: a killed process loses nothing
            except OSError as e:
                self._error = e
                return
            self._dirty.add(variant)
            self.written += 1

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sync()

    def _sync(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            try:
                for variant in dirty:
                    os.fsync(self._files[variant].fileno())
            except OSError as e:
                self._error = self._error or e

    def flush(self) -> None:
        """fsync everything appended so far."""
        self._sync()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sync()
        with self._lock:
            for f in self._files.values():
                f.close()
            self._files.clear()
        if self._error is not None:
            raise self._error


# Fields the post-call stages (judge, embedding cosine) set on a record; persisted per record.
STAGE_FIELDS = ("scores", "reasons", "judge")


def write_stage_scores(run_dir: str | Path, records: dict[str, list[dict]]) -> None:
    """results/<variant>.stages.jsonl: each record's fields after the post-call stages, keyed by
    (id, repeat), so a run read back joins them instead of replaying the stages. Written whole
    (a resume re-merges every record), for variants whose records the stages changed."""
    for variant, recs in records.items():
        rows = [
            {
                "id": r["id"],
                "repeat": r.get("repeat", 0),
                **{k: r[k] for k in STAGE_FIELDS if k in r},
            }
            for r in recs
        ]
        write_lines_atomic(stage_scores_path(run_dir, variant), rows)
