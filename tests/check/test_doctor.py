"""`harness doctor`: one screen of versions, store, local model and keys; exit 0 ready, 2 not."""

from __future__ import annotations

import re
import sqlite3

import pytest
from click.testing import CliRunner
from conftest import write_suite

from harness.calls import local_processes
from harness.check import doctor
from harness.cli import main

SYSTEM_INFO_NATIVE = (
    "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 1 | AVX512_VNNI = 1 "
    "| AMX_INT8 = 1 | LLAMAFILE = 1 | REPACK = 1 |"
)


def invoke(*args):
    return CliRunner().invoke(main, ["doctor", *map(str, args)], catch_exceptions=False)


@pytest.fixture
def no_local(monkeypatch):
    """As on a machine without the `local` extra: doctor must not try to start the model."""
    monkeypatch.setattr(doctor.importlib.util, "find_spec", lambda name: None)


def test_build_features_are_the_ones_switched_on():
    assert doctor.build_features("CPU : AVX = 1 | AVX512 = 0 | AMX_INT8 = 1 |") == [
        "AVX",
        "AMX_INT8",
    ]


def test_a_native_build_is_named_with_the_rebuild_command(monkeypatch):
    pytest.importorskip("llama_cpp")
    monkeypatch.setattr(
        doctor, "_child_info", lambda: {"system_info": SYSTEM_INFO_NATIVE, "version": "0.3.36"}
    )
    monkeypatch.setattr(doctor, "_one_token", lambda: doctor.Line("generation", "ok"))
    section = doctor.local(needed=True)
    build = next(ln for ln in section.lines if ln.label == "build")
    assert build.warning and build.problem is None  # it runs here; it would crash elsewhere
    assert build.value == (
        "native (AVX512, AVX512_VNNI, AMX_INT8): crashes on CPUs without them — rebuild "
        f"portably with: {local_processes.rebuild_command()}"
    )


def test_a_crashing_build_is_not_ready(monkeypatch):
    pytest.importorskip("llama_cpp")
    monkeypatch.setattr(doctor, "_child_info", lambda: local_processes.crash_message(-4, ""))
    section = doctor.local(needed=True)
    (build,) = [ln for ln in section.lines if ln.label == "build"]
    assert build.value.startswith(
        "the local model (local/smollm2, llama.cpp in its worker process) was killed by SIGILL"
    )
    assert build.problem == f"rebuild llama-cpp-python: {local_processes.rebuild_command()}"


