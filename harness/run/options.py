"""The options of one `harness run`, as one typed value (the CLI fills it from its flags)."""

from __future__ import annotations

import math
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
    pr_comment: str | Path | None = None  # markdown of the verdict table for a PR comment
    allow_inconclusive: bool = False
    console: Any = None  # a rich Console for the progress bar (default: stderr)
    show_progress: bool | None = None  # None: when stderr is a terminal
    shard: str | None = None  # "i/N": the i-th of N deterministic slices of the test examples
    timings: bool = False  # print the phase breakdown and write timings.json
    batch: bool = False  # send the calls through the provider's batch API (harness.run.batch)
    batch_poll_s: float = 30.0  # seconds between batch status polls
    checkpoints: bool = False  # evaluate a trained variant's checkpoints as extra variants

    def check(self) -> None:
        """Exit 2 before anything starts when a flag is out of range."""
        if self.concurrency < 1:
            raise SuiteError(f"--concurrency must be at least 1 (got {self.concurrency})")
        if self.limit is not None and self.limit < 1:
            raise SuiteError(f"--limit must be at least 1 (got {self.limit})")
        if self.shard is not None:
            parse_shard(self.shard)
        if not math.isfinite(self.batch_poll_s):
            raise SuiteError(f"--batch-poll must be a number of seconds (got {self.batch_poll_s})")
        for flag, target in (("--junit", self.junit), ("--pr-comment", self.pr_comment)):
            if target:
                check_writable_path(flag, target)


def check_writable_path(flag: str, target: str | Path) -> None:
    """Exit 2 before any call for an output file that can never be written (a directory, or a
    path under a file): found only after the calls, it would be exit 4 with everything paid."""
    path = Path(target)
    if path.is_dir():
        raise SuiteError(f"{flag} {target} is a directory — name a file")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise SuiteError(
                    f"{flag} {target}: {parent} is a file, not a directory — choose another path"
                )
            break


def parse_shard(text: str) -> tuple[int, int]:
    """ "2/3" -> (2, 3); exit 2 for anything else, saying what is accepted."""
    parts = str(text).strip().split("/")
    try:
        index, count = (int(x) for x in parts)
    except ValueError:
        index = count = 0
    if len(parts) != 2 or not 1 <= index <= count:
        raise SuiteError(
            f"--shard {text}: expected i/N with 1 <= i <= N (e.g. --shard 2/3 for the second "
            "of three slices)"
        )
    return index, count
