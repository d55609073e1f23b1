"""Examples: reading data files, mapping fields, deterministic sampling, stable ids, content hashes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness._util.paths import not_found
from harness.errors import SuiteError
from harness.suite import Suite

FORMATS = (".csv", ".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class Example:
    """One test or train record. `inputs` are what templates see; `target` never reaches a prompt."""

    id: str
    inputs: dict[str, Any]
    target: Any = None
    gold: Any = None
    record: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class Dataset:
    test: list[Example]
    train: list[Example]
    hashes: dict[str, str]  # suite-relative path -> sha256 of the file's bytes
    labels: list[str] | None

    def by_id(self) -> dict[str, Example]:
        return {e.id: e for e in self.test}

    def shard(self, index: int, count: int) -> Dataset:
        """The index-th (1-based) of `count` slices of the test examples: every count-th example
        in data order, so the slices are disjoint, cover the test set and differ in size by at
        most one. Train examples and labels stay whole (few-shot draws and macro-F1's classes
        are the unsharded run's)."""
        return replace(self, test=self.test[index - 1 :: count])


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shown(path: Path) -> str:
    """A path as a user would type it from here."""
    import os

    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def read_table(path: Path) -> list[dict[str, Any]]:
    """Read a table as a list of dicts. Every failure names the file and how to fix it."""
    where = shown(path)
    ext = _check_file(path, where)
    if ext == ".parquet":
        rows = _read_parquet(path, where)
    else:
        text = _decode(path.read_bytes(), where)
        if ext == ".csv":
            rows = _read_csv(where, text)
        elif ext == ".jsonl":
            rows = _read_jsonl(where, text)
        else:
            rows = _read_json(where, text)
    if not rows:
        raise SuiteError(f"{where}: no records — the file is empty")
    return rows


def _check_file(path: Path, where: str) -> str:
    """The data file's extension, once it is known to be a readable file of a known format."""
    if not path.exists():
        raise SuiteError(not_found(path, where))
    if path.is_dir():
        raise SuiteError(f"{where} is a directory — point at a data file ({', '.join(FORMATS)})")
    if not path.is_file():
        # /dev/zero, a FIFO or a socket (perhaps behind a symlink named data.csv): reading it
        # never ends or never means a table.
        raise SuiteError(
            f"{where} is not a regular file (a device, pipe or socket) — point at a data file"
        )
    ext = path.suffix.lower()
    if ext not in FORMATS:
        raise SuiteError(
            f"{where}: unsupported format {ext or '(none)'} — use one of {', '.join(FORMATS)}"
        )
    return ext


def _read_parquet(path: Path, where: str) -> list[dict[str, Any]]:
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises many types for a corrupt file
        raise SuiteError(f"{where}: cannot read parquet ({e}) — re-export the file") from None
    return df.to_dict(orient="records")


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise SuiteError(
            f"{where}:{line}: not UTF-8 (byte {e.start}) — save the file as UTF-8"
        ) from None


def _read_jsonl(where: str, text: str) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise SuiteError(
                f"{where}:{i}:{e.colno}: invalid JSON ({e.msg}) — one JSON object per line"
            ) from None
        if not isinstance(obj, dict):
            raise SuiteError(
                f"{where}:{i}: expected a JSON object per line, got {type(obj).__name__}"
            )
        rows.append(obj)
    return rows


def _read_json(where: str, text: str) -> list[dict[str, Any]]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise SuiteError(f"{where}:{e.lineno}:{e.colno}: invalid JSON ({e.msg})") from None
    if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
        raise SuiteError(
            f"{where}: expected a JSON list of records ([{{...}}, ...]) — use .jsonl for one object per line"
        )
    return obj


def _read_csv(where: str, text: str) -> list[dict[str, Any]]:
    """Every value as text ("007" stays "007", "NA" stays a label); blank lines skipped; a short
    row's missing fields are ""; a row with more fields than the header is an error (the
    standard library's csv: importing pandas for this cost ~0.4 s of every run's start)."""
    if not text.strip():
        raise SuiteError(f"{where}: no records — the file is empty")
    # strict: an unterminated quote is an error, not the rest of the file read as one field.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[dict[str, Any]] = []
    try:
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if header is None:
                # An empty header cell (a trailing comma) gets the name pandas gives it.
                header = [name or f"Unnamed: {i}" for i, name in enumerate(fields)]
                dup = next((c for i, c in enumerate(header) if c in header[:i]), None)
                if dup is not None:
                    raise SuiteError(f"{where}: duplicate column header {dup!r} — rename one")
                continue
            if len(fields) > len(header):
                raise SuiteError(
                    f"{where}:{reader.line_num}: {len(fields)} fields, but the header has "
                    f"{len(header)} — quote fields that contain commas"
                )
            rows.append(dict(zip(header, fields + [""] * (len(header) - len(fields)), strict=True)))
    except csv.Error as e:
        raise SuiteError(
            f"{where}:{reader.line_num}: cannot parse CSV ({e}) — quote fields that contain "
            'commas or line breaks, and double a quote inside a quoted field ("")'
        ) from None
    return rows


def _check_columns(rows, path: Path, needed: dict[str, str], suite: Suite):
    """Every row has every field the suite reads (all rows: ~1 s per million, and a row missing
    its input would be sent as "None")."""
    present = set().union(*(r.keys() for r in rows))
    for key, col in needed.items():
        if col not in present:
            raise suite.fail(
                f"column {col!r} not in {path.name} (columns: {', '.join(sorted(map(str, present)))}) — fix the name",
                tuple(key.split(".")),
            )
    inputs = {col for key, col in needed.items() if key.startswith("data.input")}
    per_row = [c for key, c in needed.items() if key != "data.gold"]  # gold may be absent
    for i, row in enumerate(rows):
        lacking = [c for c in per_row if c not in row or (c in inputs and row[c] is None)]
        if lacking:
            raise suite.fail(
                f"{path.name} record {i + 1} has no {lacking[0]!r} — fill it or drop the record",
                tuple(next(k for k, c in needed.items() if c == lacking[0]).split(".")),
            )


def _example_id(row: dict, fields: list[str]) -> str:
    canonical = json.dumps(
        {f: row.get(f) for f in fields}, sort_keys=True, default=str, ensure_ascii=False
    )
    return hashlib.sha1(canonical.encode()).hexdigest()[:12]


def to_examples(rows: list[dict], suite: Suite, split: str) -> list[Example]:
    spec = suite.spec.data
    out: list[Example] = []
    seen: dict[str, int] = {}
    id_fields = [*spec.inputs] + ([spec.target] if spec.target else [])
    for i, row in enumerate(rows):
        if spec.id:
            ex_id = str(row.get(spec.id))
            if ex_id in seen:
                raise suite.fail(
                    f"duplicate id {ex_id!r} in the {split} split (rows {seen[ex_id] + 1} and {i + 1}) — ids must be unique",
                    ("data", "id"),
                )
        else:
            ex_id = _example_id(row, id_fields)
            if ex_id in seen:
                # Identical rows stay distinct examples, with a stable suffix by occurrence.
                n = 2
                while f"{ex_id}-{n}" in seen:
                    n += 1
                ex_id = f"{ex_id}-{n}"
        seen[ex_id] = i
        target = row.get(spec.target) if spec.target else None
        out.append(
            Example(
                id=ex_id,
                inputs={f: row.get(f) for f in spec.inputs},
                target=_decode_target(target, suite.task),
                gold=row.get(spec.gold) if spec.gold else None,
                record=row,
            )
        )
    return out


def _decode_target(value: Any, task: str) -> Any:
    # Extraction targets may be stored as JSON text in CSV files.
    if task == "extraction" and isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def sample(examples: list[Example], n: int, seed: int, stratify: bool) -> list[Example]:
    """Deterministic subset, kept in file order. Stratified draws allocate by largest remainder."""
    import numpy as np

    if n >= len(examples):
        return list(examples)
    rng = np.random.default_rng(seed)
    if not stratify:
        keep = set(rng.permutation(len(examples))[:n].tolist())
        return [e for i, e in enumerate(examples) if i in keep]
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        groups.setdefault(json.dumps(e.target, sort_keys=True, default=str), []).append(i)
    keys = sorted(groups)
    quotas = {k: n * len(groups[k]) / len(examples) for k in keys}
    alloc = {k: int(q) for k, q in quotas.items()}
    leftover = n - sum(alloc.values())
    for k in sorted(keys, key=lambda k: (-(quotas[k] - alloc[k]), k))[:leftover]:
        alloc[k] += 1
    keep: set[int] = set()
    for k in keys:
        idx = groups[k]
        order = rng.permutation(len(idx))[: alloc[k]]
        keep.update(idx[j] for j in order)
    return [e for i, e in enumerate(examples) if i in keep]


def load_dataset(suite: Suite, limit: int | None = None, *, hash_files: bool = True) -> Dataset:
    """The suite's test and train examples. `hash_files=False` skips the content hashes (a run
    read back for its report needs the inputs, not a proof that the data is unchanged)."""
    spec = suite.spec.data
    hashes: dict[str, str] = {}
    splits: dict[str, list[Example]] = {}
    for split in ("test", "train"):
        rel = getattr(spec, split)
        if rel is None:
            splits[split] = []
            continue
        path = suite.resolve_path(rel)
        line, col = suite.locate(("data", split))
        try:
            rows = read_table(path)
        except SuiteError as e:
            raise SuiteError(
                e.message, file=suite.display_path, key=f"data.{split}", line=line, column=col
            ) from None
        _check_columns(rows, path, _needed_columns(suite, split), suite)
        if hash_files:
            hashes[rel] = file_hash(path)
        splits[split] = to_examples(rows, suite, split)

    test = splits["test"]
    if spec.target:
        _check_targets(suite, splits)
    _check_few_shot(suite, splits["train"])
    if spec.sample:
        test = sample(
            test, spec.sample.n, spec.sample.seed, spec.sample.stratify and spec.target is not None
        )
    # Labels from the whole test set a full run sees: a smoke run must not check only its
    # sample (an unknown label past it) nor prompt with fewer labels than the real run.
    labels = None
    if suite.task == "classification":
        labels = _labels(suite, test, splits["train"])
    if limit is not None:
        # A smoke run sees every class in proportion, not the first rows of a sorted file.
        seed = spec.sample.seed if spec.sample else 0
        test = sample(test, limit, seed, spec.target is not None)
    return Dataset(test=test, train=splits["train"], hashes=hashes, labels=labels)


def _needed_columns(suite: Suite, split: str) -> dict[str, str]:
    """The columns a split's records must have, each under the suite key that names it."""
    spec = suite.spec.data
    needed = {f"data.input.{f}" if len(spec.inputs) > 1 else "data.input": f for f in spec.inputs}
    if spec.target:
        needed["data.target"] = spec.target
    if spec.id:
        needed["data.id"] = spec.id
    if spec.gold and split == "test":
        needed["data.gold"] = spec.gold
    return needed


def _check_targets(suite: Suite, splits: dict[str, list[Example]]) -> None:
    """No empty target in the test split, nor in the train split when few-shot shows it."""
    spec = suite.spec.data
    shots = any(v.few_shot is not None for v in suite.variants)
    for split, examples in splits.items():
        if split == "train" and not shots:
            continue  # only few-shot shows train targets (export skips empty ones itself)
        # An empty train target would be shown as a few-shot answer ("Answer: ").
        missing = [e.id for e in examples if e.target is None or e.target == ""]
        if missing:
            raise suite.fail(
                f"{len(missing)} {split} record(s) have an empty {spec.target!r} (first id {missing[0]}) — fill or drop them",
                ("data", "target"),
            )


def _check_few_shot(suite: Suite, train: list[Example]) -> None:
    for v in suite.variants:
        if v.few_shot is not None and v.few_shot.k > len(train):
            raise suite.fail(
                f"few_shot.k is {v.few_shot.k} but the train split has {len(train)} "
                f"records — lower k or add train data",
                ("variants", v.index, "few_shot", "k"),
            )


def _labels(suite: Suite, test: list[Example], train: list[Example]) -> list[str]:
    declared = suite.spec.labels
    if declared == "from-data" or declared is None:
        return sorted({str(e.target) for e in test} | {str(e.target) for e in train})
    unknown = sorted({str(e.target) for e in test} - set(declared))
    if unknown:
        raise suite.fail(
            f"test targets not in the label list: {unknown[:5]}{' ...' if len(unknown) > 5 else ''} — add them to `labels` or use `labels: from-data`",
            ("labels",),
        )
    return list(declared)
