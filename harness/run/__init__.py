"""`harness run` as a library: `run_suite(path, RunOptions(...)) -> RunOutcome`."""

from harness.run.options import RunOptions
from harness.run.pipeline import RunOutcome, run_suite

__all__ = ["RunOptions", "RunOutcome", "run_suite"]
