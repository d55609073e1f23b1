"""Where things live in a run directory `runs/<suite>/<run-id>/` (one place for the layout)."""

from __future__ import annotations

from pathlib import Path

RESULTS = "results"
# results/<variant>.<stage>.jsonl: the post-call stages' files, next to the variant records.
# judge/embedding hold one line per call (resume asks only what is missing); stages holds the
# merged per-record fields, so reading a run back joins them and never replays a stage.
STAGE_FILES = ("judge", "embedding", "stages")


def results_path(run_dir: str | Path, variant: str) -> Path:
    return Path(run_dir) / RESULTS / f"{variant}.jsonl"


def stage_path(run_dir: str | Path, variant: str, stage: str) -> Path:
    return Path(run_dir) / RESULTS / f"{variant}.{stage}.jsonl"


def stage_scores_path(run_dir: str | Path, variant: str) -> Path:
    return stage_path(run_dir, variant, "stages")


def suite_runs_dir(runs_dir: str | Path, suite_name: str) -> Path:
    return Path(runs_dir) / suite_name
