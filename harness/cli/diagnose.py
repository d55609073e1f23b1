"""`harness diagnose`."""

from __future__ import annotations

import click

from harness.cli._common import echo, handle_errors, tracking_uri_option
from harness.diagnose import diagnose as run_diagnosis
from harness.diagnose import write
from harness.diagnose.render import text
from harness.errors import TrackingError
from harness.report.render import render_report
from harness.run.probes import plan as plan_probes
from harness.run.probes import run_probes
from harness.rundir.reader import load_run
from harness.track.artifact import log_to_parent
from harness.track.store import tracking_uri as resolve_uri

EXIT_CODES = """\b
Exit codes:
  0  diagnosed: diagnosis.json written
  1  the probes were not confirmed (nothing was sent)
  2  no such run directory, an unfinished run, an unknown --variant, a probe without its model,
     or a run with no right/wrong score
  4  could not write diagnosis.json or the report (disk full, read-only, a path taken)
"""


@click.command(epilog=EXIT_CODES)
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False))
@click.option("--variant", default=None, help="Variant to diagnose [default: the baseline].")
@click.option(
    "--probe",
    "probes",
    multiple=True,
    type=click.Choice(["repeats", "stronger", "gold"]),
    help="Measure a cause with new calls on the wrong examples (priced and confirmed first).",
)
@click.option("--stronger", default=None, metavar="MODEL", help="Model of --probe stronger.")
@click.option("--yes", is_flag=True, help="Run the probes without asking.")
@click.option("--no-log", is_flag=True, help="Don't add diagnosis.json to the run's MLflow run.")
@tracking_uri_option
@handle_errors
def diagnose(run_dir, variant, probes, stronger, yes, no_log, tracking_uri):
    """Sort a variant's wrong examples by cause and fill in the prompt / RAG / fine-tune table."""
    run = load_run(run_dir)
    result = run_diagnosis(run, variant)
    if probes:
        planned = plan_probes(run, result, list(dict.fromkeys(probes)), stronger)
        for p in planned:
            echo(p.line())
        if not yes:
            click.confirm("Run these probes?", abort=True)
        answers, facts = run_probes(run, planned, tracking_uri)
        result = run_diagnosis(run, variant, probes=answers)
        result["probes"] = facts
        for f in facts:
            spent = f["spent_usd"]
            echo(
                f"probe {f['probe']}: {f['calls']} call(s), spent "
                + ("unknown" if spent is None else f"${spent:.4g}")
                + f" (run {f['run_dir']})"
            )
    path = write(run, result)
    echo(text(result))
    echo("")
    echo(f"wrote {path}" + (f" and {result['label_review']}" if result["label_review"] else ""))
    paths = render_report(run)
    echo(f"report section added to {paths['md']}")
    if no_log:
        return
    uri = resolve_uri(tracking_uri)
    try:
        parent = log_to_parent(run.path, result["run_id"], result["suite"], path, uri)
    except TrackingError as e:
        echo(f"not logged to MLflow: {e}")
        return
    if parent is None:
        echo(
            f"not logged to MLflow: run {result['run_id']} is not in {uri} "
            f"(`harness report {run.path} --log` logs it with its diagnosis)"
        )
    else:
        echo(f"logged to MLflow at {uri}: parent run {parent}")
