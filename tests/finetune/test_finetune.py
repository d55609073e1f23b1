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


def write_data(root: Path, n_test: int = 30, n_train: int = 24) -> None:
    """data/test.csv and data/train.csv: the three intents in turn, every question distinct."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for split, n, tag in (("test", n_test, "#"), ("train", n_train, "train #")):
        rows = ["text,category"]
        for i in range(n):
            label = LABELS[i % 3]
            rows.append(f'"{QUESTIONS[label].format(tag=tag, i=i)}",{label}')
        (data / f"{split}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def write_suite(root: Path, api_base: str, *, guard: str = "", finetune: str = "") -> Path:
    write_data(root)
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
    model = "openai/ft:gpt-4o-mini-2024-07-18:harness-test::000001"
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
    assert (
        f"job ftjob-000001  ft  succeeded  {model}  18 rows, {tokens} trained tokens"
        in ledger.output
    )

    # The checkpoint is measured next to the model, never judged or charged.
    ckpt = CliRunner().invoke(main, ["run", str(suite), "--checkpoints", "--json"])
    summary = json.loads(ckpt.stdout)
    assert summary["variants"]["ft.step-2"]["model"] == f"{model}:ckpt-step-2"
    assert list(summary["guard"]["verdicts"]) == ["ft"]
    assert summary["ledger_entry"]["variants"]["ft.step-2"]["training_usd"] == 0.0


def test_over_budget_refuses_before_any_upload(openai_server, isolated_cwd, fake_key):
    server = openai_server(answer)
    suite = write_suite(
        isolated_cwd, server.url, guard="{metric: accuracy, margin: 0.1, budget_usd: 0.001}"
    )
    result = _finetune(suite)
    assert result.exit_code == 1
    import litellm

    lineage = suite_lineage(load_suite(suite))
    rows = (isolated_cwd / "runs" / ".finetune" / lineage / "ft" / "train.jsonl").read_text()
    tokens = sum(
        litellm.token_counter(
            model="openai/gpt-4o-mini-2024-07-18", messages=json.loads(r)["messages"]
        )
        for r in rows.splitlines()
    )
    estimate = tokens * 2 * PRICE / 1e6  # epochs: 2
    assert f"{estimate:.4f}" == "0.0041"
    assert result.output == (
        "Error: ft would spend $0.00408 ($0 so far + $0.00408 estimated for this job) of its "
        "$0.001 budget — no new job.\n"
    )
    assert server.files.uploads == [] and server.fine_tuning.created == []


def test_an_iteration_over_max_iterations_is_refused(openai_server, isolated_cwd, fake_key):
    server = openai_server(answer)
    suite = write_suite(
        isolated_cwd, server.url, guard="{metric: accuracy, margin: 0.1, max_iterations: 1}"
    )
    assert _finetune(suite).exit_code == 0
    again = _finetune(suite)  # same rows and settings: nothing to train
    assert again.exit_code == 0
    assert "ft is already trained on these rows and settings" in again.output
    with open(isolated_cwd / "data" / "train.csv", "a") as f:
        f.write('"Where is my new card? train #99",card_arrival\n')
    refused = _finetune(suite)
    assert refused.exit_code == 1
    assert refused.output == "Error: ft has used 1 of 1 iterations (max_iterations) — no new job.\n"
    assert len(server.fine_tuning.created) == 1 and len(server.files.uploads) == 2


def _killed_watch(suite: Path, cwd: Path) -> JobStore:
    """`harness finetune` killed (-9) once its job is recorded: the job store it left."""
    cmd = [sys.executable, "-m", "harness.cli", "finetune", str(suite), "--poll-interval", "2"]
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    store = JobStore("runs", suite_lineage(load_suite(suite)))
    deadline = time.monotonic() + 120
    while not store.jobs() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert [j["status"] for j in store.jobs()] == ["queued"]
    return store


def test_a_killed_watch_resumes_the_same_job(openai_server, isolated_cwd, fake_key):
    server = openai_server(answer)
    suite = write_suite(isolated_cwd, server.url)
    store = _killed_watch(suite, isolated_cwd)

    result = _finetune(suite)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("resuming job ftjob-000001 (queued) — no new job created\n")
    assert len(server.fine_tuning.created) == 1 and len(server.files.uploads) == 2
    assert store.latest("ft")["status"] == "succeeded"


def test_ctrl_c_leaves_the_job_running_and_cancel_cancels_it(openai_server, isolated_cwd, fake_key):
    server = openai_server(answer, finetune_lives=["hang"])
    suite = write_suite(isolated_cwd, server.url)
    cmd = [sys.executable, "-m", "harness.cli", "finetune", str(suite), "--poll-interval", "0.2"]
    proc = subprocess.Popen(
        cmd, cwd=isolated_cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    store = JobStore("runs", suite_lineage(load_suite(suite)))
    deadline = time.monotonic() + 120
    while (
        not store.jobs() or store.jobs()[0]["status"] != "running"
    ) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err == (
        "Error: stopped watching — job ftjob-000001 keeps running at openai. Resume watching "
        f"with: harness finetune {suite} --variant ft (add --cancel to cancel it)\n"
    )
    assert server.fine_tuning.jobs["ftjob-000001"]["status"] == "running"

    cancelled = _finetune(suite, "--cancel")
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.output == "cancel requested for job ftjob-000001: cancelled\n"
    assert store.latest("ft")["status"] == "cancelled"
    assert server.fine_tuning.jobs["ftjob-000001"]["status"] == "cancelled"


def test_a_failed_job_is_recorded_with_its_error_and_run_refuses_it(
    openai_server, isolated_cwd, fake_key
):
    server = openai_server(answer, finetune_lives=["failed"])
    suite = write_suite(isolated_cwd, server.url)
    result = _finetune(suite)
    assert result.exit_code == 3
    assert result.output.endswith(
        "job ftjob-000001 failed: invalid_training_file: The job failed due to an invalid "
        "training file. (param training_file); cost so far unknown\n"
    )
    rec = JobStore("runs", suite_lineage(load_suite(suite))).latest("ft")
    assert rec["status"] == "failed"
    assert rec["error"].startswith("invalid_training_file: ")
    run = CliRunner().invoke(main, ["run", str(suite)])
    assert run.exit_code == 2
    assert run.output == (
        "Error: ft has no trained model: its latest job ftjob-000001 is failed — run `harness "
        f"finetune {suite} --variant ft`, or leave it out with --variant\n"
    )
    ledger = CliRunner().invoke(main, ["ledger", str(suite)])
    assert (
        "job ftjob-000001  ft  failed  —  18 rows, 0 trained tokens, cost unknown" in ledger.output
    )
    assert "error: invalid_training_file" in ledger.output


def test_distill_runs_the_teacher_on_the_train_split_only(openai_server, isolated_cwd, fake_key):
    server = openai_server(answer)
    suite = write_suite(
        isolated_cwd,
        server.url,
        finetune="{base_model: openai/gpt-4o-mini-2024-07-18, data: {distill: zero-shot}, "
        f"price_per_1m: {PRICE}}}",
    )
    result = _finetune(suite)
    assert result.exit_code == 0, result.output
    test_texts = [QUESTIONS[LABELS[i % 3]].format(tag="#", i=i) for i in range(30)]
    assert len(server.prompts) == 24  # the train split, each once
    assert not [p for p in server.prompts if any(t in p for t in test_texts)]
    # The base teacher answers the 8 lost-card questions wrong: they are not training data.
    assert (
        "distilled 16 rows from zero-shot on the train split; dropped: 8 teacher output not "
        "correct and format-compliant\n" in result.output
    )
    body = server.fine_tuning.created[0]
    rows = [
        json.loads(x) for x in server.files.content[body["training_file"]].decode().splitlines()
    ]
    assert len(rows) == 16
    assert all("lost" not in r["messages"][-2]["content"] for r in rows)


def test_no_key_or_file_content_in_runs_mlruns_or_output(setup):
    server, suite = setup
    result = _finetune(suite)
    run = CliRunner().invoke(main, ["run", str(suite)])
    assert run.exit_code == 0, run.output
    from conftest import FAKE_KEY

    root = Path(suite).parent
    for path in [*(root / "runs").rglob("*"), *(root / "mlruns").rglob("*")]:
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path
    body = server.fine_tuning.created[0]
    sample = server.files.content[body["training_file"]].decode().splitlines()[0]
    question = json.loads(sample)["messages"][-2]["content"]
    store = JobStore("runs", suite_lineage(load_suite(suite))).path
    for text in (result.output, run.output, store.read_text()):
        assert FAKE_KEY not in text
        assert question not in text


def _general_suite(root: Path, api_base: str) -> Path:
    """An out-of-domain suite: yes/no questions the trained model has forgotten (it says no)."""
    rows = ["question,answer"] + [
        f'"Is {n} an even number?",{"yes" if n % 2 == 0 else "no"}' for n in range(40)
    ]
    (root / "data" / "general.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    path = root / "general.yaml"
    path.write_text(
        f"""name: general
