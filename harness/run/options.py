"""The options of one `harness run`, as one typed value (the CLI fills it from its flags)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import SuiteError


@dataclass
class RunOptions:
    """variants: run only these (None: all); limit: a stratified, deterministic subset of N test examples (a smoke run,
    kept out of the sunk-cost ledger);
    resume: None for a new run, "latest" (or "") for the suite's latest run, or a run id;
    workers: processes making the calls (None: up to one per core for large runs; 0: in this
    process); tracking_child: log to MLflow from a child process (the CLI's choice)."""

    variants: list[str] | tuple[str, ...] | None = None
    limit: int | None = None
    concurrency: int = 8
    no_cache: bool = False
    resume: str | None = None
    runs_dir: str | Path = "runs"
    workers: int | None = None
    tracking_uri: str | None = None
    tracking_child: bool = False
    junit: str | Path | None = None
    allow_inconclusive: bool = False
    console: Any = None  # a rich Console for the progress bar (default: stderr)
    show_progress: bool | None = None  # None: when stderr is a terminal
    checkpoints: bool = False  # evaluate a trained variant's checkpoints as extra variants

    def check(self) -> None:
        """Exit 2 before anything starts when a flag is out of range."""
        if self.concurrency < 1:
            raise SuiteError(f"--concurrency must be at least 1 (got {self.concurrency})")
        if self.limit is not None and self.limit < 1:
            raise SuiteError(f"--limit must be at least 1 (got {self.limit})")
