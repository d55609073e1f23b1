"""`harness diagnose` from the command line: exact lines, files read back, exit codes, MLflow."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import intent_answer, write_suite
from diagnose_run import make_planted_run
from statsmodels.stats.proportion import proportion_confint

from harness.cli import main


@pytest.fixture(autouse=True)
def _isolated(isolated_cwd):
    """MLflow store and any relative output stay in the test's tmp_path."""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def wrong_zero_shot(messages, body) -> str:
    """few-shot (its prompt shows "A:" answers) is right; zero-shot answers lost-card
    questions outside the label set and exchange-rate ones with the wrong intent."""
    prompt = "\n".join(str(m.get("content")) for m in messages)
    if " A: " in prompt:
        return intent_answer(messages, body)
    question = messages[-1]["content"].lower()
    if "lost" in question:
        return "I think it is lost"
    if "exchange" in question:
        return json.dumps({"intent": "card_arrival"})
    return intent_answer(messages, body)


def pct_ci(k: int, n: int) -> str:
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return f"{k / n:.0%} [{lo:.0%}, {hi:.0%}]"


def test_diagnose_a_real_run_prints_the_table_and_logs_to_its_mlflow_parent(
    openai_server, fake_key, tmp_path
):
    server = openai_server(wrong_zero_shot)
    suite = write_suite(tmp_path, server.url, n=12)
    ran = invoke("run", suite, "--runs-dir", tmp_path / "runs")
    assert ran.exit_code == 0, ran.output
    run_dir = next((tmp_path / "runs" / "test-suite").iterdir())
    result = invoke("diagnose", run_dir)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "zero-shot (baseline, openai/fake-model): 8 of 12 examples wrong or failed; each "
        "counted once, by precedence failed > format > inconsistent > specification > "
        "knowledge > capability > label doubt > residual"
    )
    four = pct_ci(4, 8)
    assert (
        f"  format         4       {four}  the model does not produce the format consistently"
        in lines
    )
    assert f"  specification  4       {four}  fixed by few-shot" in lines
    assert (
        "  knowledge      –       not measured    no RAG variant — add a `kind: rag` variant "
        "(with `data.gold`, `--probe gold` then also hands the model the gold passages)" in lines
    )
    assert (
        f"Recommendation: prompt engineering — addresses {pct_ci(8, 8)} of the errors (hours); "
        "a format-focused prompt (state the labels and the answer format); "
        "few-shot already fixes the specification errors." in lines
    )
    assert f"wrote {run_dir / 'diagnosis.json'}" in lines
    assert f"report section added to {run_dir / 'report.md'}" in lines
    saved = json.loads((run_dir / "diagnosis.json").read_text())
    assert saved["n_errors"] == 8 and saved["recommendation"] == "prompt"
    assert "## Diagnosis of `zero-shot`" in (run_dir / "report.md").read_text()
    # The diagnosis is an artifact of the run's MLflow parent run.
    logged = [line for line in lines if line.startswith("logged to MLflow at ")]
    assert len(logged) == 1, result.output
    parent = logged[0].rsplit(" ", 1)[1]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    assert client.get_run(parent).data.tags["harness.role"] == "suite"
    names = [a.path for a in client.list_artifacts(parent)]
    assert "diagnosis.json" in names
    local = client.download_artifacts(parent, "diagnosis.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == saved
    # `harness report --log` logs the run again, its diagnosis with it.
    relogged = invoke("report", run_dir, "--log")
    assert relogged.exit_code == 0, relogged.output
    new_parent = relogged.output.splitlines()[-1].split("parent run ")[1].split(" ")[0]
    assert "diagnosis.json" in [a.path for a in client.list_artifacts(new_parent)]


def test_a_run_not_in_mlflow_is_said_and_exits_0(tmp_path):
    run_dir = make_planted_run(tmp_path, ["right", "format", "residual"])
    result = invoke("diagnose", run_dir)
    assert result.exit_code == 0, result.output
    uri = os.environ["MLFLOW_TRACKING_URI"]
    assert result.output.splitlines()[-1] == (
        f"not logged to MLflow: run {run_dir.name} is not in {uri} "
        f"(`harness report {run_dir} --log` logs it with its diagnosis)"
    )


def test_a_bad_run_dir_or_variant_is_exit_2_with_the_fix(tmp_path):
    result = invoke("diagnose", tmp_path / "runs" / "nope")
    assert result.exit_code == 2
    assert result.output == (
        f"Error: run directory not found: {tmp_path / 'runs' / 'nope'} — pass "
        "runs/<suite>/<run-id>\n"
    )
    run_dir = make_planted_run(tmp_path, ["right", "format"])
    result = invoke("diagnose", run_dir, "--variant", "nope", "--no-log")
    assert result.exit_code == 2
    assert result.output == (
        f"Error: unknown variant 'nope' in {run_dir} — choose one of "
        "['zero-shot', 'few-shot', 'rag', 'big']\n"
    )
    assert not (run_dir / "diagnosis.json").exists()


def big_or_wrong(messages, body) -> str:
    """openai/big-model answers right; the suite's model as wrong_zero_shot does."""
    if body.get("model") == "big-model":
        return intent_answer(messages, body)
    return wrong_zero_shot(messages, body)


def test_probes_are_priced_confirmed_and_run_on_the_wrong_examples_only(
    openai_server, fake_key, tmp_path
):
    server = openai_server(big_or_wrong)
    suite = write_suite(
        tmp_path,
        server.url,
        n=12,
        variants="\n  - name: zero-shot\n",
        extra="\ndiagnose: {stronger: openai/big-model}\n",
    )
    ran = invoke("run", suite, "--runs-dir", tmp_path / "runs")
    assert ran.exit_code == 0, ran.output
    assert server.requests == 12
    run_dir = next((tmp_path / "runs" / "test-suite").iterdir())
    # Not confirmed (no terminal answers): nothing is sent.
    refused = invoke("diagnose", run_dir, "--probe", "stronger", "--no-log")
    assert refused.exit_code == 1
    assert refused.output.splitlines()[0] == (
        "probe stronger: openai/big-model on 8 wrong example(s), 8 new call(s), price unknown "
        "(no price for the model)"
    )
    assert server.requests == 12 and not (run_dir / "diagnosis.json").exists()
    result = invoke(
        "diagnose", run_dir, "--probe", "repeats", "--probe", "stronger", "--yes", "--no-log"
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "probe repeats: openai/fake-model on 8 wrong example(s), 16 new call(s), price unknown "
        "(no price for the model) — at temperature 0 repeats only disagree where the provider "
        "is nondeterministic"
    )
    # The repeats probe's first call is the run's own answer, from the cache.
    assert server.requests == 12 + 16 + 8
    four = pct_ci(4, 8)
    assert (
        f"  format         4       {four}  the model does not produce the format consistently"
        in lines
    )
    assert (
        f"  inconsistent   0       {pct_ci(0, 8):<14}  the model does not answer consistently"
        in lines
    )
    assert f"  capability     4       {four}  fixed by probe: openai/big-model" in lines
    saved = json.loads((run_dir / "diagnosis.json").read_text())
    assert [p["probe"] for p in saved["probes"]] == ["repeats", "stronger"]
    assert saved["evidence"]["probes"] == ["repeats", "stronger"]
    assert [p["calls"] for p in saved["probes"]] == [24, 8]


def test_a_probe_without_its_model_or_not_built_is_exit_2_before_any_call(tmp_path):
    run_dir = make_planted_run(tmp_path, ["right", "residual", "capability"])
    result = invoke("diagnose", run_dir, "--probe", "stronger", "--yes", "--no-log")
    assert result.exit_code == 2
    assert result.output == (
        "Error: --probe stronger needs a model: pass --stronger MODEL, or set "
        "`diagnose: {stronger: MODEL}` in the suite\n"
    )
    result = invoke("diagnose", run_dir, "--probe", "gold", "--yes", "--no-log")
    assert result.exit_code == 2
    assert result.output == (
        "Error: --probe gold needs `data.gold` in the suite (the column naming each test "
        "example's gold passage ids) — add it and rerun, or add a `kind: rag` variant to "
        "measure knowledge\n"
    )
    assert not (run_dir / "diagnosis.json").exists()


RAG = """
  - name: zero-shot
  - name: rag
    kind: rag
    retrieval: {corpus: 'docs/*.md', method: bm25, k: 1}
    user: "{% for c in context %}{{ c.text }} {% endfor %}Question: {{ text }}"
"""
LOST_PASSAGE = "Freeze it in the app at once."


def knows_only_with_the_passage(messages, body) -> str:
    """Right on lost-card questions only when the lost-card passage is in the prompt."""
    prompt = "\n".join(str(m.get("content")) for m in messages)
    if "lost" in messages[-1]["content"].lower() and LOST_PASSAGE not in prompt:
        return json.dumps({"intent": "card_arrival"})
    return intent_answer(messages, body)


def gold_suite(tmp_path, server, lost_gold="lost"):
    """The RAG suite over three passages with a data.gold column; `lost_gold` is the lost-card
    questions' gold id."""
    suite = write_suite(tmp_path, server.url, n=12, variants=RAG)
    # bm25 finds nothing for "I lost my card, help" in the lost-card passage (no shared word):
    # the rag variant misses it as zero-shot does; data.gold names the passage that answers.
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "arrival.md").write_text("A new card arrives within five days.")
    (tmp_path / "docs" / "lost.md").write_text(LOST_PASSAGE)
    (tmp_path / "docs" / "rates.md").write_text("Our exchange rate is the market rate.")
    gold = {"card_arrival": "arrival", "lost_or_stolen_card": lost_gold, "exchange_rate": "rates"}
    test = tmp_path / "data" / "test.csv"
    rows = test.read_text().splitlines()
    test.write_text(
        "\n".join([rows[0] + ",gold"] + [f"{r},{gold[r.rsplit(',', 1)[1]]}" for r in rows[1:]])
        + "\n"
    )
    suite.write_text(
        suite.read_text().replace("  target: category\n", "  target: category\n  gold: gold\n")
    )
    return suite


