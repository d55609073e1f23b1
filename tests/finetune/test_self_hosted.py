"""Self-hosted training through the suite path: `harness finetune` trains SmolLM2 with LoRA for a
few steps (the `local` backend), `harness run` evaluates it next to a provider's fine-tuned model
(the test server), and the measured cost — wall-clock × price_per_hour — reaches the job store,
summary.json, `harness ledger`, MLflow's ledger.json and the report's training-cost table.

One training iteration is killed (-9) as it starts and the next one trains to the end, so the
same minute of CPU checks the kill/rerun path and what a finished job records. The suite is
renamed between `harness finetune` and `harness run`: the job store is keyed by the test data.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_finetune import LABELS, write_data
from test_finetune import answer as provider_answer

from harness.calls import local_processes, local_trained
from harness.cli import main
from harness.decide.ledger import ledger_entry, lineage, spend_text
from harness.finetune.backends import finetune_spec
from harness.finetune.records import JobStore, suite_lineage, train_split_hash
from harness.finetune.resolve import resolve_trained
from harness.stats.numbers import money
from harness.suite import load_suite

PRICE_PER_HOUR = 0.36  # $0.0001 a second
PRICE_PER_1M = 3.0  # the provider's training price


def write_suite(root: Path, api_base: str, *, name: str = "both", lora: str = "") -> Path:
    write_data(root, n_test=9, n_train=20)
    lora = lora or (
        "{provider: local, method: lora, epochs: 1, max_steps: 4, batch_size: 4, seed: 1, "
        f"validation: 0.2, verify_examples: 2, max_new_tokens: 12, price_per_hour: {PRICE_PER_HOUR}}}"
    )
    path = root / f"{name}.yaml"
    path.write_text(
        f"""name: {name}
task: classification
data: {{test: data/test.csv, train: data/train.csv, input: text, target: category}}
labels: from-data
metrics: [accuracy]
defaults:
  model: local/smollm2
  params: {{temperature: 0, max_tokens: 12}}
  system: 'Answer as JSON {{"intent": ...}} with one of {", ".join(LABELS)}.'
  user: "Question: {{{{ text }}}}"
variants:
  - name: zero-shot
    model: openai/gpt-4o-mini
    api_base: {api_base}
  - name: ft
    kind: fine-tuned
    api_base: {api_base}
    finetune: {{provider: openai, base_model: openai/gpt-4o-mini-2024-07-18, epochs: 1,
               seed: 1, price_per_1m: {PRICE_PER_1M}}}
  - name: lora
    kind: fine-tuned
    base_model: local/smollm2
    finetune: {lora}
baseline: zero-shot
guard:
  - {{metric: accuracy, margin: 0.1, candidate: ft, max_iterations: 3}}
  - {{metric: accuracy, margin: 0.1, candidate: lora, max_iterations: 3}}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def models(tmp_path, monkeypatch):
    monkeypatch.setenv(local_trained.MODELS_ENV, str(tmp_path / "models"))
    yield tmp_path / "models"
    local_processes.close()


def invoke(*args):
    return CliRunner().invoke(main, [*map(str, args)], catch_exceptions=False)


def _state(models: Path, job: str) -> dict:
    return json.loads((models / f"ft-{job}" / "state.json").read_text())


def test_run_before_finetune_is_exit_2_with_the_command(openai_server, isolated_cwd, fake_key):
    suite = write_suite(isolated_cwd, openai_server(provider_answer).url)
    result = invoke("run", suite, "--variant", "zero-shot", "--variant", "lora")
    assert result.exit_code == 2
    assert result.output == (
        f"Error: lora has no trained model: it has no job yet — run `harness finetune {suite} "
        "--variant lora`, or leave it out with --variant\n"
    )


def _succeeded_job(suite, cost_usd=None) -> None:
    """A succeeded local job as `harness finetune` records it (no training behind it)."""
    JobStore("runs", suite_lineage(suite)).append(
        {
            "job_id": "20261201-000000-aaaaaa",
            "provider": "local",
            "variant": "lora",
            "status": "succeeded",
            "model_id": "local/ft-20261201-000000-aaaaaa",
            "trained_tokens": 900,
            "cost_usd": cost_usd,
            "wall_s": 61.0,
            "settings": finetune_spec(suite, suite.variant("lora")).settings(),
            "train_sha256": train_split_hash(suite),
        }
    )


