"""Self-hosted fine-tuning of a model other than SmolLM2: a tiny randomly initialised LLaMA
(transformers LlamaConfig, 2 layers, hidden 64, SmolLM2's tokenizer and chat template) saved to
a temporary directory is trained with LoRA and in full through TRL, served by llama.cpp at F32
(the base as `local/hf:<dir>` for the prompt variant, the trained model as `local/ft-<job>`) and
evaluated by `harness run`. Seconds of CPU per job: the model has 3.2M parameters.

Also here, without training: the choices the trainer makes before it starts (QLoRA on the CPU,
the vLLM command line and its start / health / stop cycle, what a killed trainer said last).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.calls import local_processes, local_trained
from harness.cli import main
from harness.errors import ProviderError, SuiteError
from harness.finetune.local import backend
from harness.finetune.local.job import STATE, write_json_atomic

ROOT = Path(__file__).resolve().parents[2]
PRICE = 0.36  # USD per hour


@pytest.fixture
def models(tmp_path, monkeypatch):
    monkeypatch.setenv(local_trained.MODELS_ENV, str(tmp_path / "models"))
    yield tmp_path / "models"
    local_processes.close()


# --- no training ---------------------------------------------------------------------------


def test_qlora_on_a_machine_without_cuda_is_refused_before_a_job_exists(tmp_path, models):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (tmp_path / "train.jsonl").write_text("{}\n")
    with pytest.raises(SuiteError) as err:
        backend.submit({"method": "qlora"}, tmp_path / "train.jsonl", None, {})
    assert str(err.value) == (
        "finetune.method: qlora loads the base in 4 bits with bitsandbytes, which needs a CUDA "
        "device, and torch sees none — use method: lora on this machine"
    )
    assert not models.exists() or not any(models.iterdir())


def test_base_models_are_named_as_what_this_machine_can_train():
    with pytest.raises(SuiteError, match=r"openai/gpt-4o-mini is a provider's model"):
        backend.options({"base_model": "openai/gpt-4o-mini"})
    with pytest.raises(SuiteError, match=r"local/other: the local provider ships local/smollm2"):
        backend.options({"base_model": "local/other"})
    opts = backend.options({"base_model": "/models/qwen", "method": "qlora", "serve": "vllm"})
    assert (opts.shipped, opts.lr, opts.target_modules[0]) == (False, 1e-3, "q_proj")
    with pytest.raises(SuiteError, match=r"target_modules \['c_attn'\] are not LLaMA linear"):
        backend.options({"base_model": "/models/gpt2", "target_modules": ["c_attn"]})
    assert backend.options({"target_modules": ["c_attn"], "serve": "vllm"}).serve == "vllm"


def test_a_killed_trainer_is_quoted_by_its_last_step_not_a_progress_bar(tmp_path, models):
    folder = models / "ft-killed"
    folder.mkdir(parents=True)
    write_json_atomic(folder / "job.json", {"job_id": "killed", "options": {}})
    write_json_atomic(folder / STATE, {"status": "running", "pid": 2**22 + 7, "started_at": 1.0})
    (folder / "events.jsonl").write_text(
        json.dumps({"seq": 1, "at": 2.0, "type": "message", "message": "loading x"})
        + "\n"
        + json.dumps({"seq": 2, "at": 9.0, "type": "metrics", "message": "step 4, train loss 1.2"})
        + "\n"
    )
    (folder / "train.log").write_text(
        "some warning\nLoading checkpoint shards:  50%|█████     | 1/2 [00:01<00:01,  1.1s/it]"
        "\rLoading checkpoint shards: 100%|██████████| 2/2 [00:02<00:00,  1.0it/s]\n"
    )
    state = backend.poll("killed")
    assert state.status == "failed"
    assert state.error == (
        f"the training process {2**22 + 7} ended without a result (last said: step 4, train "
        "loss 1.2; last log line: some warning)"
    )
    assert state.wall_s == 8.0  # it stopped costing when it last said something


def test_the_vllm_command_line_serves_the_adapter_beside_its_base(tmp_path):
    from harness.finetune.local.vllm import VllmServer

    server = VllmServer(
        base="/models/qwen-0.5b", name="ft-1", adapter=tmp_path / "adapter", lora_rank=12, port=8123
    )
    assert server.command() == [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        "/models/qwen-0.5b",
        "--served-model-name",
        "ft-1-base",
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
        "--dtype",
        "auto",
        "--gpu-memory-utilization",
        "0.85",
        "--enable-lora",
        "--max-lora-rank",
        "16",
        "--lora-modules",
        f"ft-1={tmp_path / 'adapter'}",
    ]
    assert server.api_base == "http://127.0.0.1:8123/v1"
    assert (server.litellm_model(), server.litellm_model("base")) == (
        "hosted_vllm/ft-1",
        "hosted_vllm/ft-1-base",
    )
    full = VllmServer(base="/models/ft-2/model", name="ft-2", port=8124)
    assert "--enable-lora" not in full.command()
    assert full.litellm_model("base") == "hosted_vllm/ft-2"


def test_the_server_is_started_health_checked_and_stopped(tmp_path):
    """The start / health / stop cycle against a stand-in that answers /health as vLLM does."""
    from harness.finetune.local.vllm import VllmServer

    (tmp_path / "health").write_text("ok")
    server = VllmServer(base="unused", name="ft-x")
    stand_in = [sys.executable, "-m", "http.server", str(server.port), "--bind", "127.0.0.1"]
    server.start(tmp_path / "server.log", command=[*stand_in, "--directory", str(tmp_path)])
    proc = server.process
    server.wait_healthy(timeout_s=30)
    assert server.healthy()
    server.stop()
    assert proc.poll() is not None and not server.healthy()
    dead = VllmServer(base="unused", name="ft-y")
    dead.start(tmp_path / "dead.log", command=[sys.executable, "-c", "print('CUDA out of memory')"])
    with pytest.raises(
        ProviderError, match=r"vLLM exited with status 0 before it served — CUDA out"
    ):
        dead.wait_healthy(timeout_s=30)


# --- a tiny LLaMA, trained and served (the train extra, seconds of CPU per job) ----------------


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A 2-layer LLaMA with random weights and SmolLM2's tokenizer, saved as a model dir."""
    pytest.importorskip("torch")
    pytest.importorskip("trl")
    pytest.importorskip("llama_cpp")
    from tiny_llama import tiny_llama as build

    tok, model = build()
    folder = tmp_path_factory.mktemp("tiny-llama") / "tiny-llama"
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from harness.export.finetune import export_finetune
    from harness.suite import load_suite

    tmp = tmp_path_factory.mktemp("ft-data")
    export_finetune(
        load_suite(ROOT / "suites/quickstart.yaml"), tmp / "all.jsonl", variant="zero-shot"
    )
    rows = (tmp / "all.jsonl").read_text().splitlines()
    (tmp / "train.jsonl").write_text("\n".join(rows[i] for i in range(0, 120, 10)) + "\n")
    (tmp / "val.jsonl").write_text("\n".join(rows[i] for i in range(5, 120, 30)) + "\n")
    return tmp


