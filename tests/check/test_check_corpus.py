"""Every broken suite or data file in tests/corpus/broken exits 2 with its exact message.

Each case is a folder: suite.yaml (+ the files it points at) and expected.txt, the exact stderr of
`harness check suite.yaml` run from that folder. Regenerate after a deliberate wording change with
HARNESS_REGEN_CORPUS=1 and review the diff.
"""

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "broken"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def test_corpus_is_large_enough():
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES)
def test_broken_suite_exits_2_with_exact_message(case, monkeypatch):
    folder = CORPUS / case
    monkeypatch.chdir(folder)
    result = CliRunner().invoke(main, ["check", "suite.yaml"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    expected = folder / "expected.txt"
    if os.environ.get("HARNESS_REGEN_CORPUS"):
        expected.write_text(result.stderr, encoding="utf-8")
    assert result.stderr == expected.read_text(encoding="utf-8")


def test_valid_base_suite_passes(tmp_path, monkeypatch):
    # The corpus cases are mutations of base.yaml, whose paths are written as from broken/<case>/.
    shutil.copytree(CORPUS.parent / "data", tmp_path / "data")
    case = tmp_path / "broken" / "ok"
    case.mkdir(parents=True)
    shutil.copy(CORPUS.parent / "base.yaml", case / "suite.yaml")
    monkeypatch.chdir(case)
    result = CliRunner().invoke(main, ["check", "suite.yaml"])
    assert result.exit_code == 0, result.output
    assert "corpus-base: suite and data are valid" in result.stdout
