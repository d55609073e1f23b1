"""The docs' fine-tuning loop (docs/how-to/finetune-api.md), run for real against the test server (tests/support).

baseline → hypothesis → `harness finetune` → `harness run` → verdict → a second iteration, in a
temporary directory; prints each command and its exact output (the docs page copies it).

    PYTHONPATH=$PWD python scripts/finetune_loop.py            # print it
    PYTHONPATH=$PWD python scripts/finetune_loop.py --docs     # and replace the docs page's copy
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
from openai_server import FakeOpenAI  # noqa: E402

LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]
Q = {
    "card_arrival": "When will my card arrive? {tag}{i}",
    "lost_or_stolen_card": "I lost my card, help {tag}{i}",
    "exchange_rate": "What exchange rate do you use? {tag}{i}",
}


def answer(messages, body) -> str:
    """The base model misses lost cards; the first tuned model half of them; the second none."""
    text = messages[-1]["content"].lower()
    label = (
        "card_arrival"
        if "arrive" in text
        else "lost_or_stolen_card"
        if "lost" in text
        else "exchange_rate"
    )
    model = str(body.get("model", ""))
    n = int(text.rsplit("#", 1)[-1]) if "#" in text else 0
    if label == "lost_or_stolen_card" and (
        not model.startswith("ft:") or (model.endswith("000001") and n % 2)
    ):
        label = "exchange_rate"
    return json.dumps({"intent": label})


SUITE = """name: routing
task: classification
data: {{test: data/test.csv, train: data/train.csv, input: text, target: category}}
labels: from-data
metrics: [accuracy]
defaults:
  model: openai/gpt-4o-mini
  api_base: {url}
  params: {{temperature: 0, max_tokens: 16}}
  system: 'Answer as JSON {{"intent": ...}}.'
  user: "Question: {{{{ text }}}}"
variants:
  - name: zero-shot
  - name: ft
    kind: fine-tuned
    pricing: {{input_per_1m: 0.3, output_per_1m: 1.2}}   # serving the tuned model
    finetune: {{base_model: openai/gpt-4o-mini-2024-07-18, epochs: {epochs}, seed: 1,
               validation: 0.2, price_per_1m: 3.0}}
baseline: zero-shot
guard: {{metric: accuracy, margin: 0.2, max_iterations: 3, budget_usd: 5}}
"""


PAGE = Path(__file__).resolve().parents[1] / "docs" / "how-to" / "finetune-api.md"
START, END = "<!-- finetune-loop: scripts/finetune_loop.py --docs -->", "<!-- /finetune-loop -->"


def main() -> None:
    out: list[str] = []
    server = FakeOpenAI(answer).start()
    root = Path(tempfile.mkdtemp(prefix="harness-loop-"))
    (root / "data").mkdir()
    for split, n, tag in (("test", 60, "#"), ("train", 30, "train #")):
        rows = ["text,category"] + [
            f'"{Q[LABELS[i % 3]].format(tag=tag, i=i)}",{LABELS[i % 3]}' for i in range(n)
        ]
        (root / "data" / f"{split}.csv").write_text("\n".join(rows) + "\n")
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-test-not-a-real-key",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlruns/mlflow.db",
    }

    def harness(*args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "harness.cli", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        text = (proc.stdout + proc.stderr).rstrip().replace(server.url, "http://127.0.0.1:PORT/v1")
        out.append(f"$ harness {' '.join(args)}\n{text}\n(exit {proc.returncode})\n")
        print(out[-1])

    try:
        (root / "suite.yaml").write_text(SUITE.format(url=server.url, epochs=1))
        harness("run", "suite.yaml", "--variant", "zero-shot")
        harness("finetune", "suite.yaml", "--poll-interval", "0")
        harness("run", "suite.yaml")
        # Second iteration: more epochs (a new training setting is a new job).
        (root / "suite.yaml").write_text(SUITE.format(url=server.url, epochs=3))
        harness("finetune", "suite.yaml", "--poll-interval", "0")
        harness("run", "suite.yaml")
        harness("ledger", "suite.yaml")
    finally:
        server.stop()
    if "--docs" in sys.argv:
        suite = SUITE.format(url="http://127.0.0.1:PORT/v1", epochs=1)
        block = f"{START}\n```yaml\n{suite}```\n\n```console\n" + "\n".join(out) + "```\n" + END
        text = PAGE.read_text(encoding="utf-8")
        head, rest = text.split(START, 1)
        PAGE.write_text(head + block + rest.split(END, 1)[1], encoding="utf-8")


if __name__ == "__main__":
    main()
