"""Head starts and a quick exit: imports overlapped with the calls, and no slow teardown."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.report import plots
from harness.track.store import prewarm

if TYPE_CHECKING:
    from harness.run.execute import PoolSlot


def prewarm_post_run(summary: bool = True) -> None:
    """Import what the steps after the calls need (scikit-learn and SciPy for the summary,
    matplotlib for the report: ~1 s of CPU) in a thread while this process waits
    — on the calls, or (`summary=False`, the summary is built) on the logging child's MLflow
    import for the guard's history. Not while this process is busy: the import would only
    interleave with its work.
    """

    def load() -> None:
        try:
            if summary:
                import scipy.sparse  # noqa: F401
                import scipy.stats  # noqa: F401
                import sklearn.metrics  # noqa: F401

            plots.load_pyplot()  # the Agg backend, chosen before pyplot loads
        except Exception:  # only a head start: the steps import (and report) for real later
            pass

    threading.Thread(target=load, name="harness-post-run-prewarm", daemon=True).start()


def choose_warm(pool: PoolSlot, logger: Any) -> Callable[[], None]:
    """How MLflow's import is warmed while the calls run (the logging child's, else a thread
    here), started now when no worker pool will send the calls."""
    # Without the child: import MLflow in a thread while the calls run; only after the fork
    # (import locks). With workers, wait for their first answer: until then they import
    # litellm, and MLflow would compete for CPU.
    warm = logger.warm if logger is not None else prewarm
    if pool.pool is None:
        warm()
    return warm


def warm_before_calls(pool: PoolSlot, misses: list, warm: Callable[[], None]) -> None:
    """Once the calls still to make are known: the imports after the calls overlap the wait."""
    if not misses:
        pool.close(now=True)  # everything cached: don't wait for the workers' import
        if pool.pool is not None:
            warm()  # no first answer will come to trigger it
    elif pool.pool is None:
        prewarm_post_run()  # this process will wait on the calls (with workers: at the first answer)


def exit_process(code: int) -> None:
    """End `harness run` with `code`, skipping the interpreter's teardown when that is safe.

    Tearing down scikit-learn, SciPy, pandas and matplotlib takes ~0.3-0.5 s after all the work
    is done and flushed. Everything the run writes is closed by now (results, cache, summary,
    report; MLflow logged in its child), so a real `harness run` process exits at once. Under
    a test runner or an embedding host (streams swapped, or MLflow loaded in this process,
    which may still flush) it exits normally.
    """
    real = sys.stdout is sys.__stdout__ and sys.stderr is sys.__stderr__
    if real and "mlflow" not in sys.modules:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        else:
            os._exit(code)
    sys.exit(code)
