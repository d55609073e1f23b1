#!/usr/bin/env bash
# Every check in one command: lint, format, import layers, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check harness tests benchmarks
ruff format --check harness tests benchmarks
lint-imports  # the pipeline layers (pyproject.toml [tool.importlinter])
mypy  # strict on the typed results (pyproject.toml [tool.mypy])
python -m pytest -q "$@"
