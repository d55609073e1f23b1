"""`harness init`."""

from __future__ import annotations

from pathlib import Path

import click

from harness.check.checklist import check_suite
from harness.check.starter import DEFAULT_MODEL, starter_suite, suite_name
from harness.cli._common import echo, handle_errors
from harness.errors import SuiteError


@click.command()
@click.argument("data", metavar="DATA", type=click.Path(dir_okay=False))
@click.option("--corpus", default=None, metavar="GLOB", help="Documents for a RAG variant.")
@click.option(
    "--out",
    default=None,
    type=click.Path(dir_okay=False),
    help="Suite file to write [default: <data set name>.yaml].",
)
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Model of every variant.")
@click.option("--api-base", default=None, help="OpenAI-compatible endpoint of the model.")
@click.option("--force", is_flag=True, help="Overwrite the suite file if it exists.")
@handle_errors
def init(data, corpus, out, model, api_base, force):
    """Write a starting suite for a data file and run the readiness checklist on it."""
    path = Path(out) if out else Path(f"{suite_name(Path(data).resolve())}.yaml")
    if path.exists() and not force and path.resolve() != Path(data).resolve():
        raise SuiteError(f"{path} exists — pass --out NEW.yaml, or --force to overwrite it")
    starter_suite(data, path, corpus=corpus, model=model, api_base=api_base)
    echo(f"wrote {path}")
    echo(check_suite(path).render())
    echo(f"next: `harness run {path}`, then `harness diagnose runs/<suite>/<run-id>`")
