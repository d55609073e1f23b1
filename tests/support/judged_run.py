"""A real `harness run` of a generation suite with an LLM judge and pairwise preference, against
the scripted OpenAI-compatible server, for the report and tracking tests.

The scripted judge: the primary judge passes replies starting with "cand"; the second judge
(openai/judge2) also passes base's reply to ex1 (so the two disagree once); cand's reply to ex2
gets an answer that is not JSON (a judge error: unscored). The preference judge always picks cand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from openai_server import FakeOpenAI

N = 6
PRICING = "{input_per_1m: 1.0, output_per_1m: 2.0}"


def answer(messages, body) -> str:
    text = messages[-1]["content"]
    if "[RESPONSE A]" in text:
        a = re.search(r"\[RESPONSE A\]\n(.*?)\n\n\[RESPONSE B\]", text, re.S).group(1)
        return json.dumps(
            {"winner": "A" if a.startswith("cand") else "B", "reason": "cand reads better"}
        )
    if "[RESPONSE]" in text:
        response = text.split("[RESPONSE]\n", 1)[1]
        if response.startswith("cand reply for ex2"):
            return "looks fine to me"  # not JSON: a judge error
        passed = response.startswith("cand")
        if body.get("model") == "judge2" and response.startswith("base reply for ex1"):
            passed = True
        return json.dumps({"score": int(passed), "reason": f"verdict on {response[:14]}"})
    system = messages[0]["content"]
    ex = re.search(r"draft number (\d+)", text).group(1)
    return f"{'cand' if 'STYLE-CAND' in system else 'base'} reply for ex{ex}"


def write_gen_data(root: Path, n: int) -> None:
    """data/test.jsonl: n drafts ex0.. ("draft number i") with a reference reply each."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    rows = [
        {"id": f"ex{i}", "draft": f"draft number {i}", "reference": f"Hi there, reply {i}."}
        for i in range(n)
    ]
    (data / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def write_suite(root: Path, api_base: str) -> Path:
    write_gen_data(root, N)
    path = root / "suite.yaml"
    path.write_text(
        f"""name: gen-suite
task: generation
data: {{test: data/test.jsonl, id: id, input: draft, target: reference}}
metrics:
  - judge: {{model: openai/judge, api_base: {api_base}, second_model: openai/judge2,
      rubric: Starts with the house greeting, scale: pass_fail, pricing: {PRICING}}}
  - preference: {{model: openai/judge, api_base: {api_base}, rubric: 'Which is nicer?',
      pricing: {PRICING}}}
defaults:
  model: openai/fake-model
  api_base: {api_base}
  params: {{temperature: 0, max_tokens: 32}}
  pricing: {{input_per_1m: 0.5, output_per_1m: 1.5}}
  timeout: 5
  user: "Rewrite: {{{{ draft }}}}"
variants:
  - name: base
    system: STYLE-BASE
  - name: cand
    system: STYLE-CAND
baseline: base
""",
        encoding="utf-8",
    )
    return path


def judged_run(root: Path, tracking_uri: str):
    """Run the suite (no worker processes) and return the RunOutcome (report and MLflow done)."""
    from harness.run.pipeline import run_suite

    with FakeOpenAI(answer) as server:
        suite = write_suite(root, server.url)
        return run_suite(
            suite, runs_dir=root / "runs", workers=0, tracking_uri=tracking_uri, no_cache=True
        )