def test_a_model_trained_on_old_rows_or_settings_is_named_in_the_notes(
    openai_server, isolated_cwd, fake_key
):
    url = openai_server(provider_answer).url
    path = write_suite(isolated_cwd, url)
    _succeeded_job(load_suite(path), cost_usd=0.0061)
    _, _, notes = resolve_trained(load_suite(path), [load_suite(path).variant("lora")], "runs")
    assert notes == [
        "lora: local/ft-20261201-000000-aaaaaa from job 20261201-000000-aaaaaa (900 trained "
        "tokens, training $0.0061 (1.0 min × $0.36/h, self-hosted))"
    ]
    train = isolated_cwd / "data" / "train.csv"
    train.write_text(train.read_text() + '"A row added after training",card_arrival\n')
    path.write_text(path.read_text().replace("max_steps: 4", "max_steps: 5"))
    suite = load_suite(path)
    _, _, notes = resolve_trained(suite, [suite.variant("lora")], "runs")
    again = f"`harness finetune {suite.display_path} --variant lora` trains on the current ones"
    assert notes[:2] == [
        "lora: the train split changed after job 20261201-000000-aaaaaa trained on it — this "
        f"run evaluates the model of the old rows; {again}",
        "lora: the `finetune:` settings changed after job 20261201-000000-aaaaaa — this run "
        f"evaluates the model of the old settings; {again}",
    ]


def test_a_job_without_price_per_hour_costs_unknown_never_zero(
    openai_server, isolated_cwd, fake_key
):
    """No training here: a succeeded job record without a price, as the local backend leaves
    one, read by `harness run`'s resolution and folded by the ledger."""
    lora = "{provider: local, method: lora, epochs: 1}"
    suite = load_suite(write_suite(isolated_cwd, openai_server(provider_answer).url, lora=lora))
    _succeeded_job(suite)
    resolved, selected, notes = resolve_trained(suite, [suite.variant("lora")], "runs")
    (lora_v,) = selected
    assert lora_v.training.cost_usd is None and lora_v.training.total_usd() is None
    assert notes == [
        "lora: local/ft-20261201-000000-aaaaaa from job 20261201-000000-aaaaaa (900 trained "
        "tokens, training cost unknown — set finetune.price_per_hour to price it)"
    ]
    entry = ledger_entry(resolved, {"variants": {"lora": {"spent_usd": 0.002, "delta": {}}}})
    assert entry["variants"]["lora"]["training_usd"] is None
    led = lineage("lora", [], entry)
    assert (led["training_usd"], led["training_unknown"]) == (0.0, [lora_v.model])
    assert spend_text(led) == (
        "$0.002 spent ($0 training + $0.002 evaluation); training cost of "
        "local/ft-20261201-000000-aaaaaa unknown (no price)"
    )


