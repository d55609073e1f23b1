"""Golden snapshots of what people read, on the flagship suite's shape and on a single guard:
summary.json, report.md, the PR comment and the GitHub step summary of a `harness run` against
the scripted test server (tests/support/clinc_surfaces.py), pinned under tests/run/golden/surfaces/.

The volatile values are normalised as in test_golden_run.py (run ids, times, tmp dir, server
URL, latencies). No surface may print "None". Regenerate after an intended change, and review
the diff:

    HARNESS_UPDATE_GOLDEN=1 python -m pytest tests/run/test_golden_surfaces.py
"""

from __future__ import annotations

import json

import pytest
from clinc_surfaces import GUARD_LIST, SINGLE_GUARD, run, scripted, write
from test_golden_run import GOLDEN, _assert_snapshot, _dump, normalise, normalise_report

SURFACES = GOLDEN / "surfaces"


@pytest.mark.parametrize(("name", "extra"), [("guard-list", GUARD_LIST), ("single", SINGLE_GUARD)])
def test_surfaces_are_pinned(openai_server, fake_key, tmp_path, monkeypatch, name, extra):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    server = openai_server(scripted)
    out = run(tmp_path, write(tmp_path, server.url, extra=extra))
    folder = SURFACES / name
    folder.mkdir(parents=True, exist_ok=True)
    summary = normalise(out["summary"], root=tmp_path, api_base=server.url)
    texts = {
        "summary.json": _dump(summary),
        "report.md": out["report.md"],
        "comment.md": out["comment"],
        "step.md": out["step"],
    }
    for file, text in texts.items():
        if file != "summary.json":
            text = normalise_report(text, root=tmp_path, api_base=server.url)
        assert "None" not in text, f"{name}/{file} prints None"
        _assert_snapshot(text, folder / file)
    assert json.loads(texts["summary.json"])["hypotheses"]