task: classification
data: {{test: data/general.csv, input: question, target: answer}}
labels: ["yes", "no"]
metrics: [accuracy]
variants:
  - name: plain
    model: openai/gpt-4o-mini
    api_base: {api_base}
    user: "{{{{ question }}}} Answer yes or no."
""",
        encoding="utf-8",
    )
    return path


def general_answer(messages, body) -> str:
    text = messages[-1]["content"]
    if "even number" not in text:
        return answer(messages, body)
    n = int(text.split()[1])
    right = "yes" if n % 2 == 0 else "no"
    # The trained model answers "no" to everything outside its task.
    return "no" if str(body.get("model", "")).startswith("ft:") else right


def test_forgetting_joins_the_decision(openai_server, isolated_cwd, fake_key):
    server = openai_server(general_answer)
    suite = write_suite(isolated_cwd, server.url)
    _general_suite(isolated_cwd, server.url)
    text = suite.read_text().replace(
        "    finetune:", "    forgetting: {suite: general.yaml, margin: 0.02}\n    finetune:"
    )
    suite.write_text(text)
    assert _finetune(suite).exit_code == 0
    result = CliRunner().invoke(main, ["run", str(suite), "--json"])
    assert result.stdout.startswith("{"), result.output
    summary = json.loads(result.stdout)
    f = summary["forgetting"]["ft"]
    assert (f["verdict"], f["metric"], f["margin"]) == ("fail", "accuracy", 0.02)
    assert f["delta"] == pytest.approx(-0.5)  # the 20 "yes" questions, now wrong
    assert summary["guard"]["verdicts"]["ft"]["verdict"] == "pass"  # on the task itself
    assert summary["exit_code"] == 1 and result.exit_code == 1
    note = next(n for n in summary["notes"] if n.startswith("forgetting: ft vs its base"))
    assert note.startswith(
        "forgetting: ft vs its base openai/gpt-4o-mini-2024-07-18 on general.forgetting"
    )
    assert "Δ −50.0 pts [" in note  # the interval, not the point alone
    assert (
        "exit 1: the forgetting check of ft (fail) did not pass — a trained model that lost "
        "what its base could do elsewhere is not a pass"
    ) in summary["notes"]
    entry = summary["ledger_entry"]["variants"]["ft"]
    assert (entry["verdict"], entry["honest_pass"], entry["forgetting"]) == ("pass", False, "fail")
    # Only the base and the trained model ran on the other suite: none of its own variants.
    found = next((isolated_cwd / "runs").rglob(f"{f['run_id']}/summary.json"))
    assert sorted(json.loads(found.read_text())["variants"]) == ["base", "trained"]
    ledger = CliRunner().invoke(main, ["ledger", str(suite)])
    assert "pass (flagged: forgetting check fail)" in ledger.output


def test_resuming_a_run_after_a_newer_job_succeeded_is_refused(setup):
    server, suite = setup
    assert _finetune(suite).exit_code == 0
    first = CliRunner().invoke(main, ["run", str(suite), "--json"])
    run_id = json.loads(first.stdout)["run_id"]
    text = suite.read_text().replace("epochs: 2", "epochs: 3")  # a new iteration
    suite.write_text(text)
    assert _finetune(suite).exit_code == 0
    resumed = CliRunner().invoke(main, ["run", str(suite), "--resume", run_id])
    assert resumed.exit_code == 2
    assert resumed.output == (
        "Error: --resume: ft is now openai/ft:gpt-4o-mini-2024-07-18:harness-test::000002 but run "
        f"{run_id} evaluated openai/ft:gpt-4o-mini-2024-07-18:harness-test::000001 — start a new "
        "run (without --resume) to evaluate the new model\n"
    )


def test_a_job_whose_record_was_lost_is_adopted_not_created_twice(
    openai_server, isolated_cwd, fake_key
):
    server = openai_server(answer, finetune_lives=["hang"])
    suite = write_suite(isolated_cwd, server.url)
    store = JobStore("runs", suite_lineage(load_suite(suite)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "finetune", str(suite), "--poll-interval", "5"],
        cwd=isolated_cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not store.jobs() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store.path.unlink()  # as if killed after the provider created the job, before the record
    server.fine_tuning.lives = ["succeeded"]
    server.fine_tuning._state["ftjob-000001"]["life"] = "succeeded"
    result = _finetune(suite)
    assert result.exit_code == 0, result.output
    assert (
        "found job ftjob-000001 at openai for these rows and settings; adopting it\n"
        in result.output
    )
    assert len(server.fine_tuning.created) == 1
    assert store.latest("ft")["status"] == "succeeded"


def test_concurrent_finetunes_never_pass_max_iterations(openai_server, isolated_cwd, fake_key):
    """Three `harness finetune` at once with max_iterations: 1 (issue 27): the limits, the job's
    creation and its record are one step under the job store's lock, so one job is created and
    the others watch it."""
    server = openai_server(answer)
    suite = write_suite(
        isolated_cwd, server.url, guard="{metric: accuracy, margin: 0.1, max_iterations: 1}"
    )
    cmd = [sys.executable, "-m", "harness.cli", "finetune", str(suite), "--poll-interval", "0.2"]
    procs = [
        subprocess.Popen(
            cmd, cwd=isolated_cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert len(server.fine_tuning.created) == 1 and len(server.files.uploads) == 2
    assert sum("created job ftjob-000001" in o for o in outs) == 1
    assert (
        sum(
            ("resuming job ftjob-000001" in o) or ("ft is already trained on these rows" in o)
            for o in outs
        )
        == 2
    )
    store = JobStore("runs", suite_lineage(load_suite(suite)))
    assert [j["job_id"] for j in store.jobs()] == ["ftjob-000001"]


def test_a_superseded_model_counts_in_run_ledger_and_finetune(
    openai_server, isolated_cwd, fake_key
):
    """Two models trained before any run evaluated the first (issue 27): the run's ledger counts
    both iterations and both jobs' cost, as `harness finetune` and `harness ledger` do."""
    server = openai_server(answer)
    suite = write_suite(
        isolated_cwd, server.url, guard="{metric: accuracy, margin: 0.1, max_iterations: 2}"
    )
    assert _finetune(suite).exit_code == 0
    with open(isolated_cwd / "data" / "train.csv", "a") as f:
        f.write('"Where is my new card? train #99",card_arrival\n')
    assert _finetune(suite).exit_code == 0
    store = JobStore("runs", suite_lineage(load_suite(suite)))
    costs = [j["cost_usd"] for j in store.jobs("ft")]
    assert len(costs) == 2
    run = CliRunner().invoke(main, ["run", str(suite), "--json"], catch_exceptions=False)
    led = json.loads(run.stdout)["guard"]["verdicts"]["ft"]["ledger"]
    first, second = (j["model_id"] for j in store.jobs("ft"))
    assert led["iterations"] == 2 and led["models"] == [second, first]
    assert led["training_usd"] == pytest.approx(sum(costs))
    with open(isolated_cwd / "data" / "train.csv", "a") as f:
        f.write('"Where is my newest card? train #100",card_arrival\n')
    refused = _finetune(suite)
    assert refused.output == "Error: ft has used 2 of 2 iterations (max_iterations) — no new job.\n"
    shown = CliRunner().invoke(main, ["ledger", str(suite)])
    assert "ft: 2 iteration(s)" in shown.output