@pytest.mark.local_model
@pytest.mark.train
def test_self_hosted_and_provider_training_costs_reach_ledger_summary_mlflow_and_report(
    openai_server, isolated_cwd, fake_key, models
):
    pytest.importorskip("peft")
    pytest.importorskip("llama_cpp")
    server = openai_server(provider_answer)
    suite = write_suite(isolated_cwd, server.url)
    assert invoke("finetune", suite, "--variant", "ft", "--poll-interval", "0").exit_code == 0

    # A watcher and its trainer killed -9 as training starts: the rerun finds the job dead.
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "finetune", str(suite), "--variant", "lora"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = JobStore("runs", suite_lineage(load_suite(suite)))
    deadline = time.monotonic() + 120
    while not (store.latest("lora") or {}).get("job_id") and time.monotonic() < deadline:
        time.sleep(0.2)
    killed = store.latest("lora")["job_id"]
    while "pid" not in _state(models, killed) or _state(models, killed)["status"] != "running":
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # the watcher first: alive, it would see the trainer die
    proc.wait()
    os.kill(_state(models, killed)["pid"], signal.SIGKILL)
    dead = invoke("finetune", suite, "--variant", "lora", "--poll-interval", "0.5")
    assert dead.exit_code == 3, dead.output
    assert f"resuming job {killed} (" in dead.output
    assert f"job {killed} failed: the training process " in dead.output
    killed_cost = store.jobs("lora")[0]["cost_usd"]
    assert killed_cost is not None  # its seconds were paid for (to its last event)

    start = time.time()
    trained = invoke("finetune", suite, "--variant", "lora", "--poll-interval", "0.5")
    assert trained.exit_code == 0, trained.output
    print(
        f"lora job: {time.time() - start:.1f} s, load {Path('/proc/loadavg').read_text().split()[0]}"
    )
    record = store.latest("lora")
    job = record["job_id"]
    assert job != killed and record["status"] == "succeeded"
    state = _state(models, job)
    cost = state["cost_usd"]
    assert cost == pytest.approx(state["wall_s"] / 3600 * PRICE_PER_HOUR, abs=1e-6)
    assert record["cost_usd"] == cost > 0
    assert record["wall_s"] == state["wall_s"]
    losses = [
        float(line.rsplit(" ", 1)[1])
        for line in trained.output.splitlines()
        if "train loss" in line
    ]
    assert len(losses) == 4
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses
    assert (
        f"  trained tokens: {state['trained_tokens']}; training cost ${cost:.4f} "
        f"({state['wall_s'] / 60:.1f} min × ${PRICE_PER_HOUR}/h, self-hosted)"
    ) in trained.output
    iteration = round(killed_cost + cost, 6)
    assert f"(this iteration with earlier failed jobs: {money(iteration)})" in trained.output

    # Renamed between finetune and run: same test data, same job store.
    renamed = isolated_cwd / "renamed.yaml"
    renamed.write_text(suite.read_text().replace("name: both", "name: both-renamed"))
    run = invoke("run", renamed, "--json")
    summary = json.loads(run.stdout)
    lora = summary["variants"]["lora"]
    assert lora["model"] == f"local/ft-{job}"  # the adapter loads in the serving path
    assert lora["n_errors"] == 0 and lora["n_calls"] == 9
    assert lora["training"] == {
        "cost_usd": iteration,
        "job": {
            "job_id": job,
            "provider": "local",
            "self_hosted": True,
            "method": "lora",
            "trained_tokens": state["trained_tokens"],
            "cost_usd": cost,
            "wall_s": state["wall_s"],
            "price_per_hour": PRICE_PER_HOUR,
            "price_per_1m": None,
            # Where and at what precision it trained and is served (the report's cost table).
            **{k: record.get(k) for k in ("device", "gpu_hours", "precision", "served_precision")},
        },
    }
    assert lora["training"]["job"]["device"].startswith("the CPU")
    assert lora["training"]["job"]["gpu_hours"] is None
    ft = summary["variants"]["ft"]["training"]
    ft_cost = store.latest("ft")["cost_usd"]
    assert (ft["cost_usd"], ft["job"]["self_hosted"]) == (ft_cost, False)
    assert summary["ledger_entry"]["variants"]["lora"]["training_usd"] == iteration
    assert summary["guard"]["verdicts"]["lora"]["ledger"]["training_usd"] == iteration

    ledger = invoke("ledger", renamed)
    assert (
        f"  job {job}  lora  succeeded  local/ft-{job}  16 rows, {state['trained_tokens']} "
        f"trained tokens, {money(cost)}"
    ) in ledger.output
    assert (
        f"lora: 1 iteration(s), {money(iteration + lora['spent_usd'])} spent "
        f"({money(iteration)} training + "
    ) in ledger.output

    from mlflow import MlflowClient

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("both-renamed")
    (parent,) = client.search_runs([exp.experiment_id], "tags.`harness.role` = 'suite'")
    path = client.download_artifacts(parent.info.run_id, "ledger.json", str(isolated_cwd))
    table = json.loads(Path(path).read_text())
    rows = {r[0]: dict(zip(table["columns"], r, strict=True)) for r in table["data"]}
    assert rows["lora"]["training_usd"] == iteration
    assert rows["ft"]["training_usd"] == ft_cost

    report = next(Path("runs/both-renamed").glob("*/report.md")).read_text()
    ft_job = store.latest("ft")
    assert (
        f"| **ft** | provider (openai) | supervised | {ft_job['trained_tokens']:,} | – | "
        f"$3.00 / 1M tokens | {money(ft_cost)} |"
    ) in report, report
    assert (
        f"| **lora** | self-hosted (local) | lora | {state['trained_tokens']:,} | "
        f"{state['wall_s'] / 60:.1f} min | $0.36 / hour | "
        + (
            f"{money(iteration)} (with {money(iteration - cost)} of failed jobs) |"
            if round(iteration - cost, 6) > 0
            else f"{money(iteration)} |"
        )
    ) in report
    assert (
        f"- lora: local/ft-{job} from job {job} ({state['trained_tokens']} trained tokens, "
        f"training ${cost:.4f} ({state['wall_s'] / 60:.1f} min × ${PRICE_PER_HOUR}/h, self-hosted)"
    ) in report
    at_provider = state["trained_tokens"] * PRICE_PER_1M / 1e6
    assert (
        f"- **lora** at ft's price ($3.00 / 1M trained tokens): {money(at_provider)} for its "
        f"{state['trained_tokens']:,} trained tokens (counted by its own tokenizer)."
    ) in report


