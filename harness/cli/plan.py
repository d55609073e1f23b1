"""`harness plan`."""

from __future__ import annotations

import json

import click

from harness.cli._common import EXIT_CODES_HELP, echo, handle_errors


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("suite_path", metavar="SUITE.yaml", type=click.Path(dir_okay=False))
@click.option(
    "--power",
    type=click.FloatRange(0.5, 0.99),
    default=0.8,
    show_default=True,
    help="Chance of a pass when the true Δ is as expected.",
)
@click.option(
    "--expect-delta",
    type=float,
    default=None,
    help="The true Δ (candidate − baseline) to size for [default: one margin beyond the threshold].",
)
@click.option(
    "--pilot",
    "pilot_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="A finished run directory whose paired spread replaces the assumed sd 0.5.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the sizes as JSON.")
@handle_errors
def plan(suite_path, power, expect_delta, pilot_dir, as_json):
    """Test examples each hypothesis needs at its confidence and a chosen power (no model calls)."""
    from harness.check.plan import check_pilot, plan_lines, read_pilot
    from harness.check.plan import plan as size_all
    from harness.data.dataset import load_dataset
    from harness.score.registry import validate_suite
    from harness.suite import load_suite

    suite = validate_suite(load_suite(suite_path))
    dataset = load_dataset(suite)
    pilot = read_pilot(pilot_dir) if pilot_dir else None
    if pilot is not None:
        check_pilot(suite, pilot, pilot_dir, list(dataset.labels or []) or None)
    rows = size_all(suite, power=power, expect_delta=expect_delta, pilot=pilot)
    n_test = len(dataset.test)
    if as_json:
        echo(
            json.dumps(
                {"n_test": n_test, "power": power, "hypotheses": [r.to_dict() for r in rows]},
                indent=2,
            )
        )
    else:
        echo("\n".join(plan_lines(suite, rows, n_test, power)))
