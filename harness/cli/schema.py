"""`harness schema`."""

from __future__ import annotations

import click

from harness.suite.schema import shipped_schema_text


@click.command()
def schema():
    """Print the suite JSON Schema (point your editor at it)."""
    click.echo(shipped_schema_text(), nl=False)
