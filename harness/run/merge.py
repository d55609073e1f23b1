"""`harness merge RUN_DIR…`: shard runs (`harness run --shard i/N`) joined into one run.

A run spread over a CI matrix, a Kubernetes indexed Job or a Slurm array leaves N shard run
directories; merging them builds one run directory whose records are the shards' records and
whose summary, verdict, report and MLflow run come from the same code as `harness run`
(harness.run.conclude.conclude), over the whole dataset — so it equals an unsharded run.
Shards of different suites, data, variants, limits or shard counts are refused, as are missing,
repeated or unfinished shards: a merged verdict over the wrong examples would be a silent
wrong number.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness._util.jsonl import read_lines, write_lines_atomic
from harness.data.dataset import load_dataset
from harness.errors import SuiteError
from harness.run.conclude import ConcludeOptions, RunOutcome, conclude
from harness.run.options import RunOptions, parse_shard
from harness.rundir.paths import STAGE_FILES, results_path, stage_path
from harness.rundir.reader import RunFiles, join_stage_scores, resolved_suite
from harness.rundir.writer import create_run, write_stage_scores
from harness.score.registry import validate_suite
from harness.score.stages import run_post_call_stages
from harness.stats.summary import partial_cost_note

# What shards of one run share; each names the key of the resolved suite.yaml / its run block.
SAME = (
    ("name", "suite name"),
    ("suite_hash", "suite (variants, prompts, metrics, guard)"),
    ("data_hashes", "data files"),
)
SAME_RUN = (("variants", "variants (--variant)"), ("limit", "--limit"))


def _read_shard(path: Path) -> tuple[dict, dict]:
    import json

    import yaml

    if not (path / "suite.yaml").exists():
        raise SuiteError(f"{path}: not a run directory (no suite.yaml) — pass runs/<suite>/<id>")
    resolved = yaml.safe_load((path / "suite.yaml").read_text(encoding="utf-8")) or {}
    meta = resolved.get("run") or {}
    if not meta.get("shard"):
        raise SuiteError(
            f"{path}: not a shard (it ran without --shard) — merge only the run directories "
            "of `harness run --shard i/N`"
        )
    summary_path = path / "summary.json"
    if not summary_path.exists():
        raise SuiteError(
            f"{path}: shard {meta['shard']} did not finish — finish it with "
            f"`harness run SUITE.yaml --resume {path.name}` and merge again"
        )
    return resolved, json.loads(summary_path.read_text(encoding="utf-8"))


def check_shards(dirs: list[Path]) -> list[tuple[Path, dict, dict]]:
    """The shards in index order, after every check that they make one whole run."""
    if not dirs:
        raise SuiteError("harness merge: pass the shard run directories (runs/<suite>/<id>)")
    shards = [(d, *_read_shard(d)) for d in dirs]
    first_dir, first, _ = shards[0]
    for d, resolved, _ in shards[1:]:
        for key, what in SAME:
            if resolved.get(key) != first.get(key):
                raise SuiteError(
                    f"{d} and {first_dir} ran different {what} ({key} differs) — shards of one "
                    "run share the suite, its data and its options; re-run the odd one out"
                )
        for key, what in SAME_RUN:
            if resolved["run"].get(key) != first["run"].get(key):
                raise SuiteError(
                    f"{d} and {first_dir} ran with different {what}: "
                    f"{resolved['run'].get(key)!r} vs {first['run'].get(key)!r}"
                )
    by_index: dict[int, Path] = {}
    count = parse_shard(first["run"]["shard"])[1]
    for d, resolved, _ in shards:
        index, n = parse_shard(resolved["run"]["shard"])
        if n != count:
            raise SuiteError(
                f"{d} is shard {index}/{n} but {first_dir} is one of {count} — shards of one run "
                "are cut the same way"
            )
        if index in by_index:
            raise SuiteError(
                f"shard {index}/{count} given twice: {by_index[index]} and {d} — pass each once"
            )
        by_index[index] = d
    missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in by_index]
    if missing:
        raise SuiteError(
            f"shard {', '.join(missing)} missing — a merged run covers every example; pass "
            f"all {count} shard run directories"
        )
    return sorted(shards, key=lambda s: parse_shard(s[1]["run"]["shard"])[0])


def merge_runs(dirs: list[str | Path], options: RunOptions | None = None) -> RunOutcome:
    """One run directory under options.runs_dir from the shard directories, concluded as a run."""
    opts = options or RunOptions()
    shards = check_shards([Path(d) for d in dirs])
    first = shards[0][1]
    files = RunFiles(path=shards[0][0], summary=shards[0][2], suite=first, records={})
    suite = validate_suite(resolved_suite(files))
    limit = first["run"].get("limit")
    variants: list[str] = list(first["run"].get("variants") or [v.name for v in suite.variants])
    dataset = load_dataset(suite, limit)
    changed = [p for p, h in dataset.hashes.items() if (first.get("data_hashes") or {}).get(p) != h]
    if changed:
        raise SuiteError(
            f"{changed[0]} changed since the shards ran — the merged run would score answers "
            "against other data; re-run the shards"
        )
    records, notes = _joined_records(shards, dataset, suite, variants)
    run = create_run(
        opts.runs_dir,
        suite,
        dataset,
        variants=variants,
        limit=limit,
        merged_from=[d.name for d, _, _ in shards],
    )
    for v, recs in records.items():
        write_lines_atomic(results_path(run.path, v), recs)
        for stage in STAGE_FILES[:-1]:  # judge/embedding calls: the stage re-merges, never re-asks
            lines = [
                line
                for d, _, _ in shards
                if stage_path(d, v, stage).exists()
                for line in read_lines(stage_path(d, v, stage), on_torn="skip")
            ]
            if lines:
                write_lines_atomic(stage_path(run.path, v, stage), lines)
    judge = run_post_call_stages(
        suite,
        dataset,
        records,
        run.path,
        concurrency=opts.concurrency,
        no_cache=opts.no_cache,
        runs_dir=opts.runs_dir,
    )
    if judge is not None:
        write_stage_scores(run.path, records)
    started = sorted(str(s[1]["run"].get("started_at") or "") for s in shards)
    outcome = RunOutcome(
        run_dir=run.path,
        run_id=run.run_id,
        suite=suite,
        dataset=dataset,
        variants=variants,
        records=records,
        started_at=started[0] or run.meta["started_at"],
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        wall_s=0.0,
        notes=notes,
    )
    return conclude(
        outcome,
        judge,
        ConcludeOptions(
            opts=opts,
            limit=limit,
            # The shards' hash of the suite as written (this Suite is rebuilt from the resolved file).
            extra_meta={
                "merged_from": [d.name for d, _, _ in shards],
                "suite_hash": first["suite_hash"],
            },
        ),
    )


def _joined_records(
    shards, dataset, suite, variants: list[str]
) -> tuple[dict[str, list[dict]], dict[str, list[str]]]:
    """Each variant's records from every shard in data order, checked to be exactly the run's
    (example, repeat) pairs; and the engine notes the shards reported."""
    position = {e.id: i for i, e in enumerate(dataset.test)}
    records: dict[str, list[dict]] = {}
    notes: dict[str, set[str]] = {}
    count = len(shards)
    for v in variants:
        repeats = suite.variant(v).repeats
        recs: list[dict] = []
        for d, resolved, summary in shards:
            index = parse_shard(resolved["run"]["shard"])[0]
            files = RunFiles(
                path=d,
                summary=summary,
                suite=resolved,
                records={v: read_lines(results_path(d, v), on_torn="skip")},
            )
            join_stage_scores(files)
            own = {(e.id, r) for e in dataset.shard(index, count).test for r in range(repeats)}
            got = {(str(r.get("id")), int(r.get("repeat", 0))) for r in files.records[v]}
            if got != own:
                lacking, foreign = len(own - got), len(got - own)
                raise SuiteError(
                    f"{d}: variant {v!r} of shard {index}/{count} has "
                    + (f"{lacking} missing result(s)" if lacking else "")
                    + (" and " if lacking and foreign else "")
                    + (f"{foreign} result(s) of examples outside its slice" if foreign else "")
                    + f" — finish it with `harness run SUITE.yaml --resume {d.name}`, "
                    "or re-run that shard"
                )
            recs.extend(files.records[v])
            entry: dict[str, Any] = (summary.get("variants") or {}).get(v) or {}
            # The engine's notes; the summary's own cost note is recounted for the whole run.
            own_note = partial_cost_note(entry) if entry.get("unpriced_calls") else None
            notes.setdefault(v, set()).update(n for n in entry.get("notes") or [] if n != own_note)
        recs.sort(key=lambda r: (position[str(r["id"])], int(r.get("repeat", 0))))
        records[v] = recs
    return records, {k: sorted(v) for k, v in notes.items()}
