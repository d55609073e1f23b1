"""The local fine-tuning backend: real training of SmolLM2 on a tiny subset, served by llama.cpp.

One LoRA job is started by a watcher process that is then killed (-9): the test process picks the
job up by its id and watches it to the end, so the same minutes of CPU check that a killed
watcher resumes, the loss goes down, the adapter serves, and served answers equal the greedy
answers transformers gave at training time.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.calls import local_processes, local_trained
from harness.errors import SuiteError
from harness.finetune.local import backend, gguf
from harness.finetune.local.job import JOB, STATE, write_json_atomic

ROOT = Path(__file__).resolve().parents[2]
PRICE = 0.36  # USD per hour: 0.0001 per second, so the cost is checked to the second


def test_options_are_checked_with_the_key_named():
    with pytest.raises(SuiteError) as err:
        backend.options({"method": "dora"})
    assert str(err.value).startswith("finetune.method: Input should be 'lora', 'qlora' or 'full'")
    with pytest.raises(SuiteError, match=r"target_modules \['lm_head'\] are not LLaMA linear"):
        backend.options({"target_modules": ["lm_head"]})
    with pytest.raises(SuiteError, match=r"openai/gpt-4o-mini is a provider's model, not one"):
        backend.options({"base_model": "openai/gpt-4o-mini"})
    opts = backend.options({"method": "full", "price_per_hour": 1.5})
    assert (opts.lr, opts.price_per_hour, opts.epochs) == (5e-5, 1.5, 3)


def test_estimate_is_none_until_this_machine_has_a_measured_job(tmp_path, monkeypatch):
    monkeypatch.setenv(local_trained.MODELS_ENV, str(tmp_path))
    assert backend.estimate_usd({"price_per_hour": 1.0}, 10_000) is None
    done = tmp_path / "ft-old"
    done.mkdir()
    write_json_atomic(
        done / STATE,
        {"status": "succeeded", "wall_s": 100.0, "trained_tokens": 5000, "finished_at": 1.0},
    )
    # 50 tokens/s measured; 10k tokens × 3 epochs = 600 s = 1/6 h at $1/h.
    assert backend.estimate_usd({"price_per_hour": 1.0}, 10_000) == pytest.approx(1 / 6)
    assert backend.estimate_usd({}, 10_000) is None  # no price: unknown, never $0


def test_a_missing_train_extra_is_refused_before_a_job_exists(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "peft" else real(n, *a)
    )
    monkeypatch.setenv(local_trained.MODELS_ENV, str(tmp_path))
    train = tmp_path / "train.jsonl"
    train.write_text("{}\n")
    with pytest.raises(SuiteError) as err:
        backend.submit({}, train, None, {})
    absent = [d for d in backend.TRAIN_EXTRA if d == "peft" or real(d) is None]
    assert str(err.value) == (
        f"finetune: provider local needs the train extra ({', '.join(absent)} missing) — "
        f"install with: {backend.TRAIN_INSTALL}"
    )
    assert list(tmp_path.iterdir()) == [train]  # no job folder, no trainer


def test_device_cuda_without_one_is_refused_before_a_job_exists(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    monkeypatch.setenv(local_trained.MODELS_ENV, str(tmp_path))
    train = tmp_path / "train.jsonl"
    train.write_text(
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
    )
    with pytest.raises(SuiteError) as err:
        backend.submit({"device": "cuda"}, train, None, {})
    assert str(err.value) == (
        f"finetune.device: cuda, but torch {torch.__version__} (a CPU-only build) sees no CUDA "
        "device — use device: auto (CUDA where there is one, else the CPU) or cpu"
    )
    assert list(tmp_path.iterdir()) == [train]  # no job folder, no trainer
    with pytest.raises(
        SuiteError, match="finetune.device: Input should be 'auto', 'cpu' or 'cuda'"
    ):
        backend.options({"device": "gpu"})


def test_q_k_permutation_undoes_what_transformers_does_on_load():
    pytest.importorskip("transformers")
    pytest.importorskip("llama_cpp")
    from gguf import GGUFReader, quants
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    reader = GGUFReader(str(local_processes.model_path()))
    tensors = {t.name: t for t in reader.tensors}
    loader = LlamaTensorProcessor({"num_attention_heads": 9, "num_key_value_heads": 3})
    for name, hf in (("blk.0.attn_q.weight", "q_proj"), ("blk.0.attn_k.weight", "k_proj")):
        t = tensors[name]
        w = quants.dequantize(t.data, t.tensor_type)
        loaded = loader.process(w, name).weights  # the HF layout transformers trains in
        assert not np.array_equal(loaded, w)
        config = type("C", (), {"num_attention_heads": 9, "num_key_value_heads": 3})
        assert np.array_equal(gguf._rows_permuted(hf, loaded, config), w)
    assert gguf.gguf_name("model.layers.7.mlp.down_proj", 30) == "blk.7.ffn_down"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_a_job_that_did_not_succeed_keeps_no_manifest(tmp_path):
    from harness.finetune.local.job import close_state

    for status, kept in (("failed", False), ("cancelled", False), ("succeeded", True)):
        folder = tmp_path / status
        folder.mkdir()
        write_json_atomic(folder / JOB, {"options": {"price_per_hour": 0.36}})
        write_json_atomic(folder / STATE, {"status": "running", "started_at": 100.0})
        (folder / local_trained.MANIFEST).write_text("{}")
        state = close_state(folder, status, ended_at=110.0)
        assert (state["status"], state["cost_usd"]) == (status, 0.001)
        assert (folder / local_trained.MANIFEST).exists() is kept


def test_a_trainer_that_died_silently_is_failed_with_its_cost(tmp_path, monkeypatch):
    monkeypatch.setenv(local_trained.MODELS_ENV, str(tmp_path))
    for name, pid in (("ft-dead", _dead_pid()), ("ft-reused", os.getpid())):
        folder = tmp_path / name
        folder.mkdir()
        write_json_atomic(folder / JOB, {"job_id": name[3:], "options": {"price_per_hour": PRICE}})
        # A pid that is gone, or alive but another process (this one): reused by the system.
        write_json_atomic(folder / STATE, {"status": "running", "pid": pid, "started_at": 1000.0})
        (folder / "events.jsonl").write_text(
            json.dumps({"seq": 1, "at": 1100.0, "type": "metrics", "step": 1}) + "\n"
        )
        state = backend.poll(name[3:])
        assert state.status == "failed"
        assert state.error.startswith(f"the training process {pid} ended without a result")
        wall_s = json.loads((folder / STATE).read_text())["wall_s"]
        assert (wall_s, state.cost_usd) == (100.0, 0.01)  # until it last said something
        assert [e["seq"] for e in state.events] == [1]
        assert backend.poll(name[3:]).events == []  # only new events on the next poll


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_poll_of_an_unknown_job_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv(local_trained.MODELS_ENV, str(tmp_path))
    with pytest.raises(SuiteError, match=r"no local training job nope in " + str(tmp_path)):
        backend.poll("nope")


# --- real training (the train extra, minutes of CPU) ------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    pytest.importorskip("peft")
    pytest.importorskip("llama_cpp")
    from harness.export.finetune import export_finetune
    from harness.suite import load_suite

    tmp = tmp_path_factory.mktemp("ft")
    export_finetune(
        load_suite(ROOT / "suites/quickstart.yaml"), tmp / "all.jsonl", variant="zero-shot"
    )
    rows = (tmp / "all.jsonl").read_text().splitlines()
    # Every intent: the file is grouped by label, 20 each.
    (tmp / "train.jsonl").write_text("\n".join(rows[i] for i in range(0, 120, 10)) + "\n")
    (tmp / "val.jsonl").write_text("\n".join(rows[i] for i in range(5, 120, 30)) + "\n")
    return tmp


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    old = os.environ.get(local_trained.MODELS_ENV)
    os.environ[local_trained.MODELS_ENV] = str(folder)
    yield folder
    if old is None:
        os.environ.pop(local_trained.MODELS_ENV)
    else:
        os.environ[local_trained.MODELS_ENV] = old
    local_processes.close()


WATCHER = """
import sys, time
from harness.finetune.local import backend
job = backend.submit({spec}, sys.argv[1], sys.argv[2], {{"suite": "quickstart"}})
print(job, flush=True)
while True:
    backend.poll(job)
    time.sleep(0.5)
