"""report.md's "Diagnosis" section, when `harness diagnose` left diagnosis.json in the run dir."""

from __future__ import annotations

from harness.diagnose import read
from harness.diagnose import render as R
from harness.report.cells import md_inline, md_table
from harness.rundir.reader import RunFiles


def diagnosis_section(run: RunFiles) -> list[str]:
    d = read(run.path)
    if d is None:
        return []
    lines = [f"## Diagnosis of `{d['variant']}`", "", md_inline(R.headline(d)), ""]
    lines += md_table(["cause", "errors", "share [95% CI]", "evidence"], _escaped(R.cause_rows(d)))
    lines += [md_inline(R.recommendation_text(d)), ""]
    lines += md_table(
        ["approach", "addresses", "investment", "don't"], _escaped(R.approach_rows(d))
    )
    return lines


def _escaped(rows: list[list[str]]) -> list[list[str]]:
    return [[md_inline(c) for c in r] for r in rows]
