"""Plugins: a package installed with a `harness` entry point (a dist-info folder on the path, as
pip leaves it) adds a metric with an option and a retrieval method that `harness run` uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import keyword_rag_suite

REPO = Path(__file__).resolve().parents[1]

PLUGIN = r'''
"""A plugin: one metric with an option, one retrieval method."""

import re

import numpy as np
from pydantic import BaseModel, ConfigDict

import harness
from harness.score.metrics import ratio


class PrefixOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str


@harness.metric("starts_with", options=PrefixOptions)
def starts_with(table: harness.Table, prefix: str):
    """Share of answers that start with `prefix` (an error counts as a miss)."""
    if table.n_records == 0:
        return None
    hits = np.array(
        [float(r.get("error") is None and str(r.get("output") or "").startswith(prefix))
         for r in table.records]
    )
    stats = np.c_[table.per_example(hits), table.per_example(np.ones_like(hits))]
    return harness.Decomposed(stats, ratio)


@harness.retrieval_index("keyword")
class KeywordIndex(harness.TextIndex):
    """Chunks ranked by how many distinct words they share with the query."""

    def __init__(self, texts):
        self.vocab = [set(re.findall(r"\w+", t.lower())) for t in texts]

    def search(self, queries, k):
        results = []
        for query in queries:
            asked = set(re.findall(r"\w+", query.lower()))
            shared = [(i, float(len(asked & words))) for i, words in enumerate(self.vocab)]
            ranked = sorted(shared, key=lambda hit: -hit[1])
            results.append([hit for hit in ranked if hit[1] > 0][:k])
        return results
'''


@pytest.fixture
def plugin_path(tmp_path):
    """`pip install` of a one-module package, by hand: the module and its dist-info, no .pth."""
    site = tmp_path / "site"
    (site / "harness_keyword").mkdir(parents=True)
    (site / "harness_keyword" / "__init__.py").write_text(PLUGIN, encoding="utf-8")
    dist = site / "harness_keyword-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: harness-keyword\nVersion: 0.3\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text("[harness]\nkeyword = harness_keyword\n")
    return site


def harness_cli(*args, cwd, extra_path=None, env=None):
    path = [str(REPO)] + ([str(extra_path)] if extra_path else [])
    full_env = {k: v for k, v in os.environ.items() if k != "HARNESS_PLUGINS"}
    full_env.update(PYTHONPATH=os.pathsep.join(path), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _rag_suite(tmp_path, url):
    path = keyword_rag_suite(tmp_path, url)
    path.write_text(
        path.read_text().replace(
            "metrics: [accuracy]",
            """metrics: [accuracy, {starts_with: {prefix: '{"intent": "card'}}]""",
        )
    )
    return path


def test_an_installed_plugin_is_used_by_harness_run(
    openai_server, tmp_path, fake_key, isolated_cwd, plugin_path
):
    server = openai_server()
    suite = _rag_suite(tmp_path, server.url)

    listed = harness_cli("plugins", cwd=tmp_path, extra_path=plugin_path)
    assert listed.returncode == 0, listed.stderr
    assert (
        "keyword (entry point of harness-keyword 0.3: harness_keyword)\n"
        "  metrics: starts_with\n"
        "  retrieval methods: keyword\n"
    ) in listed.stdout
    assert "harness.score (built-in)\n  metrics: accuracy, chrf," in listed.stdout

    assert harness_cli("check", suite, cwd=tmp_path, extra_path=plugin_path).returncode == 0
    run = harness_cli(
        "run", suite, "--runs-dir", tmp_path / "runs", "--workers", 0, "--json",
        cwd=tmp_path, extra_path=plugin_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    got = summary["variants"]["zero-shot"]["metrics"]["starts_with"]
    # 12 questions, every third about a card arriving: the scripted model answers card_arrival.
    assert got["value"] == pytest.approx(4 / 12)
    assert got["ci_low"] < got["value"] < got["ci_high"]
    results = next((tmp_path / "runs" / "test-suite").glob("*/results/rag.jsonl"))
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(records) == 12
    for r in records:
        # The scripted model answers from the question, so the answer says what was asked: the
        # card questions share words with cards.md only, the exchange-rate ones with rates.md.
        asked_about_cards = r["parsed"] in ("card_arrival", "lost_or_stolen_card")
        want = "docs/cards.md" if asked_about_cards else "docs/rates.md"
        assert [p["id"] for p in r["retrieved"]] == [want], r


def test_without_the_plugin_the_suite_is_refused_with_the_known_names(tmp_path, isolated_cwd):
    suite = _rag_suite(tmp_path, "http://127.0.0.1:9/v1")
    result = harness_cli("check", suite, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"Error: {suite}:21:46: variants[1].retrieval.method: expected one of 'bm25', 'tfidf', "
        "'embedding' or 'gold' (got 'keyword')\n"
    )
    # With the retrieval method fixed, the metric is the next thing refused, with the known ones.
    suite.write_text(suite.read_text().replace("method: keyword", "method: bm25"))
    result = harness_cli("check", suite, cwd=tmp_path)
    assert result.returncode == 2
    assert "metrics[1]: unknown metric 'starts_with' — known metrics: accuracy," in result.stderr


def test_harness_plugins_env_names_a_module(tmp_path, plugin_path, isolated_cwd):
    (tmp_path / "mine.py").write_text(
        textwrap.dedent(
            """
            import harness

            @harness.record_score("shouts")
            def shouts(seen):
                return float(seen.output.isupper())
            """
        )
    )
    result = harness_cli(
        "plugins", cwd=tmp_path, extra_path=tmp_path, env={"HARNESS_PLUGINS": " mine ,"}
    )
    assert result.returncode == 0, result.stderr
    assert "mine (HARNESS_PLUGINS)\n  record scores: shouts\n" in result.stdout


def test_a_plugin_that_cannot_be_imported_is_exit_2_naming_it(tmp_path, isolated_cwd):
    result = harness_cli("plugins", cwd=tmp_path, env={"HARNESS_PLUGINS": "no_such_plugin"})
    assert result.returncode == 2
    assert result.stderr == (
        "Error: plugin 'no_such_plugin' (HARNESS_PLUGINS): cannot import 'no_such_plugin' "
        "(No module named 'no_such_plugin') — check the module path in HARNESS_PLUGINS "
        "(is it on PYTHONPATH?)\n"
    )
    assert result.stdout == ""


def test_a_commands_help_does_not_load_plugins(tmp_path, isolated_cwd):
    result = harness_cli("plan", "--help", cwd=tmp_path, env={"HARNESS_PLUGINS": "no_such_plugin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: python -m harness.cli plan [OPTIONS] SUITE.yaml")


def test_a_plugin_that_takes_a_built_in_name_is_refused(tmp_path, isolated_cwd):
    # Silently replacing `accuracy` would change what every suite's hypothesis measures.
    (tmp_path / "clash.py").write_text(
        "import harness\n\n\n@harness.metric('accuracy')\ndef accuracy(table):\n    return 1.0\n"
    )
    result = harness_cli(
        "plugins", cwd=tmp_path, extra_path=tmp_path, env={"HARNESS_PLUGINS": "clash"}
    )
    assert result.returncode == 2
    assert result.stderr == (
        "Error: plugin 'clash' (HARNESS_PLUGINS): registers metrics 'accuracy', already "
        "registered by harness.score.metrics — rename it in the plugin\n"
    )


def test_an_entry_point_naming_a_missing_attribute_is_exit_2(tmp_path, plugin_path, isolated_cwd):
    (plugin_path / "harness_keyword-0.3.dist-info" / "entry_points.txt").write_text(
        "[harness]\nkeyword = harness_keyword:register\n"
    )
    result = harness_cli("plugins", cwd=tmp_path, extra_path=plugin_path)
    assert result.returncode == 2
    assert result.stderr == (
        "Error: plugin 'keyword' (entry point of harness-keyword 0.3): cannot load "
        "'harness_keyword:register' (module 'harness_keyword' has no attribute 'register') — "
        "reinstall harness-keyword or uninstall it\n"
    )


def test_a_module_named_twice_is_loaded_and_listed_once(tmp_path, isolated_cwd):
    (tmp_path / "mine.py").write_text(
        "import harness\n\n\n@harness.record_score('shouts')\ndef shouts(seen):\n    return 1.0\n"
    )
    result = harness_cli(
        "plugins", cwd=tmp_path, extra_path=tmp_path, env={"HARNESS_PLUGINS": "mine, mine"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("mine (HARNESS_PLUGINS)") == 1
