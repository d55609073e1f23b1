"""Shared fixtures: the OpenAI-compatible test server and small suites pointing at it."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

# Shared helpers (`from openai_server import FakeOpenAI`, `from conftest import write_suite`).
sys.path.insert(0, str(Path(__file__).parent / "support"))
sys.path.insert(0, str(Path(__file__).parent))

from openai_server import FakeOpenAI  # noqa: E402

# A shell starts background jobs with SIGINT ignored, and a child keeps an ignored signal across
# exec: the Ctrl-C tests would then interrupt nothing. With the default handler here, every
# harness subprocess gets Ctrl-C as a user's terminal delivers it.
signal.signal(signal.SIGINT, signal.default_int_handler)

FAKE_KEY = "sk-test-FAKE-0123456789abcdef"
LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]


# Off a terminal `harness run` prints a plain progress line every minute: a slow test's exact
# output must not depend on how long it took (tests/run/test_progress.py turns it on).
os.environ.setdefault("HARNESS_PROGRESS_EVERY_S", "0")


@pytest.fixture(autouse=True, scope="session")
def _mlflow_store_in_tmp(tmp_path_factory):
    """`harness run` logs to MLflow; tests that don't pass tracking_uri log to a temp store,
    never to ./mlruns of the working tree."""
    import os

    before = os.environ.get("MLFLOW_TRACKING_URI")
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{db}"
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture
def fake_key(monkeypatch):
    """A fake OpenAI key in the environment (tests grep runs/ for it)."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    return FAKE_KEY


@pytest.fixture
def openai_server():
    """Factory: `openai_server(answer, latency=..., rate_429=...)` starts a FakeOpenAI on 127.0.0.1."""
    servers: list[FakeOpenAI] = []

    def start(answer=None, **kwargs) -> FakeOpenAI:
        server = FakeOpenAI(answer if answer is not None else intent_answer, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


def intent_answer(messages, body) -> str:
    """Answers the intent whose keyword appears in the question (a deterministic 'model')."""
    # Only the asked question counts, not the few-shot examples before it.
    text = messages[-1]["content"].rsplit("Question:", 1)[-1].lower()
    if "card" in text and ("arrive" in text or "arrival" in text):
        return json.dumps({"intent": "card_arrival"})
    if "lost" in text or "stolen" in text:
        return json.dumps({"intent": "lost_or_stolen_card"})
    return json.dumps({"intent": "exchange_rate"})


QUESTIONS = {
    "card_arrival": "When will my card arrive? (#{i})",
    "lost_or_stolen_card": "I lost my card, help (#{i})",
    "exchange_rate": "What exchange rate do you use? (#{i})",
}


def write_suite(
    root: Path,
    api_base: str,
    *,
    n: int = 12,
    variants: str | None = None,
    extra: str = "",
    model: str = "openai/fake-model",
) -> Path:
    """A classification suite of `n` examples whose variants call the test server."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    rows = ["text,category"]
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        rows.append(f'"{QUESTIONS[label].format(i=i)}",{label}')
    (data / "test.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (data / "train.csv").write_text(
        "\n".join(rows[:1] + [r.replace("(#", "(train #") for r in rows[1:7]]) + "\n",
        encoding="utf-8",
    )
    if variants is None:
        variants = """
  - name: zero-shot
  - name: few-shot
    few_shot: {k: 2, select: random, seed: 1}
    user: |-
      {% for ex in examples %}Q: {{ ex.text }} A: {{ ex.target }}
      {% endfor %}Question: {{ text }}
"""
    suite = root / "suite.yaml"
    suite.write_text(
        f"""name: test-suite
task: classification
data:
  test: data/test.csv
  train: data/train.csv
  input: text
  target: category
labels: from-data
metrics: [accuracy]
defaults:
  model: {model}
  api_base: {api_base}
  params: {{temperature: 0, max_tokens: 16}}
  timeout: 5
  system: 'Answer as JSON {{"intent": ...}}.'
  user: "Question: {{{{ text }}}}"
variants:{variants}{extra}
""",
        encoding="utf-8",
    )
    return suite


def keyword_rag_suite(root: Path, api_base: str) -> Path:
    """write_suite with a rag variant whose `retrieval.method` is `keyword` (not a built-in: the
    tests that register it, in-process or as a plugin, use this) over two one-line documents."""
    (root / "docs").mkdir()
    (root / "docs" / "cards.md").write_text("When will my card arrive: within five days.")
    (root / "docs" / "rates.md").write_text("Our exchange rate is the market rate.")
    rag = (
        "\n  - name: zero-shot\n  - name: rag\n    kind: rag\n"
        "    retrieval: {corpus: 'docs/*.md', method: keyword, k: 1}\n"
        "    user: \"{{ context[0].text if context else '' }} Question: {{ text }}\"\n"
    )
    return write_suite(root, api_base, variants=rag)


@pytest.fixture
def isolated_cwd(tmp_path, monkeypatch):
    """Run from tmp_path with a private MLflow store, so `harness run` writes nothing in the repo."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    return tmp_path
