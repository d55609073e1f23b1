"""`harness register SUITE.yaml`: register a lineage's protocol; `--amend --why` accepts changes."""

from __future__ import annotations

import sys

import click

from harness.cli._common import echo, handle_errors, runs_dir_option
from harness.decide.protocol import register as register_protocol
from harness.suite import load_suite


@click.command()
@click.argument("suite_path", metavar="SUITE.yaml", type=click.Path(dir_okay=False))
@click.option("--amend", is_flag=True, help="Accept the differences from the registered protocol.")
@click.option("--why", default=None, help="Why the protocol is amended (named on every verdict).")
@runs_dir_option("Where run directories (and runs/.protocol/) live.")
@handle_errors
def register(suite_path, amend, why, runs_dir):
    """Register what decides the suite's verdicts (test set, hypotheses, baseline, dollars,
    limits); with --amend --why "…", accept changes to it."""
    lines, code = register_protocol(load_suite(suite_path), runs_dir, amend=amend, why=why)
    for line in lines:
        echo(line)
    sys.exit(code)
