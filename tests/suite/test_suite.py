from pathlib import Path

import pytest

from harness.errors import SuiteError
from harness.suite import load_suite

SUITE = """
name: demo
task: classification
data: {test: test.csv, train: train.csv, input: text, target: label}
labels: from-data
metrics: [accuracy]
defaults:
  model: openai/gpt-4o-mini
  params: {temperature: 0, max_tokens: 16}
  system: "You classify."
  user: "Q: {{ text }}"
variants:
  - name: base
  - name: hot
    extends: base
    params: {temperature: 0.7}
  - name: fs
    extends: hot
    model: openai/gpt-4o
    few_shot: {k: 2, select: random}
  - name: ft
    kind: fine-tuned
    model: openai/ft:gpt-4o-mini:acme::1
    base_model: openai/gpt-4o-mini
    training: {tokens: 2000000, price_per_1m: 3.0, epochs: 2}
baseline: base
"""


def write(tmp_path: Path, text: str = SUITE) -> Path:
    (tmp_path / "test.csv").write_text("text,label\nhi,a\nyo,b\n")
    (tmp_path / "train.csv").write_text("text,label\nhey,a\n")
    p = tmp_path / "suite.yaml"
    p.write_text(text)
    return p


def test_defaults_and_extends_are_merged(tmp_path):
    suite = load_suite(write(tmp_path))
    base, hot, fs, ft = suite.variants
    assert base.params == {"temperature": 0, "max_tokens": 16}
    assert hot.params == {"temperature": 0.7, "max_tokens": 16}
    assert fs.params == {"temperature": 0.7, "max_tokens": 16}
    assert fs.model == "openai/gpt-4o" and hot.model == "openai/gpt-4o-mini"
    assert fs.few_shot.k == 2 and hot.few_shot is None
    assert fs.system == "You classify." and fs.user == "Q: {{ text }}"
    assert ft.kind == "fine-tuned" and ft.training.total_usd() == pytest.approx(12.0)
    assert [v.kind for v in suite.variants] == ["prompt", "prompt", "prompt", "fine-tuned"]


def test_guarded_defaults_to_fine_tuned_variants(tmp_path):
    suite = load_suite(write(tmp_path, SUITE + "guard: {metric: accuracy, margin: 0.05}\n"))
    assert suite.guarded() == ["ft"]
    assert suite.hypothesis() == {
        "metric": "accuracy",
        "test": "superiority",
        "margin": 0.05,
        "confidence": 0.95,
    }


def test_paths_are_relative_to_the_suite_file(tmp_path, monkeypatch):
    p = write(tmp_path)
    monkeypatch.chdir("/")
    suite = load_suite(p)
    assert suite.resolve_path(suite.spec.data.test) == tmp_path / "test.csv"


def test_several_problems_are_reported_together_in_line_order(tmp_path):
    text = SUITE.replace("  - name: base\n", "  - name: base\n    repeats: 0\n    colour: red\n")
    with pytest.raises(SuiteError) as e:
        load_suite(write(tmp_path, text))
    lines = str(e.value).splitlines()
    assert lines == [
        f"{tmp_path / 'suite.yaml'}:14:14: variants[0].repeats: must be greater than or equal to 1 (got 0)",
        f"{tmp_path / 'suite.yaml'}:15:5: variants[0].colour: unknown key — allowed keys: "
        "api_base, base_model, extends, few_shot, finetune, forgetting, kind, model, name, params, pricing, rate_limit, "
        "repeats, response_format, retrieval, retriever, system, timeout, training, user",
    ]


def test_unknown_key_that_looks_like_a_type_name_is_reported_not_dropped(tmp_path):
    # Pydantic's union-branch markers ('str', 'CorpusColumn', ...) are dropped from key paths;
    # a user's key of the same shape is still named (it once crashed with an IndexError).
    text = SUITE.replace("baseline: base\n", "baseline: base\nFoo: 1\nstr: 2\n")
    with pytest.raises(SuiteError) as e:
        load_suite(write(tmp_path, text))
    lines = str(e.value).splitlines()
    assert [line.split(": ", 2)[1] for line in lines] == ["Foo", "str"]
    assert lines[0].startswith(f"{tmp_path / 'suite.yaml'}:27:1: Foo: unknown key")


def test_union_branch_markers_are_dropped_from_the_key_path(tmp_path):
    text = SUITE.replace("labels: from-data", "labels: [a, {b: 1}]")
    with pytest.raises(SuiteError) as e:
        load_suite(write(tmp_path, text))
    assert str(e.value).splitlines() == [
        f"{tmp_path / 'suite.yaml'}:5:9: labels: expected one of 'from-data'",
        f"{tmp_path / 'suite.yaml'}:5:13: labels[1]: expected text",
    ]
