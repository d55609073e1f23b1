"""`harness finetune`."""

from __future__ import annotations

import click

from harness.cli._common import (
    EXIT_CODES_HELP,
    echo,
    handle_errors,
    runs_dir_option,
    tracking_uri_option,
)
from harness.run.finetune import FinetuneOptions
from harness.run.finetune import finetune as run_finetune
from harness.run.warmup import exit_process


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("suite_path", metavar="SUITE.yaml", type=click.Path(dir_okay=False))
@click.option(
    "--variant",
    default=None,
    metavar="NAME",
    help="The `finetune:` variant to train [default: the only one].",
)
@click.option("--cancel", is_flag=True, help="Cancel the variant's queued or running job.")
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds between status checks while watching.",
)
@tracking_uri_option
@runs_dir_option("Where run directories and the job store (runs/.finetune/) live.")
@handle_errors
def finetune(suite_path, variant, cancel, poll_interval, tracking_uri, runs_dir):
    """Train a `finetune:` variant under the guard's budget and iterations, and watch the job.

    Refuses (exit 1) before any upload when the estimated cost or another iteration would pass
    the lineage's limits. Running it again watches the same job; Ctrl-C leaves the job running.
    """
    outcome = run_finetune(
        suite_path,
        FinetuneOptions(
            variant=variant,
            cancel=cancel,
            runs_dir=runs_dir,
            tracking_uri=tracking_uri,
            poll_interval=poll_interval,
            echo=echo,
        ),
    )
    exit_process(outcome.exit_code)
