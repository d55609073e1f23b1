"""`python -m harness` is the `harness` command (the same tree as the interpreter's path)."""

from harness.cli import main

main()
