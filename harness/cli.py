"""Command line: parses arguments, calls the library, maps errors to exit codes.

Exit codes: 0 every guarded variant passed (or no guard); 1 the guard flagged something (fail,
inconclusive, abandon) or `compare` found a regression; 2 the suite or command line is wrong
(nothing was called); 3 the run could not be judged (provider errors above max_error_rate).
"""

from __future__ import annotations

import json
import sys
from functools import wraps

import click

from harness import __version__
from harness.errors import HarnessError

EXIT_CODES_HELP = """\b
Exit codes:
  0  every guarded variant passed (or the suite declares no guard)
  1  the guard flagged something: fail, inconclusive, abandon; or a regression
  2  the suite or the command line is wrong; nothing was called
  3  the run could not be judged: provider errors above max_error_rate, or the local
     model crashed (the message says how to rebuild it and resume)
  130  interrupted (Ctrl-C): completed results are kept; the message has the resume command
"""


tracking_uri_option = click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db).",
)


def handle_errors(fn):
    """User errors print one clear message and exit with their code; bugs keep their traceback."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HarnessError as e:
            for line in str(e).splitlines():
                click.echo(f"Error: {line}", err=True)
            sys.exit(e.exit_code)

    return wrapper


@click.group(epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="harness")
def main():
    """Evaluate prompt, few-shot, RAG and fine-tuned variants against a pre-registered hypothesis."""


@main.command(epilog=EXIT_CODES_HELP)
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
    help="Only the first N test examples (deterministic smoke run).",
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
@click.option(
    "--runs-dir",
    default="runs",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where run directories and the cache live.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option(
    "--junit",
    default=None,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write verdicts as JUnit XML (for CI).",
)
@click.option(
    "--allow-inconclusive", is_flag=True, help="Exit 0 when a guarded variant is only inconclusive."
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Processes making the calls [default: one per core (max 4) for runs of 256+ calls; 0: this process].",
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
    allow_inconclusive,
    workers,
):
    """Run every variant of a suite over the same examples and write runs/<suite>/<run-id>/."""
    from harness.runner import exit_process, print_outcome, run_suite

    outcome = run_suite(
        suite_path,
        variants=list(variants) or None,
        limit=limit,
        concurrency=concurrency,
        no_cache=no_cache,
        resume=resume,
        runs_dir=runs_dir,
        workers=workers,
        tracking_uri=tracking_uri,
        as_json=as_json,
        junit=junit,
        allow_inconclusive=allow_inconclusive,
        tracking_child=True,  # MLflow off this process (harness.tracking_child)
    )
    print_outcome(outcome, as_json=as_json)
    exit_process(outcome.exit_code)


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("suite_path", metavar="SUITE.yaml", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the checklist as JSON.")
@click.option(
    "--near-dup-threshold",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Cosine similarity (character n-gram tf-idf) at which a train/test pair counts as a near-duplicate [default: 0.9].",
)
@handle_errors
def check(suite_path, as_json, near_dup_threshold):
    """Validate a suite and its data without calling any model."""
    from harness.check import check_suite

    report = check_suite(suite_path, near_dup_threshold=near_dup_threshold)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.render())


@main.command(epilog=EXIT_CODES_HELP)
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
@click.option(
    "--runs-dir",
    default="runs",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where run directories live (to find the latest run).",
)
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
    from harness.errors import SuiteError
    from harness.export import export_finetune
    from harness.suite import load_suite

    if run_dir is not None and from_variant is None:
        raise SuiteError(
            "--run needs --from-variant NAME (the teacher variant whose outputs to export)"
        )
    result = export_finetune(
        load_suite(suite_path),
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
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else result.render())
    if result.problems:
        raise SuiteError(
            f"{out}: {len(result.problems)} format problem(s) — fix the data or templates and export again"
        )


@main.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False))
@click.option(
    "--log", is_flag=True, help="Also log the run to MLflow (e.g. after the store was unreachable)."
)
@tracking_uri_option
@handle_errors
def report(run_dir, log, tracking_uri):
    """Re-render report.md, report.html and plots/ of a finished run from its files."""
    from harness.report import render_report
    from harness.rundir import load_run

    run = load_run(run_dir)  # read once for both the report and MLflow
    paths = render_report(run)
    click.echo(f"wrote {paths['md']}, {paths['html']} and {len(paths['plots'])} plot(s)")
    if log:
        from harness.tracking import log_run
        from harness.tracking import tracking_uri as resolve_uri

        uri = resolve_uri(tracking_uri)
        run_id = log_run(run, uri)
        click.echo(f"logged to MLflow at {uri}: parent run {run_id} (browse with `harness ui`)")


@main.command()
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@tracking_uri_option
@handle_errors
def ui(port, host, tracking_uri):
    """Start the MLflow UI on this project's tracking store (Ctrl-C stops it)."""
    from harness.tracking import tracking_uri as resolve_uri
    from harness.tracking import ui_command, ui_env

    uri = resolve_uri(tracking_uri)
    cmd = ui_command(uri, host, port)
    if cmd is None:
        click.echo(f"the tracking store is an MLflow server — open {uri} in a browser")
        return
    import subprocess

    click.echo(f"MLflow UI on {uri}: http://{host}:{port}  (Ctrl-C to stop)")
    # MLflow 3 opens experiments on its GenAI view; harness runs live in the runs table.
    click.echo(
        f"each suite is an experiment; its runs: http://{host}:{port}/#/experiments/<id>/runs "
        "(or pick the suite, then 'Training runs')"
    )
    proc = subprocess.Popen(cmd, env=ui_env())
    try:
        sys.exit(proc.wait())
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()


@main.command(epilog=EXIT_CODES_HELP)
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
    from harness.compare import compare_runs, render

    result = compare_runs(run_a, run_b, tolerance=tolerance, confidence=confidence)
    click.echo(json.dumps(result, indent=2, default=str) if as_json else render(result))
    sys.exit(result["exit_code"])


@main.command()
@click.argument(
    "suite_path", metavar="[SUITE.yaml]", required=False, type=click.Path(dir_okay=False)
)
@tracking_uri_option
@handle_errors
def doctor(suite_path, tracking_uri):
    """Versions, tracking store, local model (build and a 1-token try) and, for a suite, which API
    keys are set (names only). Exit 0 when ready, 2 with the fix otherwise."""
    from harness.doctor import diagnose, render

    d = diagnose(suite_path, tracking_uri)
    click.echo(render(d))
    sys.exit(d.exit_code)


@main.command()
def schema():
    """Print the suite JSON Schema (point your editor at it)."""
    from harness.schema import shipped_schema_text

    click.echo(shipped_schema_text(), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
