"""`harness merge`."""

from __future__ import annotations

import click

from harness.cli._common import (
    EXIT_CODES_HELP,
    handle_errors,
    runs_dir_option,
    tracking_uri_option,
    verdict_options,
)
from harness.report.console import print_summary
from harness.run import RunOptions
from harness.run.merge import merge_runs
from harness.run.warmup import exit_process


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("run_dirs", metavar="RUN_DIR...", nargs=-1, type=click.Path(file_okay=False))
@tracking_uri_option
@runs_dir_option("Where the merged run directory goes.")
@verdict_options
@handle_errors
def merge(run_dirs, tracking_uri, runs_dir, as_json, junit, allow_inconclusive):
    """Join the shard runs of `harness run --shard i/N` into one run with one verdict."""
    options = RunOptions(
        runs_dir=runs_dir,
        tracking_uri=tracking_uri,
        junit=junit,
        allow_inconclusive=allow_inconclusive,
    )
    outcome = merge_runs(list(run_dirs), options)
    notes = {v: outcome.summary["variants"][v]["notes"] for v in outcome.variants}
    print_summary(outcome.summary, outcome.variants, outcome.run_dir, notes=notes, as_json=as_json)
    exit_process(outcome.exit_code)
