"""`harness` itself: the command listing, loaded without importing the commands."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click
from click.testing import CliRunner

from harness.cli import COMMANDS, main


def test_the_listing_carries_each_commands_own_help():
    for name, short in COMMANDS.items():
        command = getattr(importlib.import_module(f"harness.cli.{name}"), name)
        assert command.name == name
        assert short == command.get_short_help_str(limit=10**6)


def test_help_lists_every_command_as_click_would():
    def listing(group) -> list[str]:
        out = CliRunner().invoke(group, ["--help"], terminal_width=80).output
        return out[out.index("Commands:\n") :].split("\n\n")[0].splitlines()

    eager = click.Group(name="harness")
    for name in COMMANDS:
        eager.add_command(getattr(importlib.import_module(f"harness.cli.{name}"), name))
    assert listing(main) == listing(eager)
    assert len(listing(main)) == 1 + len(COMMANDS)


def test_help_imports_no_command_module():
    code = (
        "import sys\n"
        "from harness.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('harness.cli.', 'harness.suite', "
        "'harness.run', 'numpy', 'pydantic', 'rich')) and m != 'harness.cli._common')\n"
        "print(loaded, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stderr.strip() == "[]"


def test_an_unknown_command_is_exit_2():
    result = CliRunner().invoke(main, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.output
