"""Reading a finished (or crashed) run directory back: summary, resolved suite, records, examples.

Reports and MLflow logging work from these files alone, so `harness report RUN_DIR` can re-render
and `harness report RUN_DIR --log` can push a run whose tracking store was unreachable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness._util.jsonl import read_lines
from harness.data.dataset import load_dataset
from harness.errors import SuiteError
from harness.rundir.paths import RESULTS, STAGE_FILES, stage_scores_path
from harness.suite import SuiteFile, resolve

if TYPE_CHECKING:
    from harness.results import Summary


@dataclass
class RunFiles:
    path: Path
    summary: dict[str, Any]  # summary.json as written (schema 1 upgraded: `hypotheses` a list)
    suite: dict[str, Any]  # the resolved suite.yaml as a mapping ({} when absent)
    records: dict[str, list[dict[str, Any]]]  # variant -> records, in file order
    # example id -> {"input": ..., "expected": ...} (empty when the data can't be reloaded)
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: list[str] | None = None
    notes: list[str] = field(default_factory=list)  # what could not be read back, for the report
    result: Summary | None = None  # the same summary, validated (harness.results.Summary)

    @property
    def typed(self) -> Summary:
        """The summary as a validated `Summary` (what renderers read)."""
        from harness.results import parse_summary

        if self.result is None:
            self.result = parse_summary(self.summary, self.path / "summary.json")
        return self.result

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
        origin = self.suite.get("source")
        return Path(origin) if isinstance(origin, str) else None

    def variant_spec(self, name: str) -> dict[str, Any]:
        for v in self.suite.get("variants") or []:
            if isinstance(v, dict) and v.get("name") == name:
                return v
        return {}


def load_run(run_dir: str | Path, records: dict[str, list[dict]] | None = None) -> RunFiles:
    """Read a run directory. A missing/corrupt summary.json is a SuiteError naming the file.

    `records`: the run's records already in memory, stage scores joined (the end of `harness
    run`): used as they are instead of a second copy read from results/ (at 100k examples each
    copy is hundreds of MB)."""
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
    # Validated once here: an old file is upgraded, a foreign or newer one is a clear error.
    # (Imported here: pydantic's models cost the tracking child's start, which never reads.)
    from harness.results import parse_summary, upgrade

    typed = parse_summary(summary, summary_path)
    summary = upgrade(summary)
    suite: dict[str, Any] = {}
    suite_path = path / "suite.yaml"
    if suite_path.exists():
        loaded = yaml.safe_load(suite_path.read_text(encoding="utf-8"))
        suite = loaded if isinstance(loaded, dict) else {}
    if records is not None:
        run = RunFiles(path=path, summary=summary, suite=suite, records=records, result=typed)
    else:
        records = _read_records(path, summary)
        run = RunFiles(path=path, summary=summary, suite=suite, records=records, result=typed)
        join_stage_scores(run)
    run.examples, run.labels = _examples(run)
    return run


def _read_records(path: Path, summary: dict) -> dict[str, list[dict[str, Any]]]:
    records = {}
    variants = set(summary.get("variants") or {})
    for f in sorted((path / RESULTS).glob("*.jsonl")):
        if f.stem not in variants and f.stem.rsplit(".", 1)[-1] in STAGE_FILES:
            continue  # <variant>.judge.jsonl / .embedding.jsonl / .stages.jsonl: not records
        records[f.stem] = read_lines(f, on_torn="skip")
    return records


def join_stage_scores(run: RunFiles) -> None:
    """Put the post-call stages' per-record fields (judge, embedding cosine) back on the
    records, by (id, repeat), exactly as the run had them in memory when it summarised."""
    for variant, recs in run.records.items():
        stage = stage_scores_path(run.path, variant)
        if not stage.exists():
            continue
        by_key = {(r["id"], r.get("repeat", 0)): r for r in read_lines(stage, on_torn="skip")}
        for r in recs:
            fields = by_key.get((r.get("id"), r.get("repeat", 0)))
            if fields is not None:
                r.update({k: v for k, v in fields.items() if k not in ("id", "repeat")})


def _suite_and_data(run: RunFiles) -> tuple[Any, Any] | None:
    """The resolved Suite and its examples; None (and a note) when they no longer load."""
    try:
        suite = resolved_suite(run)
        return suite, load_dataset(suite, hash_files=False)
    except (SuiteError, OSError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        run.notes.append(
            f"inputs and expected answers not shown: the data no longer loads ({first})"
        )
        return None


def _examples(run: RunFiles) -> tuple[dict[str, dict[str, Any]], list[str] | None]:
    """Inputs and expected answers by example id, re-read from the suite's data files.

    The resolved suite points at the data; when the data moved or changed, the records' own
    `input`/`expected` (written since schema 2) are used, else tables fall back to ids only.
    """
    if not run.records:
        return {}, None
    if (loaded := _suite_and_data(run)) is None:
        # The data moved or the suite no longer loads: the records' own copy (schema 2).
        own = {
            r["id"]: {"input": r["input"], "expected": r.get("expected")}
            for recs in run.records.values()
            for r in recs
            if "input" in r and "id" in r
        }
        if own:
            run.notes[-1] = run.notes[-1].replace(
                "inputs and expected answers not shown",
                "inputs and expected answers read from results/ (not the data files)",
            )
        return own, None
    suite, dataset = loaded
    fields = suite.spec.data.inputs
    out = {}
    for e in dataset.test:
        value = e.inputs[fields[0]] if len(fields) == 1 else e.inputs
        out[e.id] = {"input": value, "expected": e.target}
    return out, dataset.labels


def resolved_suite(run: RunFiles):
    """The Suite model of the resolved suite.yaml (extra keys such as data hashes are ignored)."""
    from pydantic import ValidationError

    where = run.path / "suite.yaml"
    if not run.suite:
        raise SuiteError(
            f"{where}: missing or empty — the run's resolved suite is needed here; "
            "copy the suite.yaml the run was made with into its directory"
        )
    raw = {k: v for k, v in run.suite.items() if k in SuiteFile.model_fields}
    try:
        spec = SuiteFile.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise SuiteError(
            f"{where}: {key}: {first['msg']} — the run's resolved suite was edited; "
            "restore the suite.yaml the run was made with"
        ) from None
    # Relative data paths are relative to the original suite file when the run recorded it.
    return resolve(run.suite_origin or run.path / "suite.yaml", raw, spec, {})
