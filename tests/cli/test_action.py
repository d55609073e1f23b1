"""action.yml, the composite GitHub Action: its shell steps run here as a runner would run them,
with `harness` on PATH and a recording `gh` (the GitHub API is not reachable from tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import write_suite

ACTION = Path(__file__).parents[2] / "action.yml"

GUARD = """
baseline: zero-shot
guard: {metric: accuracy, test: superiority, margin: 0.05, confidence: 0.95, applies_to: [few-shot]}
"""

# Records its arguments; answers the comment listing with an id when $GH_EXISTING is set.
GH = """#!/usr/bin/env bash
echo "$*" >> "$GH_LOG"
case "$*" in *--paginate*) [ -n "$GH_EXISTING" ] && echo "$GH_EXISTING" ;; esac
exit 0
"""


def _steps() -> dict[str, dict]:
    doc = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    assert doc["runs"]["using"] == "composite"
    return {s.get("name", s.get("uses")): s for s in doc["runs"]["steps"]}


def _bash(step: dict, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, timeout=300
    )


def test_action_runs_the_suite_posts_one_sticky_comment_and_gates(
    openai_server, fake_key, tmp_path
):
    steps = _steps()
    assert list(steps) == [
        "actions/setup-python@v5",
        "Install harness",
        "Run the suite",
        "Post or update the PR comment",
        "Gate on the exit code",
    ]
    server = openai_server()
    suite = write_suite(tmp_path, server.url, extra=GUARD)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "harness").write_text(f'#!/bin/sh\nexec {sys.executable} -m harness.cli "$@"\n')
    (bin_dir / "gh").write_text(GH)
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    output = tmp_path / "github_output"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(output),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
        "SUITE": str(suite),
        "ARGS": f"--runs-dir {tmp_path / 'runs'} --workers 0",
    }
    ran = _bash(steps["Run the suite"], env)
    assert ran.returncode == 0, ran.stderr  # the step records the code; the gate fails later
    comment = tmp_path / "harness-pr-comment.md"
    assert output.read_text().splitlines() == ["exit_code=1", f"comment_file={comment}"]
    text = comment.read_text()
    lines = text.splitlines()
    assert lines[0] == "<!-- harness-pr-comment:test-suite -->"
    assert lines[1].endswith(
        "exit code 1 — the guard flagged a variant (fail, inconclusive, abandon or moved goalposts)"
    )
    assert (
        "| hypothesis | verdict | Δ vs baseline [CI] | cost / request | break-even | ledger |"
        in text
    )
    assert any(x.startswith("| few-shot | ") and "1 iteration(s)" in x for x in lines)

    log = tmp_path / "gh.log"
    env.update(
        {"GH_LOG": str(log), "GH_TOKEN": "t", "PR": "7", "REPO": "o/r", "COMMENT": str(comment)}
    )
    post = steps["Post or update the PR comment"]
    assert post["if"] == "${{ inputs.comment == 'true' && github.event.pull_request.number }}"
    assert _bash(post, {**env, "GH_EXISTING": ""}).returncode == 0
    assert _bash(post, {**env, "GH_EXISTING": "991"}).returncode == 0
    calls = log.read_text().splitlines()
    assert calls[0].startswith("api repos/o/r/issues/7/comments --paginate --jq ")
    assert 'startswith("<!-- harness-pr-comment:test-suite -->")' in calls[0]
    # No comment yet: one is created; then that one is updated, never a second one.
    assert calls[1] == f"api --method POST repos/o/r/issues/7/comments -F body=@{comment}"
    assert calls[3] == f"api --method PATCH repos/o/r/issues/comments/991 -F body=@{comment}"
    assert len(calls) == 4

    gate = _bash(steps["Gate on the exit code"], {**env, "CODE": "1"})
    assert gate.returncode == 1
    assert (
        gate.stdout == "::error::harness exit 1: the guard flagged a variant (see the PR comment)\n"
    )
    assert _bash(steps["Gate on the exit code"], {**env, "CODE": "0"}).returncode == 0
    # A storage failure is its own code, never reported as the guard's.
    storage = _bash(steps["Gate on the exit code"], {**env, "CODE": "4"})
    assert storage.returncode == 4
    assert storage.stdout.startswith("::error::harness exit 4: could not write results")
