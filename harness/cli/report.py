"""`harness report`."""

from __future__ import annotations

import click

from harness.cli._common import echo, handle_errors, tracking_uri_option
from harness.report.render import render_report, reprice
from harness.rundir.reader import load_run
from harness.track.log import log_run
from harness.track.store import tracking_uri as resolve_uri


@click.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False))
@click.option(
    "--log", is_flag=True, help="Also log the run to MLflow (e.g. after the store was unreachable)."
)
@tracking_uri_option
@handle_errors
def report(run_dir, log, tracking_uri):
    """Re-render report.md, report.html and plots/ of a finished run from its files."""
    run = load_run(run_dir)  # read once for both the report and MLflow
    reprice(run)  # the dollars as a run would price them now
    paths = render_report(run)
    echo(f"wrote {paths['md']}, {paths['html']} and {len(paths['plots'])} plot(s)")
    if log:
        uri = resolve_uri(tracking_uri)
        run_id = log_run(run, uri)
        echo(f"logged to MLflow at {uri}: parent run {run_id} (browse with `harness ui`)")
