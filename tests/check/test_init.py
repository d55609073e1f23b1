"""`harness init DATA`: a starting suite per shipped data set that `check` accepts and `run` runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import intent_answer, write_suite

from harness.check.starter import starter_suite
from harness.cli import main

DATA = Path(__file__).resolve().parents[2] / "data"
# Every shipped data set, the task its targets show, and the variants its suite starts with.
SHIPPED = {
    "banking77-mini/test.csv": ("classification", ["zero-shot", "few-shot"]),
    "banking77/test.csv": ("classification", ["zero-shot", "few-shot"]),
    "clinc150-banking/test.csv": ("classification", ["zero-shot", "few-shot"]),
    "house-style/test.jsonl": ("generation", ["zero-shot", "few-shot"]),
    "pubmedqa/test.jsonl": ("classification", ["zero-shot", "rag"]),
    "restaurant8k/test.jsonl": ("extraction", ["zero-shot", "few-shot"]),
}


@pytest.fixture(autouse=True)
def _isolated(isolated_cwd):
    """MLflow store and any relative output stay in the test's tmp_path."""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_every_shipped_data_set_is_listed():
    found = {p.relative_to(DATA).as_posix() for p in DATA.glob("*/test.*")}
    assert found == set(SHIPPED)


@pytest.mark.parametrize("data", sorted(SHIPPED))
def test_init_writes_a_suite_check_accepts(data, tmp_path):
    task, variants = SHIPPED[data]
    corpus = str(DATA / "pubmedqa" / "passages.jsonl") if data.startswith("pubmedqa") else None
    out = starter_suite(DATA / data, tmp_path / "suites" / "start.yaml", corpus=corpus)
    doc = yaml.safe_load(out.read_text())
    assert doc["task"] == task
    assert [v["name"] for v in doc["variants"]] == variants
    assert doc["guard"]["margin"] == 0.05 and doc["guard"]["max_iterations"] == 3
    assert doc["guard"]["applies_to"] == variants[1:]
    assert "#   kind: fine-tuned" in out.read_text()  # the variant to fill in, commented
    result = invoke("check", out)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{doc['name']}: suite and data are valid")
    assert "  ✓ prompt baseline: zero-shot (prompt)" in result.output


