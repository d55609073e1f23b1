"""`harness ui`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import webbrowser
from pathlib import Path

import click

from harness.cli._common import handle_errors, tracking_uri_option
from harness.errors import SuiteError, TrackingError
from harness.track.store import experiment_link, ui_command, ui_env
from harness.track.store import tracking_uri as resolve_uri

UI_START_TIMEOUT_S = 120  # `mlflow ui` imports a lot; a busy machine takes tens of seconds


@click.command()
@click.argument("suite", metavar="[SUITE.yaml | NAME]", required=False)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--no-browser", is_flag=True, help="Print the link only; don't open a browser.")
@tracking_uri_option
@handle_errors
def ui(suite, port, host, no_browser, tracking_uri):
    """Start the MLflow UI on this project's tracking store and open a suite's runs (Ctrl-C stops it)."""
    uri = resolve_uri(tracking_uri)
    name = _suite_name(suite) if suite else None
    cmd = ui_command(uri, host, port)
    if cmd is None:  # already a server: only the link
        _show(uri, name, no_browser)
        return
    server = f"http://{host}:{port}"
    click.echo(f"MLflow UI on {uri}: {server}  (Ctrl-C to stop)")
    # Its own process group: `mlflow ui` starts a server that starts workers, and stopping
    # only the first would leave the others serving (and holding the port).
    proc = subprocess.Popen(cmd, env=ui_env(), start_new_session=True)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        if _wait_ready(server, proc):
            try:
                _show(server, name, no_browser)
            except SuiteError as e:  # the UI is up and useful anyway: say so, keep serving
                click.echo(f"note: {e}", err=True)
                _show(server, None, no_browser)
        code = proc.wait()
    except KeyboardInterrupt:
        code = 0
    except _Terminated:
        code = 128 + signal.SIGTERM
    finally:  # Ctrl-C, SIGTERM, or the UI never came up: don't leave any of it running
        signal.signal(signal.SIGTERM, previous)
        _stop_group(proc)
    sys.exit(code)


class _Terminated(BaseException):
    """SIGTERM (a service manager, `kill`): stop the UI's process group, then exit."""


def _terminated(signum, frame) -> None:
    raise _Terminated


def _stop_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace_s)
    with contextlib.suppress(ProcessLookupError):  # workers that outlived it or ignored TERM
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _suite_name(suite: str) -> str:
    """A suite file's `name:`, or the name as given."""
    if suite.endswith((".yaml", ".yml")) or Path(suite).is_file():
        from harness.suite import load_suite

        return load_suite(suite).name
    return suite


def _show(server: str, name: str | None, no_browser: bool) -> None:
    """Print (and open) the suite's runs table; without a suite, the experiments list."""
    if name is None:
        link = f"{server.rstrip('/')}/#/experiments"
        click.echo(
            f"experiments (one per suite): {link}  — `harness ui SUITE.yaml` opens a suite's runs"
        )
    else:
        link = experiment_link(server, name)
        if link is None:
            raise SuiteError(
                f"no experiment {name!r} in {server} yet — run the suite first (`harness run`)"
            )
        click.echo(f"{name}: {link}")
    if not no_browser:
        webbrowser.open(link)


def _wait_ready(server: str, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + UI_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False  # it failed: its own message is on stderr
        try:
            with urllib.request.urlopen(server + "/health", timeout=2):
                return True
        except OSError:
            time.sleep(0.5)
    raise TrackingError(f"the MLflow UI at {server} did not answer within {UI_START_TIMEOUT_S} s")
