"""`harness register SUITE.yaml`: register a lineage's protocol; `--amend --why` accepts changes."""

from __future__ import annotations

import sys

import click

from harness.cli._common import echo, handle_errors, runs_dir_option, tracking_uri_option
from harness.decide.history import LocalHistory, gather
from harness.decide.protocol import register as register_protocol
from harness.finetune.records import suite_lineage
from harness.suite import load_suite
from harness.track.history import MlflowHistory


@click.command()
@click.argument("suite_path", metavar="SUITE.yaml", type=click.Path(dir_okay=False))
@click.option("--amend", is_flag=True, help="Accept the differences from the registered protocol.")
@click.option("--why", default=None, help="Why the protocol is amended (named on every verdict).")
@runs_dir_option("Where run directories (and runs/.protocol/) live.")
@tracking_uri_option
@handle_errors
def register(suite_path, amend, why, runs_dir, tracking_uri):
    """Register what decides the suite's verdicts (test set, hypotheses, baseline, dollars,
    limits); with --amend --why "…", accept changes to it."""
    suite = load_suite(suite_path)
    # The lineage's earlier runs: a protocol they recorded whose file is gone is an amendment.
    history: list[dict] = []
    if suite.resolve_path(suite.spec.data.test).is_file():  # else register says what is missing
        key = suite_lineage(suite, runs_dir)
        history, _ = gather(
            suite.name, MlflowHistory.at(tracking_uri, key), LocalHistory(runs_dir, key)
        )
    lines, code = register_protocol(suite, runs_dir, amend=amend, why=why, history=history)
    for line in lines:
        echo(line)
    sys.exit(code)