def test_init_runs_the_checklist_and_its_suite_runs_against_the_test_server(
    openai_server, fake_key, tmp_path
):
    server = openai_server(intent_answer)
    write_suite(tmp_path, server.url, n=9)  # data/test.csv and data/train.csv
    result = invoke(
        "init",
        tmp_path / "data" / "test.csv",
        "--model",
        "openai/fake-model",
        "--api-base",
        server.url,
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "wrote data.yaml"
    assert lines[1] == f"data: suite and data are valid ({tmp_path / 'data.yaml'})"
    assert "  ✓ labels: 3 classes" in lines
    assert "  ✓ hypothesis: accuracy superiority, margin 0.05 at 95% confidence (few-shot)" in lines
    assert (
        lines[-1] == "next: `harness run data.yaml`, then `harness diagnose runs/<suite>/<run-id>`"
    )
    ran = invoke("run", "data.yaml", "--runs-dir", tmp_path / "runs")
    assert ran.exit_code in (0, 1), ran.output  # a verdict, not a broken suite (2) or run (3)
    run_dir = next((tmp_path / "runs" / "data").iterdir())
    for variant in ("zero-shot", "few-shot"):
        assert len((run_dir / "results" / f"{variant}.jsonl").read_text().splitlines()) == 9
    assert server.requests == 18
    again = invoke("init", tmp_path / "data" / "test.csv")
    assert again.exit_code == 2
    assert again.output == (
        "Error: data.yaml exists — pass --out NEW.yaml, or --force to overwrite it\n"
    )


def test_a_pandas_index_column_is_not_an_input(tmp_path):
    """pandas' to_csv() writes its index as a first column with an empty header."""
    import pandas as pd

    data = tmp_path / "tickets.csv"
    pd.DataFrame({"text": [f"q{i}" for i in range(12)], "label": ["a", "b", "c"] * 4}).to_csv(data)
    out = starter_suite(data, tmp_path / "tickets.yaml")
    doc = yaml.safe_load(out.read_text())
    assert doc["data"]["input"] == "text"
    assert doc["defaults"]["user"] == "{{ text }}"
    result = invoke("check", out)
    assert result.exit_code == 0, result.output


def test_a_column_no_template_can_name_is_exit_2_before_writing(tmp_path):
    data = tmp_path / "tickets.csv"
    data.write_text("question text,label\n" + "".join(f"q{i},{'ab'[i % 2]}\n" for i in range(8)))
    result = invoke("init", data, "--out", tmp_path / "tickets.yaml")
    assert result.exit_code == 2
    assert result.output == (
        f"Error: {data}: column 'question text' cannot be a template variable (a template reads "
        "{{ name }}) — rename it to letters, digits and _ (e.g. question_text)\n"
    )
    assert not (tmp_path / "tickets.yaml").exists()


def test_init_never_writes_the_suite_over_its_data_file_even_with_force(tmp_path):
    data = tmp_path / "tickets.jsonl"
    data.write_text("".join(f'{{"text": "q{i}", "label": "{"ab"[i % 2]}"}}\n' for i in range(8)))
    before = data.read_bytes()
    result = invoke("init", data, "--out", data, "--force")
    assert result.exit_code == 2
    assert result.output == (
        f"Error: --out {data} is the data file — pass --out NEW.yaml for the suite\n"
    )
    assert data.read_bytes() == before


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://proxy.example/v1?key=sk-live-0123456789abcdef",
            "https://proxy.example/v1?key=***",
        ),
    ],
)
def test_init_keeps_a_credential_in_the_url_out_of_the_suite(tmp_path, url, shown):
    data = tmp_path / "tickets.jsonl"
    data.write_text("".join(f'{{"text": "q{i}", "label": "{"ab"[i % 2]}"}}\n' for i in range(8)))
    result = invoke("init", data, "--out", tmp_path / "t.yaml", "--api-base", url)
    assert result.exit_code == 2
    assert result.output == (
        f"Error: --api-base {shown} carries a credential, which the suite file would keep — put "
        "it in the environment and write ${env:MY_KEY} in its place in the URL (in single "
        "quotes, so the shell leaves it alone)\n"
    )
    assert "hunter2" not in result.output and "0123456789" not in result.output
    assert not (tmp_path / "t.yaml").exists()
    # Named through the environment, the key stays out of the file.
    ok = invoke(
        "init", data, "--out", tmp_path / "t.yaml", "--api-base", "https://h/v1?key=${env:MY_KEY}"
    )
    assert ok.exit_code == 0, ok.output
    suite = yaml.safe_load((tmp_path / "t.yaml").read_text())
    assert suite["defaults"]["api_base"] == "https://h/v1?key=${env:MY_KEY}"


@pytest.mark.parametrize(
    "url",
    [
        "https://bob:${env:PROXY_PASS}@proxy.example/v1",
        "https://${env:PROXY_USER}:${env:PROXY_PASS}@proxy.example/v1",
        "https://${env:PROXY_TOKEN}@proxy.example/v1",
        "https://bob@proxy.example/v1",
        "https://bob:hunter2@proxy.example/v1",
    ],
)
def test_init_refuses_url_userinfo_even_referenced(tmp_path, url):
    # The OpenAI client sends no user:password from a URL, so the suite loader refuses any: init
    # advised "${env:MY_KEY} in its place in the URL" (a suite that then failed to load), and
    # with a reference there wrote that suite and failed on it.
    data = tmp_path / "tickets.jsonl"
    data.write_text("".join(f'{{"text": "q{i}", "label": "{"ab"[i % 2]}"}}\n' for i in range(8)))
    res = invoke("init", data, "--out", tmp_path / "t.yaml", "--api-base", url)
    assert res.exit_code == 2
    assert res.output == (
        "Error: --api-base https://***@proxy.example/v1: a user:password@ in the URL is not "
        "sent by the OpenAI client (the suite would not load) — pass the URL without it, and "
        "the key in the written suite as `defaults.params.api_key: ${env:NAME}`\n"
    )
    assert "hunter2" not in res.output and not (tmp_path / "t.yaml").exists()


def test_init_refuses_a_literal_key_beside_a_reference(tmp_path):
    data = tmp_path / "tickets.jsonl"
    data.write_text("".join(f'{{"text": "q{i}", "label": "{"ab"[i % 2]}"}}\n' for i in range(8)))
    url = "https://proxy.example/v1?api-key=abc123&x=${env:X}"
    res = invoke("init", data, "--out", tmp_path / "t.yaml", "--api-base", url)
    assert res.exit_code == 2 and "carries a credential" in res.output, res.output
    assert not (tmp_path / "t.yaml").exists()
