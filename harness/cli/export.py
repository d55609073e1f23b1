"""`harness export`."""

from __future__ import annotations

import json

import click

from harness.cli._common import EXIT_CODES_HELP, echo, handle_errors, runs_dir_option
from harness.errors import SuiteError
from harness.export.finetune import export_finetune
from harness.score.registry import validate_suite
from harness.suite import load_suite


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("suite_path", metavar="SUITE.yaml", type=click.Path(dir_okay=False))
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False), help="JSONL file to write."
)
@click.option(
    "--variant",
    default=None,
    help="Variant whose templates render system/user (default: the first fine-tuned variant).",
)
@click.option(
    "--from-variant",
    default=None,
    help="Distil from this teacher variant's outputs in --run instead of the train split.",
)
@click.option(
    "--run",
    "run_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Finished run directory holding the teacher's results [default: the suite's latest run with them].",
)
@runs_dir_option("Where run directories live (to find the latest run).")
@click.option(
    "--include-incorrect",
    is_flag=True,
    help="Keep teacher outputs that were scored wrong or not format-compliant.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Training epochs for the cost estimate [default: training.epochs or 1].",
)
@click.option(
    "--price-per-1m",
    type=click.FloatRange(min=0),
    default=None,
    help="Training price per 1M tokens [default: training.price_per_1m].",
)
@click.option(
    "--max-tokens-per-example",
    type=click.IntRange(min=1),
    default=65536,
    show_default=True,
    help="Per-example token limit of the fine-tuning API.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@handle_errors
def export(
    suite_path,
    out,
    variant,
    from_variant,
    run_dir,
    runs_dir,
    include_incorrect,
    epochs,
    price_per_1m,
    max_tokens_per_example,
    as_json,
):
    """Write OpenAI chat fine-tuning JSONL from the train split or a teacher's outputs.

    Prints the example count, token count and training-cost estimate (also written to
    OUT.meta.json) and validates the file; exit 2 when the file breaks the chat format.
    """
    if run_dir is not None and from_variant is None:
        raise SuiteError(
            "--run needs --from-variant NAME (the teacher variant whose outputs to export)"
        )
    result = export_finetune(
        validate_suite(load_suite(suite_path)),
        out,
        variant=variant,
        from_variant=from_variant,
        run_dir=run_dir,
        runs_dir=runs_dir,
        include_incorrect=include_incorrect,
        epochs=epochs,
        price_per_1m=price_per_1m,
        max_tokens_per_example=max_tokens_per_example,
    )
    echo(json.dumps(result.to_dict(), indent=2) if as_json else result.render())
    if result.problems:
        raise SuiteError(
            f"{out}: {len(result.problems)} format problem(s) — fix the data or templates and export again"
        )
