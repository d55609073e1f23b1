"""Command line: parses arguments, calls the library, maps errors to exit codes.

One module per command; each is a thin layer over the library (harness.run, harness.check,
harness.export, harness.report, harness.track, harness.stats.compare). Exit codes: see
`EXIT_CODES_HELP` in harness.cli._common.

A command's module (and the library behind it: pydantic models, numpy, rich) is imported only
when that command runs, so `harness --help` stays fast; the listing below carries each command's
one-line help (a test keeps it equal to the command's own).
"""

from __future__ import annotations

import importlib

import click
from click.utils import make_default_short_help

from harness import __version__
from harness.cli._common import EXIT_CODES_HELP, handle_errors

COMMANDS = {
    "bless": "Make a finished run the baseline `harness compare RUN` measures new runs against.",
    "check": "Validate a suite and its data without calling any model.",
    "compare": "Per-variant metric deltas (RUN_B − RUN_A) with CIs; exit 1 on a regression "
    "beyond --tolerance.",
    "diagnose": "Sort a variant's wrong examples by cause and fill in the prompt / RAG / "
    "fine-tune table.",
    "doctor": "Versions, tracking store, local model (build and a 1-token try) and, for a "
    "suite, which API keys are set (names only).",
    "init": "Write a starting suite for a data file and run the readiness checklist on it.",
    "ledger": "The sunk-cost ledger of a suite: `harness ledger SUITE.yaml` shows it, `harness "
    'ledger exclude RUN_ID --why "..."` takes a run out of it (visibly: every later verdict '
    "says so).",
    "finetune": "Train a `finetune:` variant under the guard's budget and iterations, and watch "
    "the job.",
    "export": "Write OpenAI chat fine-tuning JSONL from the train split or a teacher's outputs.",
    "merge": "Join the shard runs of `harness run --shard i/N` into one run with one verdict.",
    "plugins": "List the plugins loaded (built-ins, `harness` entry points, $HARNESS_PLUGINS) and "
    "what each registered.",
    "plan": "Test examples each hypothesis needs at its confidence and a chosen power (no model calls).",
    "register": "Register what decides the suite's verdicts (test set, hypotheses, baseline, "
    'dollars, limits); with --amend --why "…", accept changes to it.',
    "report": "Re-render report.md, report.html and plots/ of a finished run from its files.",
    "run": "Run every variant of a suite over the same examples and write runs/<suite>/<run-id>/.",
    "schema": "Print the suite JSON Schema (point your editor at it).",
    "ui": "Start the MLflow UI on this project's tracking store and open a suite's runs "
    "(Ctrl-C stops it).",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return getattr(importlib.import_module(f"harness.cli.{name}"), name)

    def invoke(self, ctx: click.Context):
        # Every command sees the plugins' metrics, retrieval methods and backends; a command's
        # --help does not wait for them (nor fail on a broken one).
        # click >= 8.2 keeps the command name in `_protected_args`, 8.1 in `protected_args`.
        name = ctx._protected_args if hasattr(ctx, "_protected_args") else ctx.protected_args
        rest = [*name, *ctx.args][1:]
        if not set(rest) & set(ctx.help_option_names):
            _load_plugins()
        return super().invoke(ctx)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        # The width click's own listing gives each line (see click.Group.format_commands).
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(n, make_default_short_help(COMMANDS[n], limit)) for n in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@handle_errors
def _load_plugins() -> None:
    from harness.plugins import load_plugins

    load_plugins()


@click.group(
    cls=_LazyGroup,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="harness")
def main():
    """Evaluate prompt, few-shot, RAG and fine-tuned variants against a pre-registered hypothesis."""


if __name__ == "__main__":  # pragma: no cover
    main()
