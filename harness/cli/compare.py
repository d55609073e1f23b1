"""`harness compare`."""

from __future__ import annotations

import json
import sys

import click

from harness.cli._common import EXIT_CODES_HELP, handle_errors
from harness.stats.compare import compare_runs, render


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("run_a", metavar="RUN_A", type=click.Path(file_okay=False))
@click.argument("run_b", metavar="RUN_B", type=click.Path(file_okay=False))
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Drop accepted before it counts as a regression, in metric units (0.02 = 2 points).",
)
@click.option(
    "--confidence",
    type=click.FloatRange(0.5, 1, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
    help="Confidence of the intervals of B − A.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@handle_errors
def compare(run_a, run_b, tolerance, confidence, as_json):
    """Per-variant metric deltas (RUN_B − RUN_A) with CIs; exit 1 on a regression beyond --tolerance."""
    result = compare_runs(run_a, run_b, tolerance=tolerance, confidence=confidence)
    click.echo(json.dumps(result, indent=2, default=str) if as_json else render(result))
    sys.exit(result["exit_code"])