def _watch(job: str, timeout: float = 300):
    import time

    events, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = backend.poll(job)
        events += state.events
        if state.status in ("succeeded", "failed", "cancelled"):
            return state, events
        time.sleep(0.5)
    raise AssertionError(f"job {job} still {state.status} after {timeout} s")


@pytest.mark.local_model
@pytest.mark.train
def test_a_transformers_base_serves_in_llama_cpp_as_transformers_computes(tiny_llama, models):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama), dtype=torch.float32)
    messages = [{"role": "user", "content": "Where is my card?"}]
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
    ids = torch.tensor([list(ids["input_ids"])])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=8, do_sample=False, min_new_tokens=8)
    expected = tok.decode(out[0][ids.shape[1] :], skip_special_tokens=True)
    served = local_processes.generate(
        messages, {"temperature": 0, "max_tokens": 8}, f"local/hf:{tiny_llama}"
    )
    assert served["completion_tokens"] == 8
    assert served["text"] == expected.strip() or served["text"] == expected
    assert list((models / "bases").glob("tiny-llama-*-f32-v*.gguf"))


@pytest.mark.local_model
@pytest.mark.train
@pytest.mark.parametrize("method", ["lora", "full"])
def test_lora_and_full_training_of_another_model_serve_what_training_computed(
    tiny_llama, data, models, method
):
    spec = {
        "base_model": str(tiny_llama),
        "method": method,
        "epochs": 2,
        "batch_size": 4,
        "learning_rate": 3e-3,
        "lora_r": 8,
        "verify_examples": 3,
        "max_new_tokens": 8,
        "price_per_hour": PRICE,
    }
    job = backend.submit(spec, data / "train.jsonl", data / "val.jsonl", {"suite": "tiny"})
    state, events = _watch(job)
    assert state.status == "succeeded", state.error
    losses = [e["train_loss"] for e in events if "train_loss" in e]
    assert len(losses) == 6  # 12 examples / 4 per step × 2 epochs
    assert losses[-1] < losses[0]
    assert [e["step"] for e in events if "val_loss" in e] == [3, 6]
    folder = models / f"ft-{job}"
    saved = json.loads((folder / STATE).read_text())
    assert saved["precision"] == "fp32" and saved["device"].startswith("the CPU")
    assert saved["cost_usd"] == pytest.approx(saved["wall_s"] / 3600 * PRICE, abs=1e-6)
    kept, served = ("adapter", "adapter.gguf") if method == "lora" else ("model", "model.gguf")
    assert (folder / kept).is_dir() and (folder / served).is_file()
    assert not (folder / "checkpoints").exists()
    check = next(e for e in events if "verify_matched" in e)
    assert check["verify_matched"] == check["verify_total"] == 3, check["message"]

    import gguf

    types = {t.tensor_type for t in gguf.GGUFReader(str(folder / served)).tensors}
    assert types == {gguf.GGMLQuantizationType.F32}  # nothing rounded to a quantised type


