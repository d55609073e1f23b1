"""`harness ui`."""

from __future__ import annotations

import subprocess
import sys

import click

from harness.cli._common import handle_errors, tracking_uri_option
from harness.track.store import tracking_uri as resolve_uri
from harness.track.store import ui_command, ui_env


@click.command()
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@tracking_uri_option
@handle_errors
def ui(port, host, tracking_uri):
    """Start the MLflow UI on this project's tracking store (Ctrl-C stops it)."""
    uri = resolve_uri(tracking_uri)
    cmd = ui_command(uri, host, port)
    if cmd is None:
        click.echo(f"the tracking store is an MLflow server — open {uri} in a browser")
        return
    click.echo(f"MLflow UI on {uri}: http://{host}:{port}  (Ctrl-C to stop)")
    # MLflow 3 opens experiments on its GenAI view; harness runs live in the runs table.
    click.echo(
        f"each suite is an experiment; its runs: http://{host}:{port}/#/experiments/<id>/runs "
        "(or pick the suite, then 'Training runs')"
    )
    proc = subprocess.Popen(cmd, env=ui_env())
    try:
        sys.exit(proc.wait())
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
