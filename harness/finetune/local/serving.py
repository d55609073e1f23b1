"""What serves a locally trained model, and writing it from the trained weights.

The trainer keeps the trained weights as peft/transformers write them (`adapter/`, `model/`)
and `materialise` writes what llama.cpp loads from them:
- base local/smollm2 (the shipped Q4_1 GGUF): `lora` -> a GGUF adapter applied on top of the
  very base file the prompt variants run; `full` -> a whole GGUF at F32, the precision it was
  trained in (the base file's Q4_1 types would round most of the update away). The base it
  started from is the Q4_1 file dequantised, so F32 holds its weights exactly: the prompt
  variants on Q4_1 run the same base weights;
- a transformers LLaMA base (`local/hf:<dir or id>`): the base as an F32 GGUF (cached, shared
  with the prompt variants that name the same model), plus the adapter; or the full model as an
  F32 GGUF.
Deleted GGUF files are written again from the kept weights (`harness finetune` does it, no new
job). vLLM serves the peft adapter or the transformers model directly (harness.finetune.local.vllm).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from harness.calls import local_processes
from harness.calls.hf_gguf import HF_PREFIX, check_convertible, ensure_base_gguf, write_llama_gguf
from harness.calls.local_trained import MANIFEST, models_dir, write_manifest
from harness.finetune.local import gguf as gguf_out
from harness.finetune.local.job import HF_ADAPTER, HF_MODEL, JOB, LocalOptions, read_json

ADAPTER_GGUF, MODEL_GGUF = "adapter.gguf", "model.gguf"


def hf_base(opts: LocalOptions) -> str:
    """The id or directory transformers loads (`local/hf:` taken off)."""
    return opts.base_model.removeprefix(f"{local_processes.PROVIDER}/{HF_PREFIX}")


def engine(opts: LocalOptions) -> str:
    """ "vllm" or "llama.cpp": vLLM when asked, or (auto) when it and a CUDA device are present
    and the base is not the shipped GGUF."""
    if opts.serve != "auto":
        return opts.serve
    if opts.shipped or importlib.util.find_spec("vllm") is None:
        return "llama.cpp"
    import torch

    return "vllm" if torch.cuda.is_available() else "llama.cpp"


def check_servable(opts: LocalOptions, config) -> None:
    """Before training: a base llama.cpp cannot serve is refused with the way out."""
    if not opts.shipped and engine(opts) == "llama.cpp":
        check_convertible(config)


def trained_weights(folder: Path) -> Path | None:
    """The kept peft adapter or transformers model of a job folder (None: gone)."""
    for name in (HF_ADAPTER, HF_MODEL):
        if (folder / name).is_dir() and any((folder / name).iterdir()):
            return folder / name
    return None


def _shipped_base():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = local_processes.model_path()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    )
    return tok, model


def _load_trained(folder: Path, opts: LocalOptions):
    """(tokenizer, f32 CPU model) rebuilt from the kept weights."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.calls.hf_gguf import load_hf

    if (folder / HF_MODEL).is_dir():
        tok = AutoTokenizer.from_pretrained(str(folder / HF_MODEL))
        model = AutoModelForCausalLM.from_pretrained(str(folder / HF_MODEL), dtype=torch.float32)
        return tok, model
    from peft import PeftModel

    tok, base = _shipped_base() if opts.shipped else load_hf(hf_base(opts))
    return tok, PeftModel.from_pretrained(base, str(folder / HF_ADAPTER))


def merged_cpu(folder: Path, opts: LocalOptions):
    """The adapter on the f32 base, on the CPU: what llama.cpp serves for a QLoRA job."""
    return _load_trained(folder, opts)[1]


def materialise(
    folder: Path, opts: LocalOptions, *, model: Any = None, tok: Any = None
) -> tuple[str, int, str]:
    """Write the served files and the manifest (last); (file, tensors, served precision).
    Without `model`, the kept weights are loaded (a deleted GGUF written again)."""
    (folder / MANIFEST).unlink(missing_ok=True)
    job_id = read_json(folder / JOB)["job_id"]
    if engine(opts) == "vllm":
        # vLLM loads the kept weights themselves: nothing to convert.
        kept = HF_MODEL if opts.method == "full" else HF_ADAPTER
        (folder / MANIFEST).write_text(
            json.dumps({"kind": "vllm", "file": kept, "job_id": job_id}, indent=2) + "\n",
            encoding="utf-8",
        )
        return kept, 0, "the training precision (vLLM)"
    if model is None:
        tok, model = _load_trained(folder, opts)
    model = model.to("cpu")
    lora = opts.method in ("lora", "qlora")
    if opts.shipped:
        base = local_processes.model_path()
        if lora:
            n = gguf_out.write_lora_adapter(folder / ADAPTER_GGUF, model, opts.lora_alpha)
            write_manifest(folder, "lora", base, ADAPTER_GGUF, job_id=job_id)
            return ADAPTER_GGUF, n, "base Q4_1 (as the prompt variants) + adapter F32"
        n = gguf_out.write_full(folder / MODEL_GGUF, model, base)
        write_manifest(folder, "full", base, MODEL_GGUF, job_id=job_id)
        return MODEL_GGUF, n, "F32 (its base's Q4_1 weights are exact in F32)"
    if lora:
        base = ensure_base_gguf(hf_base(opts), models_dir())
        n = gguf_out.write_lora_adapter(folder / ADAPTER_GGUF, model, opts.lora_alpha)
        write_manifest(folder, "lora", base, ADAPTER_GGUF, shipped=False, job_id=job_id)
        return ADAPTER_GGUF, n, "base F32 (as local/hf: prompt variants) + adapter F32"
    n = write_llama_gguf(folder / MODEL_GGUF, model, tok)
    write_manifest(folder, "full", folder / MODEL_GGUF, MODEL_GGUF, shipped=False, job_id=job_id)
    return MODEL_GGUF, n, "F32"


def rematerialise(folder: Path) -> str:
    """Write a succeeded job's served files again from its kept weights; the file written."""
    opts = LocalOptions.model_validate(read_json(folder / JOB)["options"])
    file, _, _ = materialise(folder, opts)
    return file