def test_a_model_retrained_after_a_run_is_the_next_iteration(openai_server, isolated_cwd, fake_key):
    """finetune → run → finetune with changed hyper-parameters → run: two iterations, the two
    models in training order, each job's cost charged once, in `run`, `finetune` and `ledger`."""
    server = openai_server(answer)
    guard = "{metric: accuracy, margin: 0.1, max_iterations: 3, budget_usd: 5}"
    suite = write_suite(isolated_cwd, server.url, guard=guard)
    assert _finetune(suite).exit_code == 0
    first_run = CliRunner().invoke(main, ["run", str(suite), "--json"], catch_exceptions=False)
    led = json.loads(first_run.stdout)["guard"]["verdicts"]["ft"]["ledger"]
    store = JobStore("runs", suite_lineage(load_suite(suite)))
    assert led["iterations"] == 1 and led["models"] == [store.jobs("ft")[0]["model_id"]]

    retrained = "{provider: openai, base_model: openai/gpt-4o-mini-2024-07-18, epochs: 3, "
    retrained += f"seed: 1, validation: 0.25, price_per_1m: {PRICE}}}"
    write_suite(isolated_cwd, server.url, guard=guard, finetune=retrained)
    again = _finetune(suite)
    assert again.exit_code == 0, again.output
    jobs = store.jobs("ft")
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded"]
    first, second = (j["model_id"] for j in jobs)
    costs = [j["cost_usd"] for j in jobs]
    assert first != second

    second_run = CliRunner().invoke(main, ["run", str(suite), "--json"], catch_exceptions=False)
    summary = json.loads(second_run.stdout)
    assert summary["ledger_entry"]["variants"]["ft"]["model"] == second
    led = summary["guard"]["verdicts"]["ft"]["ledger"]
    assert led["iterations"] == 2 and led["models"] == [first, second]
    assert led["training_usd"] == pytest.approx(round(sum(costs), 6))
    assert [row["model"] for row in led["history"]] == [first, second]

    shown = CliRunner().invoke(main, ["ledger", str(suite)])
    assert shown.exit_code == 0, shown.output
    print(shown.output)
    assert "ft: 2 iteration(s)" in shown.output


