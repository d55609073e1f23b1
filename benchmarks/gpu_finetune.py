"""The GPU path of self-hosted fine-tuning: a ~0.5B model from a local directory, LoRA and QLoRA
through the local backend (TRL SFTTrainer, bf16/fp16, bitsandbytes 4-bit), each served by vLLM
with its adapter beside the base, and the base and trained model scored on the quickstart's
banking77-mini test split.

    python benchmarks/gpu_finetune.py --model /models/Qwen2.5-0.5B-Instruct [--methods lora qlora]

Needs a CUDA GPU, the `train` and `gpu` extras (bitsandbytes, vLLM). Prints, per method: wall
time, GPU-hours, cost at --price-per-hour, training precision, and accuracy / format compliance
of the base and the trained model. Untested until a GPU machine runs it (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "suites/quickstart-finetune.yaml"


def _answers(server, which: str, rows: list[dict], system: str) -> list[str]:
    import litellm

    out = []
    for r in rows:
        reply = litellm.completion(
            model=server.litellm_model(which),
            api_base=server.api_base,
            api_key="none",
            messages=[
                {"role": "system", "content": system},
                {"role": "user", "content": f"Question: {r['text']}"},
            ],
            temperature=0,
            max_tokens=32,
        )
        out.append(reply.choices[0].message.content or "")
    return out


def _score(answers: list[str], rows: list[dict]) -> tuple[float, float]:
    right = valid = 0
    for a, r in zip(answers, rows, strict=True):
        try:
            intent = json.loads(a.strip()).get("intent")
            valid += 1
        except (ValueError, AttributeError):
            intent = None
        right += intent == r["category"]
    return right / len(rows), valid / len(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a local model directory (~0.5B, chat template)")
    p.add_argument("--methods", nargs="+", default=["lora", "qlora"])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--price-per-hour", type=float, default=2.0)
    args = p.parse_args()

    import torch

    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this benchmark is the GPU path (the CPU path is in the tests)")
    from harness.export.finetune import export_finetune
    from harness.finetune.local import backend
    from harness.finetune.local.job import STATE
    from harness.finetune.local.vllm import server_for
    from harness.suite import load_suite

    work = Path(tempfile.mkdtemp(prefix="gpu-finetune-"))
    os.environ.setdefault("HARNESS_MODELS_DIR", str(work / "models"))
    suite = load_suite(SUITE)
    export_finetune(suite, work / "train.jsonl", variant="zero-shot")
    with open(ROOT / "data/banking77-mini/test.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    system = suite.raw["defaults"]["system"]
    print(f"GPU: {torch.cuda.get_device_name()} ×{torch.cuda.device_count()}; work dir {work}")
    results = []
    for method in args.methods:
        spec = {
            "base_model": args.model,
            "method": method,
            "epochs": args.epochs,
            "batch_size": 8,
            "serve": "vllm",
            "price_per_hour": args.price_per_hour,
        }
        job = backend.submit(spec, work / "train.jsonl", None, {"suite": "gpu-benchmark"})
        while (state := backend.poll(job)).status not in ("succeeded", "failed", "cancelled"):
            for e in state.events:
                print(f"  [{method}] {e['message']}")
            time.sleep(2)
        if state.status != "succeeded":
            print(f"{method}: {state.status} — {state.error}")
            continue
        folder = Path(os.environ["HARNESS_MODELS_DIR"]) / f"ft-{job}"
        saved = json.loads((folder / STATE).read_text())
        with server_for(folder) as server:
            server.start(folder / "vllm.log")
            t0 = time.perf_counter()
            server.wait_healthy()
            up = time.perf_counter() - t0
            base = _score(_answers(server, "base", rows, system), rows)
            trained = _score(_answers(server, "trained", rows, system), rows)
        results.append(
            {
                "method": method,
                "wall_s": saved["wall_s"],
                "gpu_hours": saved.get("gpu_hours"),
                "cost_usd": saved.get("cost_usd"),
                "precision": saved.get("precision"),
                "vllm_start_s": round(up, 1),
                "base_accuracy": base[0],
                "base_format": base[1],
                "trained_accuracy": trained[0],
                "trained_format": trained[1],
            }
        )
        print(json.dumps(results[-1]))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
