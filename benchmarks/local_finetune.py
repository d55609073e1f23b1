"""Self-hosted LoRA of SmolLM2-135M through the suite: `harness finetune SUITE` on this machine.

    python benchmarks/local_finetune.py [--suite suites/quickstart-finetune.yaml] [--variant lora]

Runs the real command (`harness finetune`, its output shown as it comes) in the current runs/
and models/ folders, so `harness run SUITE` evaluates the very model it trained; then prints the
job's figures from its folder — wall time (model load, steps), trained tokens, the loss curve, the
measured cost (wall-clock × price_per_hour) and how many served (llama.cpp) answers equal the
training-time (transformers) ones — and plots training and validation loss per step to
benchmarks/local_finetune_loss.png. A suite already trained on the same rows and settings is not
trained again: the figures are those of its job. Needs the train extra.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.finetune.local.job import EVENTS, JOB, STATE, job_folder  # noqa: E402
from harness.finetune.records import JobStore, suite_lineage  # noqa: E402
from harness.suite import load_suite  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", default=str(ROOT / "suites" / "quickstart-finetune.yaml"))
    ap.add_argument("--variant", default="lora")
    ap.add_argument("--runs-dir", default="runs")
    ap.add_argument("--plot", default=str(ROOT / "benchmarks" / "local_finetune_loss.png"))
    args = ap.parse_args()

    load = Path("/proc/loadavg").read_text().split()[0]
    start = time.time()
    cmd = [sys.executable, "-m", "harness.cli", "finetune", args.suite, "--variant", args.variant]
    cmd += ["--runs-dir", args.runs_dir, "--poll-interval", "2"]
    code = subprocess.call(cmd)
    wall = time.time() - start
    if code != 0:
        sys.exit(code)
    suite = load_suite(args.suite)
    job = JobStore(args.runs_dir, suite_lineage(suite)).latest_succeeded(args.variant)
    folder = job_folder(job["job_id"])
    state = json.loads((folder / STATE).read_text())
    request = json.loads((folder / JOB).read_text())
    events = [json.loads(line) for line in (folder / EVENTS).read_text().splitlines()]
    train = [(e["step"], e["train_loss"]) for e in events if "train_loss" in e]
    val = [(e["step"], e["val_loss"]) for e in events if "val_loss" in e]
    steps_at = [e["at"] for e in events if "train_loss" in e]
    first = steps_at[0]
    matched = next((e for e in events if "verify_matched" in e), None)
    opts = request["options"]

    print(f"\njob {job['job_id']} ({suite.name}, variant {args.variant})")
    print(f"load average (1 min) at start: {load}; this command: {wall:.1f} s")
    print(f"rows: {job['n_train']} train, {job['n_val']} validation, {job['train_tokens']} tokens")
    print(
        f"trainer wall-clock: {state['wall_s']:.1f} s ({state['wall_s'] / 60:.1f} min): "
        f"{first - state['started_at']:.1f} s until step 1 (imports, GGUF dequantisation), "
        f"{len(train)} steps ≈ {(steps_at[-1] - first) / max(1, len(train) - 1):.1f} s each, "
        f"{events[-1]['at'] - steps_at[-1]:.1f} s to write the adapter and check it served"
    )
    print(f"trained tokens: {state['trained_tokens']}")
    print(
        f"training loss: {train[0][1]:.3f} → {train[-1][1]:.3f}; validation loss "
        + " → ".join(f"{v:.3f} (step {s})" for s, v in val)
    )
    print(
        f"cost: ${state['cost_usd']} = {state['wall_s']:.1f} s × ${opts['price_per_hour']}/h"
        if state.get("cost_usd") is not None
        else "cost: unknown (no price_per_hour)"
    )
    if matched:
        print(
            f"served answers = training-time answers: "
            f"{matched['verify_matched']}/{matched['verify_total']}"
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot([s for s, _ in train], [v for _, v in train], marker=".", label="training")
    if val:
        ax.plot([s for s, _ in val], [v for _, v in val], marker="o", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title(
        f"{suite.name}: SmolLM2-135M {opts['method']} r={opts['lora_r']}, {opts['epochs']} epochs"
    )
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
