"""vLLM serving of a locally trained model: an OpenAI-compatible server harness starts,
health-checks and stops; litellm reaches it as `hosted_vllm/<name>` at its `api_base`.

A LoRA/QLoRA job is served as its base with the peft adapter (`--enable-lora --lora-modules
<name>=<adapter dir>`): the base model answers under its own name and the trained model under
the job's, from one server — the prompt variants and the trained variant run the very same
base weights at the same precision. A full fine-tune is served from its transformers directory.

Written and unit-tested for its command line and its start / health / stop cycle here; it has
not run against vLLM on a GPU yet (benchmarks/gpu_finetune.py is the script that will).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import SuiteError
from harness.finetune.local.job import HF_ADAPTER, HF_MODEL, JOB, LocalOptions, read_json

LITELLM_PREFIX = "hosted_vllm"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class VllmServer:
    base: str  # the Hugging Face id or directory vLLM loads
    name: str  # what the trained model answers to (the job's model name)
    adapter: Path | None = None  # a peft adapter directory (LoRA/QLoRA)
    lora_rank: int = 8
    dtype: str = "auto"
    port: int = 0
    gpu_memory_utilization: float = 0.85
    max_model_len: int | None = None
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    log: Path = Path("vllm.log")

    def __post_init__(self):
        if not self.port:
            self.port = free_port()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

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

    def start(self, log: Path, command: list[str] | None = None) -> None:
        """Start the server (its own session, output to `log`); `wait_healthy` next."""
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                command or self.command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        self.log = log

    def healthy(self) -> bool:
        try:
            root = self.api_base.removesuffix("/v1")
            with urllib.request.urlopen(f"{root}/health", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, timeout_s: float = 900.0) -> None:
        """Until /health answers 200; SuiteError with the log's last line when the server died
        or did not come up in time (loading a 7B takes minutes)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise SuiteError(
                    f"vLLM exited with status {self.process.returncode} before it served — "
                    f"{_last_line(self.log)} (log: {self.log})"
                )
            if self.healthy():
                return
            time.sleep(0.5)
        self.stop()
        raise SuiteError(
            f"vLLM did not answer /health within {timeout_s:.0f} s — {_last_line(self.log)} "
            f"(log: {self.log})"
        )

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM to its process group (vLLM has worker children), SIGKILL after the grace."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _lora_rank_slot(r: int) -> int:
    # vLLM accepts these max-lora-rank values only.
    return next((s for s in (8, 16, 32, 64, 128, 256, 320, 512) if s >= r), r)


def _last_line(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip() if lines else "it printed nothing"


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