def test_the_gold_probe_hands_the_wrong_examples_their_gold_passages(
    openai_server, fake_key, tmp_path
):
    server = openai_server(knows_only_with_the_passage)
    suite = gold_suite(tmp_path, server)
    ran = invoke("run", suite, "--runs-dir", tmp_path / "runs")
    assert ran.exit_code == 0, ran.output
    assert server.requests == 24
    run_dir = next((tmp_path / "runs" / "test-suite").iterdir())
    before = invoke("diagnose", run_dir, "--no-log")
    assert "  knowledge      0" in before.output, before.output
    result = invoke("diagnose", run_dir, "--probe", "gold", "--yes", "--no-log")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "probe gold: openai/fake-model on 4 wrong example(s), 4 new call(s), price unknown "
        "(no price for the model) — with each example's gold passages"
    )
    assert server.requests == 24 + 4
    assert f"  knowledge      4       {pct_ci(4, 4)}  fixed by gold-context probe" in lines, (
        result.output
    )
    probe_prompts = [p for p in server.prompts if LOST_PASSAGE in p and "Context:" in p]
    assert len(probe_prompts) == 4
    saved = json.loads((run_dir / "diagnosis.json").read_text())
    assert saved["evidence"]["probes"] == ["gold"]
    assert [p["calls"] for p in saved["probes"]] == [4]


