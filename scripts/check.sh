#!/usr/bin/env bash
# Every check in one command: lint, format, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check harness tests benchmarks
ruff format --check harness tests benchmarks
python -m pytest -q "$@"
