"""`harness plugins`."""

from __future__ import annotations

import json

import click

from harness.cli._common import echo, handle_errors
from harness.plugins import load_plugins


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the plugins as JSON.")
@handle_errors
def plugins(as_json):
    """List the plugins loaded (built-ins, `harness` entry points, $HARNESS_PLUGINS) and what each registered."""
    loaded = load_plugins()
    if as_json:
        echo(json.dumps([vars(p) for p in loaded], indent=2))
        return
    for p in loaded:
        echo(f"{p.name} ({p.source}{'' if p.name == p.module else ': ' + p.module})")
        for kind, names in p.registered.items():
            echo(f"  {kind}: {', '.join(names)}")
        if not p.registered:
            echo("  registered nothing")