def test_missing_key_is_named_never_valued_and_exit_2(
    tmp_path, monkeypatch, no_local, isolated_cwd
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-value-123")
    suite = write_suite(tmp_path, "http://127.0.0.1:9/v1")
    text = suite.read_text().replace("  api_base: http://127.0.0.1:9/v1\n", "")
    suite.write_text(text)
    result = invoke(suite)
    assert result.exit_code == 2, result.output
    assert result.output.endswith(
        "  ! zero-shot         openai/fake-model: OPENAI_API_KEY not set\n"
        "  ! few-shot          openai/fake-model: OPENAI_API_KEY not set\n"
        "  ✗ OPENAI_API_KEY    not set\n"
        "not ready — 1 to fix:\n"
        "  - export OPENAI_API_KEY=… (needed by zero-shot, few-shot)\n"
    )
    assert "sk-ant-secret-value-123" not in result.output


def test_key_present_is_ready_and_shows_the_name_only(
    tmp_path, monkeypatch, no_local, isolated_cwd
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-do-not-print-9876")
    suite = write_suite(tmp_path, "http://127.0.0.1:9/v1")
    suite.write_text(suite.read_text().replace("  api_base: http://127.0.0.1:9/v1\n", ""))
    result = invoke(suite)
    assert result.exit_code == 0, result.output
    assert "  zero-shot         openai/fake-model: OPENAI_API_KEY set\n" in result.output
    assert result.output.endswith("ready\n")
    assert "sk-test-do-not-print-9876" not in result.output


def test_an_api_base_with_credentials_is_refused_without_showing_them(
    tmp_path, no_local, isolated_cwd
):
    # The OpenAI client never sends URL credentials: the suite is refused with the fix.
    suite = write_suite(tmp_path, "http://user:hunter2@127.0.0.1:9/v1")
    result = invoke(suite)
    assert result.exit_code == 2
    assert "hunter2" not in result.output
    assert "defaults.api_base: credentials in api_base (user:password@host)" in result.output


def test_tracking_store_states(tmp_path, no_local, isolated_cwd):
    result = invoke()
    db = tmp_path / "mlruns" / "mlflow.db"
    assert f"    uri               sqlite:///{db}\n" in result.output
    assert f"answers           not created yet — the first run creates {db}\n" in result.output
    assert result.exit_code == 0
    db.parent.mkdir()
    db.write_bytes(b"this is not a database")
    result = invoke()
    assert result.exit_code == 2
    assert re.search(
        rf"- {re.escape(str(db))} is not a readable MLflow store \(.*\) — move it aside and run again\n",
        result.output,
    )
    db.unlink()
    with sqlite3.connect(db) as con:
        con.execute("create table runs (id text)")
        con.execute("insert into runs values ('a')")
    assert (
        f"answers           yes (1 MLflow runs in {db}: one per harness run, one per variant)\n"
        in invoke().output
    )


def test_unreachable_tracking_server_is_not_ready(no_local, isolated_cwd):
    result = invoke("--tracking-uri", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "tracking server http://127.0.0.1:9 is unreachable" in result.output


def test_a_suite_error_is_exit_2_with_the_location(tmp_path, no_local, isolated_cwd):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: classification\nvariantz: []\n")
    result = invoke(bad)
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {bad}:")


@pytest.mark.local_model
def test_the_installed_build_generates_one_token_in_a_child(isolated_cwd):
    pytest.importorskip("llama_cpp")
    result = invoke()
    assert "    installed         yes (" in result.output
    assert re.search(r"    generation        ok: 1 token in [\d.]+ s", result.output), result.output


LOCAL_FT_SUITE = """\
name: ft-here
task: classification
data: {test: test.csv, train: test.csv, input: text, target: category}
labels: from-data
metrics: [accuracy]
defaults: {model: local/smollm2, user: "{{ text }}"}
variants:
  - name: zero-shot
  - name: lora
    kind: fine-tuned
    base_model: local/smollm2
    finetune: {provider: local, price_per_hour: 0.05}
baseline: zero-shot
"""


def _train_lines(output: str) -> list[str]:
    block = output.split("train extra (finetune provider: local)\n", 1)[1]
    return [ln for ln in block.splitlines() if ln.startswith("  ")][:11]


def test_the_train_extra_is_shown_with_cuda_the_gpu_and_the_gpu_libraries(no_local, isolated_cwd):
    pytest.importorskip("torch")
    import importlib.metadata as md

    import torch

    result = invoke()
    lines = _train_lines(result.output)
    assert lines[:6] == [
        f"    {dist.ljust(18)}{doctor._version(dist)}" for dist in doctor.TRAIN_EXTRA
    ]
    assert lines[0] == f"    torch             {md.version('torch')}"
    if torch.version.cuda is None:
        assert lines[6:8] == [
            "    CUDA              no (a CPU build of torch)",
            "    GPU               none — the local backend trains on the CPU",
        ]
    else:
        assert lines[6] == f"    CUDA              CUDA {torch.version.cuda} build"
    assert lines[8:11] == [
        f"    accelerate        {doctor._version('accelerate')} (several GPUs: accelerate launch)",
        f"    bitsandbytes      {doctor._version('bitsandbytes')} (method: qlora, CUDA only)",
        f"    vllm              {doctor._version('vllm')} (serves trained models on a GPU)",
    ]
    assert result.exit_code == 0, result.output


def test_a_trained_model_missing_from_disk_is_a_problem_with_the_command(
    no_local, isolated_cwd, monkeypatch
):
    from harness.finetune.records import JobStore, suite_lineage
    from harness.suite import load_suite

    monkeypatch.setenv("HARNESS_MODELS_DIR", str(isolated_cwd / "models"))
    (isolated_cwd / "test.csv").write_text("text,category\na,x\nb,y\n")
    (isolated_cwd / "suite.yaml").write_text(LOCAL_FT_SUITE)
    suite = load_suite(isolated_cwd / "suite.yaml")
    JobStore("runs", suite_lineage(suite)).append(
        {"job_id": "gone", "variant": "lora", "status": "succeeded", "model_id": "local/ft-gone"}
    )
    result = invoke("suite.yaml")
    assert (
        f"  ✗ lora              local/ft-gone: not on this disk ({isolated_cwd / 'models' / 'ft-gone'})"
        in result.output
    )
    assert (
        "  - `harness finetune suite.yaml --variant lora` trains it again (the same iteration), "
        "or set HARNESS_MODELS_DIR to where it is"
    ) in result.output


def test_a_missing_train_extra_is_a_problem_only_for_a_suite_that_trains_locally(
    monkeypatch, no_local, isolated_cwd
):
    real = doctor._version
    # peft missing, gguf present, whatever this machine has: the line names exactly what is missing.
    fake = {"peft": "not installed", "gguf": "0.19.0"}
    monkeypatch.setattr(doctor, "_version", lambda d: fake.get(d) or real(d))
    (isolated_cwd / "test.csv").write_text("text,category\na,x\nb,y\n")
    (isolated_cwd / "suite.yaml").write_text(LOCAL_FT_SUITE)
    gone = [d for d in doctor.TRAIN_EXTRA if d != "gguf" and doctor._version(d) == "not installed"]
    missing = f"no ({', '.join(gone)} missing) — install with: {doctor.TRAIN_INSTALL}"

    plain = invoke()
    assert f"    installed         {missing}" in plain.output
    assert plain.exit_code == 0, plain.output  # nothing asked to train

    trains = invoke("suite.yaml")
    assert trains.exit_code == 2
    assert f"  ✗ installed         {missing}" in trains.output
    assert f"  - this suite trains locally: {doctor.TRAIN_INSTALL}" in trains.output
    # The variant is served where its base model is, with no key.
    assert "    lora              local/smollm2: runs locally, no key" in trains.output
