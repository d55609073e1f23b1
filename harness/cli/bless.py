"""`harness bless`."""

from __future__ import annotations

import click

from harness.cli._common import echo, handle_errors
from harness.rundir.bless import bless as bless_run


@click.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False))
@handle_errors
def bless(run_dir):
    """Make a finished run the baseline `harness compare RUN` measures new runs against."""
    entry = bless_run(run_dir)
    echo(
        f"blessed {entry['run_id']} of suite {entry['suite']}: "
        f"`harness compare RUN` now compares RUN against it"
    )
