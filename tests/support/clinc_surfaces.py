"""A `suites/clinc-banking.yaml`-shaped run against the test server, with every surface a person
reads written: the terminal, summary.json, report.md/html, the PR comment, the step summary and
JUnit (tests/report/test_surfaces.py, tests/run/test_golden_surfaces.py).

Like the flagship suite: three variants, accuracy + macro_f1 + cost_per_1k, `value:` and a
`guard:` list whose quality hypotheses are all on macro_f1 (never on the first metric)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner
from clinc_style import VARIANTS, N, scripted
from conftest import write_suite

from harness.cli import main

GUARD_LIST = """
baseline: gpt-4o
volume: {monthly_requests: 2000000}
value: {error_cost_usd: 0.40, amortise_months: 12}
guard:
  - {candidate: ft-mini, metric: macro_f1, test: non-inferiority, margin: 0.50, max_iterations: 3}
  - {candidate: few-shot-mini, metric: macro_f1, test: non-inferiority, margin: 0.50}
  - {candidate: ft-mini, metric: net_monthly_value, test: superiority, margin: 0}
"""

SINGLE_GUARD = """
baseline: gpt-4o
volume: {monthly_requests: 2000000}
guard: {metric: macro_f1, test: non-inferiority, margin: 0.30, applies_to: [ft-mini]}
"""

METRICS = "metrics: [accuracy, macro_f1, cost_per_1k]"


def write(root: Path, api_base: str, extra: str = GUARD_LIST, variants: str = VARIANTS) -> Path:
    suite = write_suite(root, api_base, n=N, variants=variants, extra=extra)
    suite.write_text(suite.read_text().replace("metrics: [accuracy]", METRICS))
    return suite


def run(root: Path, suite: Path, *args: str, code: int | None = None) -> dict:
    """`harness run` with --pr-comment, --junit and a step summary; every surface's text."""
    out = root / "out"
    out.mkdir(exist_ok=True)
    step = out / "step.md"
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(step)}
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(suite),
            "--runs-dir",
            str(root / "runs"),
            "--pr-comment",
            str(out / "comment.md"),
            "--junit",
            str(out / "junit.xml"),
            *args,
        ],
        env=env,
        catch_exceptions=False,
    )
    if code is not None:
        assert result.exit_code == code, result.output
    run_dir = sorted((root / "runs").glob("*/*/summary.json"))[-1].parent
    return {
        "exit_code": result.exit_code,
        "terminal": result.output,
        "summary": json.loads((run_dir / "summary.json").read_text()),
        "report.md": (run_dir / "report.md").read_text(),
        "report.html": (run_dir / "report.html").read_text(),
        "comment": (out / "comment.md").read_text(),
        "step": step.read_text(),
        "junit": (out / "junit.xml").read_text(),
        "run_dir": run_dir,
    }


__all__ = ["GUARD_LIST", "SINGLE_GUARD", "N", "run", "scripted", "write"]