@pytest.mark.local_model
@pytest.mark.train
def test_harness_finetune_and_run_of_another_model_and_a_deleted_adapter(
    tiny_llama, isolated_cwd, models
):
    suite = isolated_cwd / "tiny.yaml"
    suite.write_text(
        f"""name: tiny
task: classification
data:
  test: {ROOT}/data/banking77-mini/test.csv
  train: {ROOT}/data/banking77-mini/train.csv
  input: text
  target: category
labels: from-data
metrics: [accuracy, format_compliance]
defaults:
  model: local/hf:{tiny_llama}
  params: {{temperature: 0, max_tokens: 12}}
  system: 'Answer as JSON {{"intent": ...}}.'
  user: "Question: {{{{ text }}}}"
variants:
  - name: zero-shot
  - name: lora
    kind: fine-tuned
    base_model: local/hf:{tiny_llama}
    finetune: {{provider: local, method: lora, epochs: 1, max_steps: 6, batch_size: 8,
               seed: 1, validation: 0.1, learning_rate: 0.003, verify_examples: 2,
               max_new_tokens: 12, price_per_hour: {PRICE}}}
baseline: zero-shot
guard: {{metric: accuracy, margin: 0.1, candidate: lora, max_iterations: 1}}
""",
        encoding="utf-8",
    )
    runner = CliRunner()
    trained = runner.invoke(main, ["finetune", str(suite), "--poll-interval", "0.5"])
    assert trained.exit_code == 0, trained.output
    assert "succeeded" in trained.output
    # Before any run: the trained model is an iteration and its training is spend (one count
    # with `run` and `finetune`: decide.ledger.lineage with the job store), not "0 iteration(s), $0".
    ledger = runner.invoke(main, ["ledger", str(suite)]).output
    line = next(ln for ln in ledger.splitlines() if ln.startswith("lora: "))
    assert line.startswith("lora: 1 iteration(s), $0.0"), line
    assert "training + $0 evaluation)" in line, line
    ran = runner.invoke(main, ["run", str(suite), "--limit", "6", "--json"])
    summary = json.loads(ran.stdout)
    assert set(summary["variants"]) == {"zero-shot", "lora"}
    job = json.loads(
        next((isolated_cwd / "runs" / ".finetune").glob("*.jsonl")).read_text().splitlines()[-1]
    )["job_id"]
    # The served file deleted: `harness finetune` writes it again from the kept adapter, no job.
    (models / f"ft-{job}" / "adapter.gguf").unlink()
    again = runner.invoke(main, ["finetune", str(suite)])
    assert again.exit_code == 0, again.output
    assert f"wrote {models / f'ft-{job}' / 'adapter.gguf'} again from the trained weights" in (
        again.output
    )
    assert "already trained" in again.output
    assert (models / f"ft-{job}" / "adapter.gguf").is_file()
    # Weights gone too: trained again as the same iteration (max_iterations 1 allows it), and a
    # judged run of the new model id counts it as that iteration, not a second one.
    shutil.rmtree(models / f"ft-{job}")
    retrained = runner.invoke(main, ["finetune", str(suite), "--poll-interval", "0.5"])
    assert retrained.exit_code == 0, retrained.output
    assert "is gone from this disk — training it again" in retrained.output
    ran = runner.invoke(main, ["run", str(suite), "--json"])
    verdict = json.loads(ran.stdout)["guard"]["verdicts"]["lora"]
    led = verdict["ledger"]
    assert led["iterations"] == 1 and led["models"] == [f"local/ft-{job}"], led
    assert verdict["limit"] == "1 of 1 iterations"  # not "2 of 1"
    ledger = runner.invoke(main, ["ledger", str(suite)]).output
    line = next(ln for ln in ledger.splitlines() if ln.startswith("lora: "))
    assert line.startswith("lora: 1 iteration(s), $0.0"), ledger


