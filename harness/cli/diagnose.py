"""`harness diagnose`."""

from __future__ import annotations

import click

from harness.cli._common import handle_errors, tracking_uri_option
from harness.diagnose import diagnose as run_diagnosis
from harness.diagnose import write
from harness.diagnose.render import text
from harness.errors import TrackingError
from harness.report.render import render_report
from harness.rundir.reader import load_run
from harness.track.artifact import log_to_parent
from harness.track.store import tracking_uri as resolve_uri


@click.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False))
@click.option("--variant", default=None, help="Variant to diagnose [default: the baseline].")
@click.option("--no-log", is_flag=True, help="Don't add diagnosis.json to the run's MLflow run.")
@tracking_uri_option
@handle_errors
def diagnose(run_dir, variant, no_log, tracking_uri):
    """Sort a variant's wrong examples by cause and fill in the prompt / RAG / fine-tune table."""
    run = load_run(run_dir)
    result = run_diagnosis(run, variant)
    path = write(run, result)
    click.echo(text(result))
    click.echo("")
    click.echo(
        f"wrote {path}" + (f" and {result['label_review']}" if result["label_review"] else "")
    )
    paths = render_report(run)
    click.echo(f"report section added to {paths['md']}")
    if no_log:
        return
    uri = resolve_uri(tracking_uri)
    try:
        parent = log_to_parent(run.path, result["run_id"], result["suite"], path, uri)
    except TrackingError as e:
        click.echo(f"not logged to MLflow: {e}")
        return
    if parent is None:
        click.echo(
            f"not logged to MLflow: run {result['run_id']} is not in {uri} "
            f"(`harness report {run.path} --log` logs it with its diagnosis)"
        )
    else:
        click.echo(f"logged to MLflow at {uri}: parent run {parent}")
