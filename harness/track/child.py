"""MLflow logging of a `harness run` in a short-lived child process.

`import mlflow` costs ~2 s of CPU and ~200 MB of memory. In the `harness run` process it would
make that process the largest of the run and put the import on the run's critical path. So the
CLI starts this child when the run starts (its interpreter start-up overlaps the run); the parent
says `warm` when the import may take a core — at the first answer, so it never competes with the
workers' litellm import, or at once when everything came from the cache — and the child imports
MLflow while the run goes on. Then it waits for one request on stdin — the run directory and the
tracking URI, sent once summary.json is written — and logs the run (`harness.track.log.begin_log`)
while the parent renders the report; on `finish` it adds the report files and answers one JSON
line on stdout: `{"run_id": ...}` or `{"error": <TrackingError message>}`. When the parent exits
or never asks (a suite error, Ctrl-C), stdin reaches EOF and the child exits; after the request
but before `finish`, it first deletes the runs it logged.

A process that has already imported MLflow (a notebook, the test suite) logs in-process: there
the import is paid and the child would only add a second copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from harness.errors import TrackingError
from harness.track import history, log, store


class TrackingChild:
    """Parent side: `start()` early, `warm()`, `begin(run_dir, uri)` once summary.json is written,
    `log(run_dir, uri)` once the report is, `close()` always."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.warmed = False
        self.begun = False

    def start(self) -> TrackingChild:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness.track.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        return self

    def warm(self) -> None:
        """Let the child import MLflow now (idempotent)."""
        if self.warmed or self.proc is None:
            return
        self.warmed = True
        with contextlib.suppress(OSError):
            self.proc.stdin.write("warm\n")
            self.proc.stdin.flush()

    def begin(self, run_dir: str | Path, uri: str) -> None:
        """summary.json is written: the child logs all but the report files while the parent
        renders them (idempotent; `log` sends it if it was not sent)."""
        if self.begun or self.proc is None:
            return
        self.begun = True
        # run_dir as given (relative to cwd): the messages name it as the user wrote it.
        request = {"run_dir": str(run_dir), "uri": uri, "cwd": os.getcwd()}
        with contextlib.suppress(OSError):  # a child that died is reported by `log`
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()

    def log(self, run_dir: str | Path, uri: str) -> str:
        """Same contract as `log_run`: the parent run id, or TrackingError."""
        proc = self.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        self.begin(run_dir, uri)
        try:
            proc.stdin.write("finish\n")  # the report files are written
            proc.stdin.close()
        except OSError:  # it stopped early (an unusable store): its answer is on stdout
            pass
        try:
            line = proc.stdout.readline()
        except OSError:
            line = ""
        code = proc.wait()
        self.proc = None
        try:
            answer = json.loads(line)
        except ValueError:
            # The child crashed (its traceback is on stderr): the results are safe in run_dir.
            raise TrackingError(
                f"the MLflow logging process failed (exit {code}) — results stay in {run_dir}; "
                f"log them later with `harness report {run_dir} --log`"
            ) from None
        if "error" in answer:
            raise TrackingError(answer["error"])
        return answer["run_id"]

    def history(self, suite_name: str, uri: str, lineage: str | None) -> list[dict]:
        """`harness.track.history.history` in the child (it imports MLflow for the logging
        anyway): the suite's earlier runs for the sunk-cost ledger, or TrackingError."""
        proc = self.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        self.warm()  # the guard needs MLflow now
        request = {"history": suite_name, "uri": uri, "lineage": lineage, "cwd": os.getcwd()}
        try:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        except OSError:
            line = ""
        try:
            answer = json.loads(line)
        except ValueError:
            raise TrackingError(
                "the MLflow logging process failed — the sunk-cost ledger needs the run history"
            ) from None
        if "error" in answer:
            raise TrackingError(answer["error"])
        return answer["runs"]

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()  # EOF: the child exits without logging
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_if_useful() -> TrackingChild | None:
    """A started child, or None when MLflow is already loaded here (log in-process then)."""
    if "mlflow" in sys.modules:
        return None
    return TrackingChild().start()


# ---------------------------------------------------------------- in the child


def _import_mlflow() -> None:
    with contextlib.suppress(Exception):  # only a head start: log_run imports for real later
        import mlflow.data  # noqa: F401
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
        from mlflow import MlflowClient  # noqa: F401
        from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag  # noqa: F401


def main() -> None:
    store.set_mlflow_env()
    # stdout carries the one answer line: whatever else prints (MLflow's "View run" links, a
    # library's notice) goes to stderr, so it can never be taken for the answer.
    answer_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    importing = None
    while True:
        line = sys.stdin.readline()
        if not line.strip():
            os._exit(0)  # EOF: nothing (more) to do
        if line.strip() == "warm":
            # In a thread, so that EOF (the parent is gone) ends the child without waiting for it.
            importing = threading.Thread(target=_import_mlflow, daemon=True)
            importing.start()
            continue
        request = json.loads(line)
        if importing is not None:
            importing.join()
        if "history" not in request:
            break
        os.chdir(request["cwd"])
        try:
            reply = {
                "runs": history.history(request["history"], request["uri"], request["lineage"])
            }
        except TrackingError as e:
            reply = {"error": str(e)}
        answer_out.write(json.dumps(reply) + "\n")
        answer_out.flush()
    os.chdir(request["cwd"])  # relative artifact paths resolve as in the parent
    try:
        pending = log.begin_log(request["run_dir"], request["uri"])
        if sys.stdin.readline().strip() != "finish":
            pending.discard()  # the parent failed or was stopped before its report: log nothing
            os._exit(0)
        answer = {"run_id": pending.finish()}
    except TrackingError as e:
        answer = {"error": str(e)}
    answer_out.write(json.dumps(answer) + "\n")
    answer_out.flush()
    # Everything is committed; tearing down MLflow's modules would only keep the parent waiting
    # (~0.7 s).
    os._exit(0)


if __name__ == "__main__":
    main()