@pytest.mark.timeout(180)  # watching the other suite's hanging job would never end
def test_a_running_job_of_another_base_model_is_not_resumed(openai_server, isolated_cwd, fake_key):
    """Two suites on the same test file share a job store (its lineage is the test data's hash):
    a second suite's `ft` on another base model must not watch the first suite's running job
    as its own (issue 31) — it trains its own, and the first job is left as it was."""
    server = openai_server(answer, finetune_lives=["hang", "succeeded"])
    suite = write_suite(isolated_cwd, server.url)
    store = _killed_watch(suite, isolated_cwd)

    other = write_suite(
        isolated_cwd / "other",
        server.url,
        finetune="{provider: openai, base_model: openai/gpt-4.1-mini-2025-04-14, epochs: 2, "
        f"seed: 1, validation: 0.25, price_per_1m: {PRICE}}}",
    )
    assert suite_lineage(load_suite(other)) == store.lineage  # the same test file's hash
    result = _finetune(other)
    assert result.exit_code == 0, result.output
    assert "resuming job" not in result.output
    assert "created job ftjob-000002 (openai, openai/gpt-4.1-mini-2025-04-14)" in result.output
    jobs = {j["job_id"]: j for j in store.jobs("ft")}
    assert jobs["ftjob-000001"]["status"] == "queued"  # the first suite's, untouched
    assert jobs["ftjob-000002"]["status"] == "succeeded"
    assert server.fine_tuning.jobs["ftjob-000002"]["model"] == "gpt-4.1-mini-2025-04-14"

    # The first suite still resumes its own job, and --cancel reaches only its own.
    cancelled = _finetune(suite, "--cancel")
    assert cancelled.output == "cancel requested for job ftjob-000001: cancelled\n"


