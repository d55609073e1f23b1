"""`python -m harness.cli`: the same as `harness` and `python -m harness`."""

from harness.cli import main

main()