@pytest.mark.train
def test_budget_usd_caps_a_self_hosted_job_this_machine_cannot_estimate_yet(
    openai_server, isolated_cwd, fake_key, models
):
    """No local job has finished on this machine, so nothing estimates the job; with
    `price_per_hour` it still runs, stopped by a timer once its wall-clock has cost what is left of
    budget_usd (here 3 s: the model does not even finish loading). The next job is refused."""
    pytest.importorskip("torch")
    suite = write_suite(isolated_cwd, openai_server(provider_answer).url)
    text = suite.read_text(encoding="utf-8").replace(
        "candidate: lora, max_iterations: 3", "candidate: lora, budget_usd: 0.0003"
    )
    suite.write_text(text, encoding="utf-8")
    first = invoke("finetune", suite, "--variant", "lora", "--poll-interval", "0.2")
    assert "estimated cost unknown\n" in first.output
    assert (
        "capped at $0.0003, what is left of budget_usd: the trainer is stopped once its "
        "wall-clock has cost that\n" in first.output
    )
    message = (
        "stopped at its cap of 0.1 min of training: the $0.0003 left of budget_usd at $0.36/hour"
    )
    assert message in first.output
    assert first.exit_code == 3
    job = JobStore("runs", suite_lineage(load_suite(suite))).latest("lora")
    state = _state(models, job["job_id"])
    assert (state["status"], state["error"]) == ("failed", message)
    assert 3.0 <= state["wall_s"] < 3.5  # the timer, not a check between training steps
    assert state["cost_usd"] == pytest.approx(state["wall_s"] / 3600 * PRICE_PER_HOUR, abs=1e-6)
    assert not (models / f"ft-{job['job_id']}" / "model.json").exists()

    again = invoke("finetune", suite, "--variant", "lora")
    assert again.exit_code == 1
    assert again.output == (
        f"Error: lora has spent {money(state['cost_usd'])} of its $0.0003 budget — no new job.\n"
    )


def test_budget_usd_with_an_unpriced_self_hosted_job_is_refused_with_the_fix(
    openai_server, isolated_cwd, fake_key, models
):
    lora = (
        "{provider: local, method: lora, epochs: 1, max_steps: 4, batch_size: 4, seed: 1, "
        "validation: 0.2}"
    )
    suite = write_suite(isolated_cwd, openai_server(provider_answer).url, lora=lora)
    text = suite.read_text(encoding="utf-8").replace(
        "candidate: lora, max_iterations: 3", "candidate: lora, budget_usd: 5"
    )
    suite.write_text(text, encoding="utf-8")
    result = invoke("finetune", suite, "--variant", "lora")
    assert result.exit_code == 1
    assert result.output == (
        "Error: lora: the training cost cannot be estimated, so budget_usd cannot be checked — "
        "no job. Set finetune.price_per_hour to price and cap it.\n"
    )
    assert not models.exists() or not any(models.iterdir())  # no job folder, no trainer
