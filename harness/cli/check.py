"""`harness check`."""

from __future__ import annotations

import json

import click

from harness.check.checklist import check_suite
from harness.cli._common import EXIT_CODES_HELP, echo, handle_errors, runs_dir_option


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("suite_path", metavar="SUITE.yaml", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the checklist as JSON.")
@click.option(
    "--near-dup-threshold",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Cosine similarity (character n-gram tf-idf) at which a train/test pair counts as a near-duplicate [default: 0.9].",
)
@runs_dir_option(
    "Where run directories (and runs/.protocol/) live: the suite is checked against its registered protocol."
)
@handle_errors
def check(suite_path, as_json, near_dup_threshold, runs_dir):
    """Validate a suite and its data without calling any model."""
    report = check_suite(suite_path, near_dup_threshold=near_dup_threshold, runs_dir=runs_dir)
    if as_json:
        echo(json.dumps(report.to_dict(), indent=2))
    else:
        echo(report.render())
