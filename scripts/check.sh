#!/usr/bin/env bash
# Every check in one command: lint, format, import layers, types, the docs site, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check harness tests benchmarks
ruff format --check harness tests benchmarks
lint-imports  # the pipeline layers (pyproject.toml [tool.importlinter])
mypy  # strict on the typed results (pyproject.toml [tool.mypy])
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$(mktemp -d)"  # the docs site: every page, link and anchor
python -m pytest -q "$@"
