"""LoRA fine-tuning of SmolLM2-135M on the quickstart's train split, on this machine.

    python benchmarks/local_finetune.py [--method lora|full] [--epochs 3] [--price-per-hour 0.05]

Exports the train split (zero-shot's templates), trains through the `local` backend exactly as
`harness finetune` does (a detached process, polled), and prints wall time, steps, tokens, the
loss curve, the measured cost and whether the served model (llama.cpp) gives the training-time
answers. Saves the curve as benchmarks/local_finetune_loss.png. Needs the train extra.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.export.finetune import export_finetune  # noqa: E402
from harness.finetune.local import backend  # noqa: E402
from harness.finetune.local.job import job_folder  # noqa: E402
from harness.suite import load_suite  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="lora", choices=["lora", "full"])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--price-per-hour", type=float, default=0.05)
    ap.add_argument("--plot", default=str(ROOT / "benchmarks" / "local_finetune_loss.png"))
    args = ap.parse_args()

    os.environ.setdefault("HARNESS_MODELS_DIR", tempfile.mkdtemp(prefix="harness-models-"))
    tmp = Path(tempfile.mkdtemp(prefix="harness-ft-"))
    suite = load_suite(ROOT / "suites" / "quickstart.yaml")
    exported = export_finetune(suite, tmp / "train.jsonl", variant="zero-shot")
    print(f"train split: {exported.n_examples} examples, {exported.n_tokens} tokens")
    spec = {
        "method": args.method,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "price_per_hour": args.price_per_hour,
    }
    start = time.time()
    job = backend.submit(spec, tmp / "train.jsonl", None, {"benchmark": "local_finetune"})
    losses, first_step_at, matched = [], None, None
    while True:
        state = backend.poll(job)
        for e in state.events:
            if "train_loss" in e:
                first_step_at = first_step_at or e["at"]
                losses.append((e["step"], e["train_loss"]))
            if "verify_matched" in e:
                matched = (e["verify_matched"], e["verify_total"])
            if e["type"] == "message":
                print(f"  [{e['at'] - start:6.1f} s] {e['message']}")
        if state.status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(1)
    wall = time.time() - start
    trainer_wall = json.loads((job_folder(job) / "state.json").read_text())["wall_s"]
    print(f"status: {state.status} {state.error or ''}")
    print(f"model: {state.model_id}")
    print(
        f"wall: {wall:.1f} s (training process {trainer_wall} s; model load until step 1: "
        f"{(first_step_at or start) - start:.1f} s)"
    )
    print(f"steps: {len(losses)}, trained tokens: {state.trained_tokens}")
    print(
        f"loss: first {losses[0][1]:.3f}, last {losses[-1][1]:.3f}, curve "
        + " ".join(f"{loss:.2f}" for _, loss in losses)
    )
    print(f"cost: ${state.cost_usd} (wall-clock × ${args.price_per_hour}/h)")
    if matched:
        print(f"served answers equal training-time answers: {matched[0]}/{matched[1]}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot([s for s, _ in losses], [v for _, v in losses], marker=".")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (assistant tokens)")
    ax.set_yscale("log")
    ax.set_title(f"SmolLM2-135M {args.method}, quickstart train split, {args.epochs} epochs")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