def test_method_gold_without_data_gold_is_exit_2_at_check(tmp_path):
    suite = write_suite(
        tmp_path,
        "http://127.0.0.1:9/v1",
        variants=RAG.replace("method: bm25", "method: gold"),
    )
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "lost.md").write_text(LOST_PASSAGE)
    result = invoke("check", suite)
    assert result.exit_code == 2
    assert "method: gold hands each example its gold passages, named by `data.gold` — set " in (
        result.output
    )


def test_gold_ids_matching_no_document_stop_before_any_call(openai_server, fake_key, tmp_path):
    # A data.gold id naming no document of the corpus (a typo, another naming) was handed an
    # empty context: the probe's examples stayed wrong and read as "not knowledge".
    server = openai_server(knows_only_with_the_passage)
    suite = gold_suite(tmp_path, server, lost_gold="lost-card")
    ran = invoke("run", suite, "--runs-dir", tmp_path / "runs")
    assert ran.exit_code == 0, ran.output
    calls = server.requests
    run_dir = next((tmp_path / "runs" / "test-suite").iterdir())
    result = invoke("diagnose", run_dir, "--probe", "gold", "--yes", "--no-log")
    assert result.exit_code == 2, result.output
    assert (
        "gold id 'lost-card' names no document of the corpus (3 "
        "documents, e.g. 'arrival.md') — name each gold passage by its document's id, file "
        "name or file stem"
    ) in result.output, result.output
    assert server.requests == calls
    # The same at `harness run` with `retrieval.method: gold`.
    suite.write_text(suite.read_text().replace("method: bm25", "method: gold"))
    ran = invoke("run", suite, "--runs-dir", tmp_path / "runs")
    assert ran.exit_code == 2 and "gold id 'lost-card' names no document" in ran.output, ran.output
    assert server.requests == calls
