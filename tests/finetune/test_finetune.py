"""`harness finetune` against the test server's files and fine-tuning APIs, then `harness run`
and `harness ledger` reading the job store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.finetune.records import JobStore, suite_lineage
from harness.suite import load_suite

LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]
QUESTIONS = {
    "card_arrival": "When will my card arrive? {tag}{i}",
    "lost_or_stolen_card": "I lost my card, help {tag}{i}",
    "exchange_rate": "What exchange rate do you use? {tag}{i}",
}
PRICE = 3.0  # $ per 1M trained tokens


def _right(text: str) -> str:
    text = text.lower()
    if "arrive" in text:
        return "card_arrival"
    if "lost" in text:
        return "lost_or_stolen_card"
    return "exchange_rate"


def answer(messages, body) -> str:
    """The trained model answers every question right; the base model misses the lost cards."""
    question = messages[-1]["content"]
    label = _right(question)
    if not str(body.get("model", "")).startswith("ft:") and label == "lost_or_stolen_card":
        label = "exchange_rate"
    return json.dumps({"intent": label})


def write_suite(root: Path, api_base: str, *, guard: str = "", finetune: str = "") -> Path:
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for split, n, tag in (("test", 30, "#"), ("train", 24, "train #")):
        rows = ["text,category"]
        for i in range(n):
            label = LABELS[i % 3]
            rows.append(f'"{QUESTIONS[label].format(tag=tag, i=i)}",{label}')
        (data / f"{split}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    finetune = finetune or (
        "{provider: openai, base_model: openai/gpt-4o-mini-2024-07-18, epochs: 2, seed: 1, "
        f"validation: 0.25, price_per_1m: {PRICE}}}"
    )
    guard = guard or "{metric: accuracy, margin: 0.1, max_iterations: 3, budget_usd: 5}"
    suite = root / "suite.yaml"
    suite.write_text(
        f"""name: ft-suite
task: classification
data: {{test: data/test.csv, train: data/train.csv, input: text, target: category}}
labels: from-data
metrics: [accuracy]
defaults:
  model: openai/gpt-4o-mini
  api_base: {api_base}
  params: {{temperature: 0, max_tokens: 16}}
  timeout: 5
  system: 'Answer as JSON {{"intent": ...}}.'
  user: "Question: {{{{ text }}}}"
variants:
  - name: zero-shot
  - name: ft
    kind: fine-tuned
    finetune: {finetune}
baseline: zero-shot
guard: {guard}
""",
        encoding="utf-8",
    )
    return suite


@pytest.fixture
def setup(openai_server, isolated_cwd, fake_key):
    server = openai_server(answer)
    return server, write_suite(isolated_cwd, server.url)


def _finetune(suite, *args):
    return CliRunner().invoke(
        main, ["finetune", str(suite), "--poll-interval", "0", *args], catch_exceptions=False
    )


def test_full_job_resolves_the_variant_and_the_ledger_charges_its_cost(setup):
    server, suite = setup
    result = _finetune(suite)
    assert result.exit_code == 0, result.output
    print(result.output)
    job = server.fine_tuning.jobs["ftjob-000001"]
    assert job["status"] == "succeeded"
    assert len(server.fine_tuning.created) == 1
    body = server.fine_tuning.created[0]
    assert body["model"] == "gpt-4o-mini-2024-07-18"
    assert body["seed"] == 1
    assert body["method"]["supervised"]["hyperparameters"] == {"n_epochs": 2}
    assert body["metadata"]["harness_suite"] == "ft-suite"
    s = load_suite(suite)
    lineage = suite_lineage(s)
    assert body["metadata"]["harness_lineage"] == lineage[:16]
    # 24 train rows, validation 0.25 → 6 + 18, both uploaded
    train = server.files.content[body["training_file"]].decode().splitlines()
    val = server.files.content[body["validation_file"]].decode().splitlines()
    assert (len(train), len(val)) == (18, 6)
    rec = JobStore("runs", lineage).latest("ft")
    model = f"openai/ft:gpt-4o-mini-2024-07-18:harness-test::000001"
    assert rec["model_id"] == model
    tokens = job["trained_tokens"]
    assert rec["trained_tokens"] == tokens == sum(len(line.split()) for line in train) * 2
    assert rec["cost_usd"] == pytest.approx(tokens * PRICE / 1e6)
    assert [c["step"] for c in rec["checkpoints"]] == [2]

    run = CliRunner().invoke(main, ["run", str(suite), "--json"], catch_exceptions=False)
    summary = json.loads(run.stdout)
    entry = summary["ledger_entry"]["variants"]["ft"]
    assert entry["model"] == model
    assert entry["training_usd"] == pytest.approx(round(tokens * PRICE / 1e6, 6))
    assert summary["variants"]["ft"]["metrics"]["accuracy"]["value"] == 1.0
    assert summary["guard"]["verdicts"]["ft"]["verdict"] == "pass"

    ledger = CliRunner().invoke(main, ["ledger", str(suite)])
    assert ledger.exit_code == 0, ledger.output
    assert f"job ftjob-000001  ft  succeeded  {model}" in ledger.output
