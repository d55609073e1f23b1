"""`harness run`."""

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
from harness.run import RunOptions, run_suite
from harness.run.warmup import exit_process


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("suite_path", metavar="SUITE.yaml", type=click.Path(dir_okay=False))
@click.option(
    "--variant",
    "variants",
    multiple=True,
    metavar="NAME",
    help="Run only this variant (repeatable).",
)
@click.option(
    "--limit",
    type=int,
    default=None,
    metavar="N",
    help="Smoke run on a stratified, deterministic subset of N test examples (not counted in the ledger).",
)
@click.option(
    "--concurrency",
    type=int,
    default=8,
    show_default=True,
    help="Requests in flight at once, across variants.",
)
@click.option("--no-cache", is_flag=True, help="Ignore and don't fill runs/.cache.sqlite.")
@click.option(
    "--resume",
    is_flag=False,
    flag_value="latest",
    default=None,
    metavar="[RUN_ID]",
    help="Finish an interrupted run (default: the suite's latest) without repeating completed calls.",
)
@tracking_uri_option
@runs_dir_option("Where run directories and the cache live.")
@verdict_options
@click.option(
    "--pr-comment",
    default=None,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write the verdict table as markdown for a pull-request comment (any CI).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Processes making the calls [default: one per core, up to --concurrency, for runs of 256+ calls; 0: this process].",
)
@click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="Run the I-th of N deterministic slices of the test examples (join them with "
    "`harness merge`).",
)
@click.option(
    "--batch",
    is_flag=True,
    help="Send the calls through the provider's batch API (OpenAI: half price, up to 24 h).",
)
@click.option(
    "--batch-poll",
    type=click.FloatRange(min=0.01),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="With --batch: seconds between status polls.",
)
@click.option(
    "--timings", is_flag=True, help="Print wall and CPU time per phase (and timings.json)."
)
@click.option(
    "--checkpoints",
    is_flag=True,
    help="Also evaluate each `finetune:` variant's checkpoints (as NAME.step-N, not guarded).",
)
@handle_errors
def run(
    suite_path,
    variants,
    limit,
    concurrency,
    no_cache,
    resume,
    tracking_uri,
    runs_dir,
    as_json,
    junit,
    pr_comment,
    allow_inconclusive,
    workers,
    shard,
    batch,
    batch_poll,
    timings,
    checkpoints,
):
    """Run every variant of a suite over the same examples and write runs/<suite>/<run-id>/."""
    options = RunOptions(
        variants=list(variants) or None,
        limit=limit,
        concurrency=concurrency,
        no_cache=no_cache,
        resume=resume,
        runs_dir=runs_dir,
        workers=workers,
        tracking_uri=tracking_uri,
        junit=junit,
        pr_comment=pr_comment,
        allow_inconclusive=allow_inconclusive,
        checkpoints=checkpoints,
        tracking_child=True,  # MLflow off this process (harness.track.child)
        shard=shard,
        batch=batch,
        batch_poll_s=batch_poll,
        timings=timings,
    )
    outcome = run_suite(suite_path, options)
    # The summary's variant notes: the engine's, plus what the summary found (partial costs).
    notes = {v: outcome.summary["variants"][v]["notes"] for v in outcome.variants}
    print_summary(
        outcome.summary,
        outcome.variants,
        outcome.run_dir,
        notes=notes,
        as_json=as_json,
        mlflow_url=outcome.mlflow_url,
    )
    exit_process(outcome.exit_code)
