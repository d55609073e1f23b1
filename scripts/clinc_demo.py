"""The README's dollar example: suites/clinc-banking.yaml run against the test server
(tests/support/openai_server.py) with scripted answers — no key, no internet, exact output.

    PYTHONPATH=$PWD python scripts/clinc_demo.py

Scripted quality (deterministic by a hash of model and question): gpt-4o misroutes 2% of the
questions, the fine-tuned mini 5%, the few-shot mini 9%. The numbers show the arithmetic of the
decision, not how these models really do on CLINC150.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from openai_server import FakeOpenAI  # noqa: E402

MISS = {"gpt-4o": 0.02, "ft:gpt-4o-mini-2024-07-18:acme::clinc10": 0.05, "gpt-4o-mini": 0.09}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return run(Path(tmp))


def run(tmp: Path) -> int:
    """The demo run into `tmp` (runs/ and mlflow.db kept there: scripts/screenshots.py)."""
    test = ROOT / "data" / "clinc150-banking" / "test.csv"
    with open(test, newline="", encoding="utf-8") as f:
        truth = {row["text"]: row["intent"] for row in csv.DictReader(f)}
    intents = sorted(set(truth.values()))

    def answer(messages, body) -> str:
        question = messages[-1]["content"].rsplit("Question: ", 1)[-1]
        right = truth.get(question, intents[0])
        h = int(hashlib.sha256(f"{body['model']}|{question}".encode()).hexdigest()[:8], 16)
        if h / 0xFFFFFFFF < MISS.get(body["model"], 0.0):
            right = intents[(intents.index(right) + 1) % len(intents)]
        return json.dumps({"intent": right})

    raw = yaml.safe_load((ROOT / "suites" / "clinc-banking.yaml").read_text(encoding="utf-8"))
    with FakeOpenAI(answer) as server:
        raw["defaults"]["api_base"] = server.url
        for split in ("test", "train"):
            raw["data"][split] = str(ROOT / "data" / "clinc150-banking" / f"{split}.csv")
        suite = Path(tmp) / "clinc-banking.yaml"
        suite.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        env = {
            "OPENAI_API_KEY": "sk-demo-not-a-key",
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
        }
        cmd = [sys.executable, "-m", "harness.cli", "run", str(suite), "--runs-dir", f"{tmp}/runs"]
        return subprocess.run(cmd, env={**os.environ, **env}, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
