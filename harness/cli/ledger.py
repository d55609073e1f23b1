"""`harness ledger SUITE.yaml` (a lineage's record) and `harness ledger exclude RUN_ID --why`."""

from __future__ import annotations

import click

from harness.cli._common import echo, handle_errors, runs_dir_option, tracking_uri_option
from harness.data.dataset import shown
from harness.decide.history import LocalHistory, exclude_run, gather
from harness.decide.protocol import load as load_protocol
from harness.decide.view import ledger_lines
from harness.finetune.records import JobStore, suite_lineage
from harness.suite import load_suite
from harness.track.history import MlflowHistory

_runs_dir_opt = runs_dir_option("Where run directories live.")


class _LedgerGroup(click.Group):
    """`harness ledger SUITE.yaml` shows; `harness ledger exclude ...` is the one subcommand."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_LedgerGroup)
def ledger():
    """The sunk-cost ledger of a suite: `harness ledger SUITE.yaml` shows it, `harness ledger
    exclude RUN_ID --why "..."` takes a run out of it (visibly: every later verdict says so)."""


@ledger.command()
@click.argument("suite_path", metavar="SUITE.yaml", type=click.Path(dir_okay=False))
@_runs_dir_opt
@tracking_uri_option
@handle_errors
def show(suite_path, runs_dir, tracking_uri):
    """Every run of the suite's lineage: model ids, spend, Δ, verdicts, exclusions."""
    suite = load_suite(suite_path)
    test = suite.resolve_path(suite.spec.data.test)
    if not test.is_file():
        what = "is not a regular file" if test.exists() else "not found"
        raise suite.fail(
            f"{shown(test)} {what} — the ledger's lineage is the test data's hash",
            ("data", "test"),
        )
    key = suite_lineage(suite, runs_dir)
    history, notes = gather(
        suite.name, MlflowHistory.at(tracking_uri, key), LocalHistory(runs_dir, key)
    )
    jobs = JobStore(runs_dir, key).jobs()
    lines = ledger_lines(suite, history, key, jobs)
    registered = load_protocol(runs_dir, key)
    lines += registered.lines() if registered else []
    for line in lines + [f"note: {n}" for n in notes]:
        echo(line)


@ledger.command()
@click.argument("run_id")
@click.option("--why", required=True, help="Why the run no longer counts (shown in every verdict).")
@_runs_dir_opt
@handle_errors
def exclude(run_id, why, runs_dir):
    """Take RUN_ID out of the ledger: its spend stays, it counts for nothing else."""
    run_dir = exclude_run(runs_dir, run_id, why)
    echo(
        f"excluded run {run_id} ({run_dir}) from the ledger: {why.strip()} — "
        "every later verdict of the suite says so"
    )
