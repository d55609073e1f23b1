"""Command line: parses arguments, calls the library, maps errors to exit codes.

One module per command; each is a thin layer over the library (harness.run, harness.check,
harness.export, harness.report, harness.track, harness.stats.compare). Exit codes: see
`EXIT_CODES_HELP` in harness.cli._common.
"""

from __future__ import annotations

import click

from harness import __version__
from harness.cli import check, compare, doctor, export, ledger, report, run, schema, ui
from harness.cli._common import EXIT_CODES_HELP


@click.group(epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="harness")
def main():
    """Evaluate prompt, few-shot, RAG and fine-tuned variants against a pre-registered hypothesis."""


for _module in (run, check, export, report, ledger, ui, compare, doctor, schema):
    main.add_command(getattr(_module, _module.__name__.rsplit(".", 1)[-1]))

if __name__ == "__main__":  # pragma: no cover
    main()