def test_each_suite_on_a_shared_test_file_evaluates_its_own_trained_model(
    openai_server, isolated_cwd, fake_key
):
    """Two suites on one test file, each with an `ft` variant on another base model: each
    `harness run` evaluates the model trained for its own `finetune:` block, not whichever job
    of that name succeeded last (the other suite's, on the other base model)."""
    server = openai_server(answer)
    suite = write_suite(isolated_cwd, server.url)
    other = write_suite(
        isolated_cwd / "other",
        server.url,
        finetune="{provider: openai, base_model: openai/gpt-4.1-mini-2025-04-14, epochs: 2, "
        f"seed: 1, validation: 0.25, price_per_1m: {PRICE}}}",
    )
    assert _finetune(suite).exit_code == 0
    assert _finetune(other).exit_code == 0
    store = JobStore("runs", suite_lineage(load_suite(suite)))
    mine, theirs = (j["model_id"] for j in store.jobs("ft"))
    assert "gpt-4.1-mini" in theirs and "gpt-4.1-mini" not in mine
    run = CliRunner().invoke(main, ["run", str(suite), "--json"], catch_exceptions=False)
    summary = json.loads(run.stdout)
    assert summary["ledger_entry"]["variants"]["ft"]["model"] == mine
    assert not any("settings changed" in n for n in summary["notes"])
