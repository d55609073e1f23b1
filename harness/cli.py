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
  3  the run could not be judged: provider errors above max_error_rate
"""


def handle_errors(fn):
    """User errors print one clear message and exit with their code; bugs keep their traceback."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HarnessError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(e.exit_code)

    return wrapper


@click.group(epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="harness")
def main():
    """Evaluate prompt, few-shot, RAG and fine-tuned variants against a pre-registered hypothesis."""


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("suite_path", metavar="SUITE.yaml", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the checklist as JSON.")
@handle_errors
def check(suite_path, as_json):
    """Validate a suite and its data without calling any model."""
    from harness.check import check_suite

    report = check_suite(suite_path)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.render())
    sys.exit(report.exit_code)


@main.command()
def schema():
    """Print the suite JSON Schema (point your editor at it)."""
    from harness.schema import shipped_schema_text

    click.echo(shipped_schema_text(), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