@pytest.mark.local_model
@pytest.mark.train
def test_a_killed_job_is_resumed_from_its_last_checkpoint_by_the_next_one(tiny_llama, data, models):
    import os
    import signal
    import time

    spec = {
        "base_model": str(tiny_llama),
        "method": "lora",
        "max_steps": 6,
        "batch_size": 2,
        "save_steps": 2,
        "verify_examples": 1,
        "max_new_tokens": 4,
    }
    inputs = {"harness_inputs": "same-rows-and-settings"}
    first = backend.submit(spec, data / "train.jsonl", None, inputs)
    folder = models / f"ft-{first}"
    deadline = time.monotonic() + 300
    while not list((folder / "checkpoints").glob("checkpoint-*/trainer_state.json")):
        assert time.monotonic() < deadline, (folder / "train.log").read_text()[-2000:]
        time.sleep(0.2)
    time.sleep(1.0)  # the checkpoint's files are written; the kill comes at once after
    os.kill(json.loads((folder / STATE).read_text())["pid"], signal.SIGKILL)
    while backend.poll(first).status != "failed":
        time.sleep(0.2)
    done = sorted(int(p.name.split("-")[1]) for p in (folder / "checkpoints").glob("checkpoint-*"))
    second = backend.submit(spec, data / "train.jsonl", None, inputs)
    state, events = _watch(second)
    assert state.status == "succeeded", state.error
    said = next(e["message"] for e in events if e["message"].startswith("training lora"))
    assert said.endswith(f"resuming from {folder / 'checkpoints' / f'checkpoint-{done[-1]}'}")
    steps = [e["step"] for e in events if "train_loss" in e]
    assert steps == list(range(done[-1] + 1, 7))  # the steps before the kill are not redone