"""


def _watch(job: str, timeout: float = 900) -> tuple:
    events, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = backend.poll(job)
        events += state.events
        if state.status in ("succeeded", "failed", "cancelled"):
            return state, events
        time.sleep(1)
    raise AssertionError(f"job {job} still {state.status} after {timeout} s")


@pytest.fixture(scope="module")
def lora_job(data, models):
    spec = {"method": "lora", "epochs": 2, "batch_size": 4, "price_per_hour": PRICE}
    edited = data / "edited.jsonl"
    edited.write_text((data / "train.jsonl").read_text())
    watcher = subprocess.Popen(
        [sys.executable, "-c", WATCHER.format(spec=spec), str(edited), str(data / "val.jsonl")],
        stdout=subprocess.PIPE,
        text=True,
    )
    job = watcher.stdout.readline().strip()
    watcher.send_signal(signal.SIGKILL)  # the watcher dies; the training must not
    watcher.wait()
    edited.write_text("garbage\n")  # edited after submit: the job trains on its own copy
    state = backend.poll(job)
    assert state.status in ("queued", "running")
    assert _alive(json.loads((models / f"ft-{job}" / STATE).read_text())["pid"])
    state, events = _watch(job)
    return job, state, events


@pytest.mark.local_model
@pytest.mark.train
def test_training_lowers_the_loss_and_records_its_measured_cost(lora_job, models):
    job, state, events = lora_job
    assert state.status == "succeeded", state.error
    assert state.model_id == f"local/ft-{job}"
    losses = [e["train_loss"] for e in events if "train_loss" in e]
    assert len(losses) == 6  # 12 examples / 4 per step × 2 epochs
    assert np.mean(losses[-2:]) < 0.5 * np.mean(losses[:2])
    assert [e["step"] for e in events if "val_loss" in e] == [3, 6]
    import torch

    where = "cuda (" if torch.cuda.is_available() else "the CPU (1 thread)"
    assert any(e["message"].startswith(f"training lora on {where}") for e in events)
    wall_s = json.loads((models / f"ft-{job}" / STATE).read_text())["wall_s"]
    assert state.cost_usd == pytest.approx(wall_s / 3600 * PRICE, abs=1e-6)
    assert state.trained_tokens > 12 * 2 * 50
    assert state.checkpoints == [
        {
            "id": job,
            "step": 6,
            "model_id": state.model_id,
            "path": str(models / f"ft-{job}" / "adapter.gguf"),
        }
    ]


@pytest.mark.local_model
@pytest.mark.train
def test_served_adapter_answers_as_at_training_time(lora_job, models):
    job, state, events = lora_job
    said = [e for e in events if "verify_matched" in e]
    assert [(e["verify_matched"], e["verify_total"]) for e in said] == [(4, 4)]
    # Asked again here, through litellm and the local provider, as `harness run` asks it.
    import litellm

    from harness.calls.local_model import ensure_registered

    ensure_registered(state.model_id)
    verify = [
        json.loads(line)
        for line in (models / f"ft-{job}" / "verify.jsonl").read_text().splitlines()
    ]
    for v in verify:
        r = litellm.completion(
            model=state.model_id, messages=v["messages"], temperature=0, max_tokens=32
        )
        assert r.choices[0].message.content == v["answer"]
        assert r.model == state.model_id
    # Trained on the format: the answers are the schema's JSON, unconstrained.
    assert all(json.loads(v["answer"]).keys() == {"intent"} for v in verify)
    base = local_processes.generate(verify[0]["messages"], {"temperature": 0, "max_tokens": 32})
    assert base["text"] != verify[0]["answer"]  # the base model does not answer that way


@pytest.mark.local_model
@pytest.mark.train
def test_cancel_stops_the_trainer_and_serves_nothing(data, models, lora_job):
    spec = {"method": "lora", "epochs": 50, "batch_size": 2, "price_per_hour": PRICE}
    job = backend.submit(spec, data / "train.jsonl", None, {})
    pid = json.loads((models / f"ft-{job}" / STATE).read_text())["pid"]
    deadline = time.monotonic() + 600
    while not any("train_loss" in e for e in backend.poll(job).events):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    state = backend.cancel(job)
    assert state.status == "cancelled"
    assert not _alive(pid)
    wall_s = json.loads((models / f"ft-{job}" / STATE).read_text())["wall_s"]
    assert state.cost_usd == pytest.approx(wall_s / 3600 * PRICE, abs=1e-6)
    assert not (models / f"ft-{job}" / "model.json").exists()
    with pytest.raises(SuiteError, match="no trained model"):
        local_processes.resolve(f"local/ft-{job}")
    assert backend.cancel(job).status == "cancelled"  # cancelling again changes nothing


@pytest.mark.local_model
@pytest.mark.train
def test_full_fine_tuning_writes_a_gguf_at_f32_that_serves(data, models, lora_job):
    import gguf as gguf_lib
    from gguf import GGMLQuantizationType, GGUFReader

    spec = {"method": "full", "epochs": 2, "batch_size": 4, "learning_rate": 1e-4}
    spec["verify_examples"] = 2
    state, events = _watch(backend.submit(spec, data / "train.jsonl", None, {}))
    assert state.status == "succeeded", state.error
    assert [e["step"] for e in events if "train_loss" in e] == [1, 2, 3, 4, 5, 6]
    # Served at F32, the precision it trained in: the served answers are transformers' own.
    said = [(e["verify_matched"], e["verify_total"]) for e in events if "verify_matched" in e]
    assert said == [(2, 2)]
    assert state.cost_usd is None  # no price_per_hour: unknown, never $0
    served = local_processes.resolve(state.model_id)
    assert served.lora is None and served.gguf.name == "model.gguf"
    base = GGUFReader(str(local_processes.model_path()))
    trained = GGUFReader(str(served.gguf))
    # Every tensor of the base, none rounded to the base file's Q4_1 types.
    assert [t.name for t in trained.tensors] == [t.name for t in base.tensors]
    assert {t.tensor_type for t in trained.tensors} == {GGMLQuantizationType.F32}
    saved = json.loads((models / f"ft-{state.checkpoints[0]['id']}" / STATE).read_text())
    assert saved["served_precision"].startswith("F32")
    assert trained.fields["tokenizer.chat_template"].contents() == (
        base.fields["tokenizer.chat_template"].contents()
    )
    q = next(t for t in trained.tensors if t.name == "blk.0.attn_q.weight")
    q0 = next(t for t in base.tensors if t.name == "blk.0.attn_q.weight")
    assert not np.allclose(q.data, gguf_lib.quants.dequantize(q0.data, q0.tensor_type))


def _suite_with(tmp_path, block: str):
    from harness.suite import load_suite

    text = (ROOT / "suites/quickstart.yaml").read_text().replace("../data", str(ROOT / "data"))
    text = text.replace(
        "baseline: zero-shot",
        "  - name: lora\n    kind: fine-tuned\n    base_model: local/smollm2\n"
        f"    finetune: {block}\nbaseline: zero-shot",
    )
    path = tmp_path / "ft.yaml"
    path.write_text(text)
    return load_suite(path)


def test_the_local_provider_of_harness_finetune_takes_common_keys_from_the_block(tmp_path):
    from harness.finetune.backends import finetune_spec, make_backend

    suite = _suite_with(tmp_path, "{provider: local, epochs: 2, seed: 7, lora_r: 4}")
    spec = finetune_spec(suite, suite.variants[-1])
    opts = make_backend(spec)._options(spec)
    assert (opts.base_model, opts.epochs, opts.seed, opts.lora_r) == ("local/smollm2", 2, 7, 4)


def test_a_misspelt_local_key_is_refused_with_its_line(tmp_path):
    from harness.finetune.backends import finetune_spec

    suite = _suite_with(tmp_path, "{provider: local, lora_rank: 4}")
    with pytest.raises(SuiteError) as err:
        finetune_spec(suite, suite.variants[-1])
    assert str(err.value) == (
        f"{tmp_path / 'ft.yaml'}:36:44: variants[2].finetune.lora_rank: Extra inputs are not "
        "permitted (provider local)"
    )


def test_a_served_model_that_does_not_answer_as_trained_is_flagged(tmp_path, monkeypatch):
    """The self-check (the served model's greedy answers vs transformers' at training time) at 0
    of 4 (issue 31): the job still succeeds (its model exists and was paid for), but its record,
    `harness finetune`'s output and `harness run`'s notes say loudly that the served model is not
    answering as the trained one did — a user would otherwise evaluate another model."""
    from harness.finetune.local import train
    from harness.finetune.records import JobStore, suite_lineage
    from harness.finetune.resolve import resolve_trained
    from harness.run.finetune import FinetuneOptions, _Watch

    models = tmp_path / "models"
    monkeypatch.setenv(local_trained.MODELS_ENV, str(models))
    folder = models / "ft-x"
    folder.mkdir(parents=True)
    write_json_atomic(folder / JOB, {"job_id": "x", "options": {"price_per_hour": PRICE}})
    write_json_atomic(folder / STATE, {"status": "queued", "created_at": time.time()})
    verify = [{"messages": [{"role": "user", "content": f"q{i}"}], "answer": "A"} for i in range(4)]

    def trained(folder, events):  # what train() leaves: the weights' files and their answers
        (folder / "verify.jsonl").write_text("".join(json.dumps(v) + "\n" for v in verify))
        return {"file": "adapter.gguf", "trained_tokens": 10, "steps": 1, "precision": "fp32",
                "served_precision": "F32"}  # fmt: skip

    monkeypatch.setattr(train, "train", trained)
    monkeypatch.setattr(train, "served_answers", lambda model_id, v, n: ["B"] * len(v))
    monkeypatch.setattr(train.signal, "signal", lambda *a: None)  # pytest's handlers stay
    assert train.main(folder) == 0

    suite = _suite_with(tmp_path, "{provider: local}")
    store = JobStore(tmp_path / "runs", suite_lineage(suite, tmp_path / "runs"))
    record = store.append(
        {"job_id": "x", "variant": "lora", "provider": "local", "status": "queued"}
    )
    said: list[str] = []
    opts = FinetuneOptions(runs_dir=tmp_path / "runs", poll_interval=0, echo=said.append)
    out = _Watch(store, backend.LocalBackend(None), opts, "harness finetune ...").until_done(record)
    assert out.exit_code == 0
    warning = (
        "  WARNING: the served model local/ft-x gives the training-time greedy answer on only 0 "
        "of 4 examples — it is not answering as the trained model did (a conversion or serving "
        "fault), so an evaluation of it is not the trained model's"
    )
    assert warning in said
    job = store.latest("lora")
    assert (job["status"], job["verify_matched"], job["verify_total"]) == ("succeeded", 0, 4)

    _, _, notes = resolve_trained(suite, suite.variants, tmp_path / "runs")
    assert (
        "lora: WARNING — the served model local/ft-x gave the training-time greedy answer on only "
        "0 of 4 examples when job x checked it: this run may not evaluate the trained model"
    ) in notes


def test_doctor_names_the_engine_that_serves_a_trained_model(tmp_path, monkeypatch):
    """A job served by vLLM is on disk as its kept weights: `harness doctor` says vLLM serves it,
    as `harness run` will start it, not llama.cpp."""
    from harness.check.doctor import trained_models
    from harness.finetune.records import JobStore, suite_lineage

    models = tmp_path / "models"
    folder = models / "ft-vjob"
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text("{}")
    write_json_atomic(folder / JOB, {"job_id": "vjob", "options": {"serve": "vllm"}})
    write_json_atomic(folder / "model.json", {"kind": "vllm", "file": "adapter", "job_id": "vjob"})
    monkeypatch.setenv(local_trained.MODELS_ENV, str(models))
    suite = _suite_with(tmp_path, "{provider: local}")
    store = JobStore(tmp_path / "runs", suite_lineage(suite))
    store.append(
        {"job_id": "vjob", "variant": "lora", "status": "succeeded", "model_id": "local/ft-vjob"}
    )
    section = trained_models(suite, tmp_path / "runs")
    assert [(line.label, line.value) for line in section.lines] == [
        ("lora", "local/ft-vjob: on disk, served by vLLM")
    ]
