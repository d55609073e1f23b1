"""The public API is exactly `harness.__all__`, each name resolves, and importing it is cheap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import harness

PUBLIC = [
    "__version__",
    "run_suite",
    "RunOptions",
    "RunOutcome",
    "Record",
    "Summary",
    "Hypothesis",
    "Verdict",
    "HarnessError",
    "SuiteError",
    "metric",
    "Decomposed",
    "Table",
    "record_score",
    "Seen",
    "retrieval_index",
    "TextIndex",
    "finetune_backend",
    "FinetuneSpec",
    "JobState",
    "load_plugins",
]
RESULTS = {"Record", "Summary", "Hypothesis", "Verdict"}  # harness/results.py (typed results)


def test_all_is_exact():
    assert harness.__all__ == PUBLIC


@pytest.mark.parametrize("name", [n for n in PUBLIC if n not in RESULTS])
def test_every_public_name_resolves_to_its_definition(name):
    value = getattr(harness, name)
    assert value is not None
    if name != "__version__":
        module = harness._EXPORTS[name][0]
        assert value is getattr(sys.modules[module], harness._EXPORTS[name][1])


def test_typed_results_are_exported_by_name():
    pytest.importorskip("harness.results", reason="harness/results.py is not merged yet")
    for name in RESULTS:
        assert getattr(harness, name).__module__ == "harness.results"


def test_the_decorators_are_the_registries_own():
    from harness.finetune.backends import backend
    from harness.retrieve.indexes import index
    from harness.score.registry import metric
    from harness.score.scorer import record_score

    assert harness.metric is metric and harness.record_score is record_score
    assert harness.retrieval_index is index and harness.finetune_backend is backend


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="module 'harness' has no attribute 'nope'"):
        harness.nope  # noqa: B018


def test_import_harness_loads_nothing_heavy():
    code = (
        "import sys, harness; "
        "print(sorted(m for m in ('numpy', 'pydantic', 'litellm', 'mlflow', 'harness.run') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == "[]"
