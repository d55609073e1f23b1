"""Reading a finished (or crashed) run directory back: summary, resolved suite, records, examples.

Reports and MLflow logging work from these files alone, so `harness report RUN_DIR` can re-render
and `harness report RUN_DIR --log` can push a run whose tracking store was unreachable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from harness.errors import SuiteError


@dataclass
class RunFiles:
    path: Path
    summary: dict[str, Any]
    suite: dict[str, Any]  # the resolved suite.yaml as a mapping ({} when absent)
    records: dict[str, list[dict[str, Any]]]  # variant -> records, in file order
    # example id -> {"input": ..., "expected": ...} (empty when the data can't be reloaded)
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: list[str] | None = None

    @property
    def suite_name(self) -> str:
        return str(self.summary.get("suite") or self.suite.get("name") or self.path.parent.name)

    @property
    def variants(self) -> list[str]:
        """Variant names in summary order, then any with results but no summary entry."""
        names = list(self.summary.get("variants", {}))
        return names + [v for v in self.records if v not in names]

    @property
    def suite_origin(self) -> Path | None:
        """The original suite file, when the run recorded it (relative data paths start there)."""
        origin = self.suite.get("suite_path") or self.suite.get("source") or self.suite.get("path")
        return Path(origin) if isinstance(origin, str) else None

    def variant_spec(self, name: str) -> dict[str, Any]:
        for v in self.suite.get("variants") or []:
            if isinstance(v, dict) and v.get("name") == name:
                return v
        return {}


def load_run(run_dir: str | Path) -> RunFiles:
    """Read a run directory. A missing/corrupt summary.json is a SuiteError naming the file."""
    import yaml

    path = Path(run_dir)
    if not path.is_dir():
        raise SuiteError(f"run directory not found: {path} — pass runs/<suite>/<run-id>")
    summary_path = path / "summary.json"
    if not summary_path.exists():
        raise SuiteError(
            f"{summary_path} not found — the run did not finish; finish it with "
            "`harness run SUITE.yaml --resume`"
        )
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SuiteError(f"{summary_path}:{e.lineno}:{e.colno}: invalid JSON ({e.msg})") from None
    suite: dict[str, Any] = {}
    suite_path = path / "suite.yaml"
    if suite_path.exists():
        loaded = yaml.safe_load(suite_path.read_text(encoding="utf-8"))
        suite = loaded if isinstance(loaded, dict) else {}
    records = {}
    variants = set(summary.get("variants") or {})
    for f in sorted((path / "results").glob("*.jsonl")):
        if f.stem not in variants and f.stem.rsplit(".", 1)[-1] in STAGE_FILES:
            continue  # <variant>.judge.jsonl / .embedding.jsonl: judgements, not records
        records[f.stem] = read_records(f)
    run = RunFiles(path=path, summary=summary, suite=suite, records=records)
    data = cache(lambda: _suite_and_data(run))  # loaded once, and only when needed
    run.examples, run.labels = _examples(run, data)
    _merge_judgements(run, data)
    return run


def _suite_and_data(run: RunFiles) -> tuple[Any, Any] | None:
    """The resolved Suite and its dataset; None when the suite or its data no longer load."""
    try:
        from harness.data import load_dataset

        suite = _resolved_suite(run)
        return suite, load_dataset(suite)
    except Exception:  # the data moved or the suite no longer loads
        return None


# results/<variant>.<stage>.jsonl files written by the judge stage (harness.judge, similarity).
STAGE_FILES = ("judge", "embedding")


def _merge_judgements(run: RunFiles, data) -> None:
    """Put the judge stage's scores back on the records, as the runner had them in memory
    (scores["judge"], scores["preference"], record["judge"] samples, reasons["judge"]).

    The judgements are keyed by what was judged, so matching them needs the suite and the data;
    when those no longer load, the records stay as written (the summary keeps the totals).
    """
    stage = [f for s in STAGE_FILES for f in (run.path / "results").glob(f"*.{s}.jsonl")]
    if not stage or not run.records or (loaded := data()) is None:
        return
    try:
        from harness.judge import merge_judgements

        merge_judgements(*loaded, run.records, run.path)
    except Exception:  # judgements that no longer match: records as written
        return


def read_records(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            # A crash can leave a half-written last line; resume rewrites it, reports skip it.
            continue
    return out


def _examples(run: RunFiles, data) -> tuple[dict[str, dict[str, Any]], list[str] | None]:
    """Inputs and expected answers by example id, re-read from the suite's data files.

    Records hold ids, not inputs (the data can be large and private); the resolved suite points
    at the data. When the data moved or changed, tables fall back to ids only.
    """
    found = _examples_from_records(run)
    if found:
        return found, None
    if (loaded := data()) is None:  # the data moved or the suite no longer loads: ids only
        return {}, None
    suite, dataset = loaded
    fields = suite.spec.data.inputs
    out = {}
    for e in dataset.test:
        value = e.inputs[fields[0]] if len(fields) == 1 else e.inputs
        out[e.id] = {"input": value, "expected": e.target}
    return out, dataset.labels


def _examples_from_records(run: RunFiles) -> dict[str, dict[str, Any]]:
    # If the engine writes input/expected into records, prefer them (no data re-read needed).
    out = {}
    for recs in run.records.values():
        for r in recs:
            if "expected" in r or "input" in r:
                out.setdefault(r["id"], {"input": r.get("input"), "expected": r.get("expected")})
    return out


def _resolved_suite(run: RunFiles):
    """The Suite model of the resolved suite.yaml (extra keys such as data hashes are ignored)."""
    from harness.suite import SuiteFile, resolve

    raw = {k: v for k, v in run.suite.items() if k in SuiteFile.model_fields}
    spec = SuiteFile.model_validate(raw)
    # Relative data paths are relative to the original suite file when the run recorded it.
    return resolve(run.suite_origin or run.path / "suite.yaml", raw, spec, {})
