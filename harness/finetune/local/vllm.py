"""vLLM serving of a locally trained model: an OpenAI-compatible server harness starts,
health-checks and stops; litellm reaches it as `hosted_vllm/<name>` at its `api_base`.

A LoRA/QLoRA job is served as its base with the peft adapter (`--enable-lora --lora-modules
<name>=<adapter dir>`): the base model answers under its own name and the trained model under
the job's, from one server — the prompt variants and the trained variant run the very same
base weights at the same precision. A full fine-tune is served from its transformers directory.

The start / health / stop cycle is harness.calls.local_server.Server's (shared with llama.cpp's
server); `harness run` starts it for a trained variant whose job was served by vLLM
(harness.run.serving). Unit-tested for its command line and that cycle with a stand-in; it has
not run against vLLM on a GPU yet (benchmarks/gpu_finetune.py is the script that will).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from harness.calls.local_server import Server
from harness.errors import SuiteError
from harness.finetune.local.job import HF_ADAPTER, HF_MODEL, JOB, LocalOptions, read_json

LITELLM_PREFIX = "hosted_vllm"


@dataclass(kw_only=True)
class VllmServer(Server):
    base: str  # the Hugging Face id or directory vLLM loads
    adapter: Path | None = None  # a peft adapter directory (LoRA/QLoRA)
    lora_rank: int = 8
    dtype: str = "auto"
    gpu_memory_utilization: float = 0.85
    max_model_len: int | None = None
    log: Path = Path("vllm.log")

    engine = "vLLM"
    health_path = "/health"  # vLLM's own: 200 once the engine is up
    litellm_prefix = LITELLM_PREFIX

    def litellm_model(self, which: str = "trained") -> str:
        """The model litellm calls: the trained one, or (`base`) the base it was trained on."""
        served = self.name if which == "trained" or self.adapter is None else self.base_name
        return f"{LITELLM_PREFIX}/{served}"

    @property
    def base_name(self) -> str:
        return f"{self.name}-base" if self.adapter is not None else self.name

    def command(self) -> list[str]:
        """`python -m vllm.entrypoints.openai.api_server ...` (what `vllm serve` runs)."""
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", self.base]
        cmd += ["--served-model-name", self.base_name]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--dtype", self.dtype]
        cmd += ["--gpu-memory-utilization", str(self.gpu_memory_utilization)]
        if self.max_model_len:
            cmd += ["--max-model-len", str(self.max_model_len)]
        if self.adapter is not None:
            cmd += ["--enable-lora", "--max-lora-rank", str(_lora_rank_slot(self.lora_rank))]
            cmd += ["--lora-modules", f"{self.name}={self.adapter}"]
        return cmd + list(self.extra_args)


def _lora_rank_slot(r: int) -> int:
    # vLLM accepts these max-lora-rank values only.
    return next((s for s in (8, 16, 32, 64, 128, 256, 320, 512) if s >= r), r)


def server_for(folder: Path, port: int = 0) -> VllmServer:
    """The server of a trained job folder (its kept peft adapter or transformers model)."""
    job = read_json(folder / JOB)
    opts = LocalOptions.model_validate(job["options"])
    if opts.shipped:
        raise SuiteError(
            "vLLM does not serve the shipped SmolLM2 GGUF — train from a Hugging Face id or "
            "directory (finetune.base_model) to serve with vLLM"
        )
    from harness.finetune.local.serving import hf_base

    name = f"ft-{job['job_id']}"
    if (folder / HF_MODEL).is_dir():
        return VllmServer(base=str(folder / HF_MODEL), name=name, port=port)
    if not (folder / HF_ADAPTER).is_dir():
        raise SuiteError(f"{folder}: no trained weights (adapter/ or model/) — train it again")
    return VllmServer(
        base=hf_base(opts),
        name=name,
        adapter=folder / HF_ADAPTER,
        lora_rank=opts.lora_r,
        port=port,
        dtype={"auto": "auto", "fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[
            opts.precision
        ],
    )
