"""`harness compare`."""

from __future__ import annotations

import json
import sys

import click

from harness.cli._common import EXIT_CODES_HELP, echo, handle_errors
from harness.rundir.bless import blessed_run
from harness.stats.compare import compare_runs, render


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("runs", metavar="[RUN_A] RUN_B", nargs=-1, type=click.Path(file_okay=False))
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
def compare(runs, tolerance, confidence, as_json):
    """Per-variant metric deltas (RUN_B − RUN_A) with CIs; exit 1 on a regression beyond --tolerance."""
    if len(runs) not in (1, 2):
        raise click.UsageError("give RUN_B (compared with the blessed run) or RUN_A RUN_B")
    run_a, run_b = runs if len(runs) == 2 else (None, runs[0])
    if run_a is None:  # the suite's blessed run (`harness bless`)
        run_a, entry = blessed_run(run_b)
        echo(f"comparing with the blessed run {entry['run_id']}", err=True)
    result = compare_runs(run_a, run_b, tolerance=tolerance, confidence=confidence)
    if len(runs) == 1:
        changed = [
            what
            for what, key in (("the suite", "suite_changed"), ("the data", "data_changed"))
            if result[key]
        ]
        if changed:
            echo(
                f"Warning: the blessed run {entry['run_id']} is older than "
                f"{' and '.join(changed)} (changed since it ran) — a difference may come from "
                "that change, not the model; bless a newer run with `harness bless RUN_DIR`",
                err=True,
            )
    echo(json.dumps(result, indent=2, default=str) if as_json else render(result))
    sys.exit(result["exit_code"])
