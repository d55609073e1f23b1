"""`harness doctor`."""

from __future__ import annotations

import sys

import click

from harness.check.doctor import diagnose, render
from harness.cli._common import echo, handle_errors, tracking_uri_option


@click.command()
@click.argument(
    "suite_path", metavar="[SUITE.yaml]", required=False, type=click.Path(dir_okay=False)
)
@tracking_uri_option
@handle_errors
def doctor(suite_path, tracking_uri):
    """Versions, tracking store, local model (build and a 1-token try) and, for a suite, which API
    keys are set (names only). Exit 0 when ready, 2 with the fix otherwise."""
    d = diagnose(suite_path, tracking_uri)
    echo(render(d))
    sys.exit(d.exit_code)
