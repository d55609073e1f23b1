"""The CLINC-style question as a test-server suite: gpt-4o vs few-shot gpt-4o-mini vs a
fine-tuned mini, three hypotheses in one run (tests/cli/test_hypotheses.py, tests/check/test_plan.py)."""

from __future__ import annotations

import json

from conftest import intent_answer

N = 24


def scripted(messages, body) -> str:
    """gpt-4o is always right; the mini models miss every 4th (few-shot) or 6th (fine-tuned)
    question, answering exchange_rate (never the label of a miss: it is never #0 mod 3 = 2)."""
    right = intent_answer(messages, body)
    i = int(messages[-1]["content"].rsplit("(#", 1)[-1].split(")")[0])
    miss = {"fake-mini": 4, "fake-ft": 6}.get(body["model"])
    if miss and i % miss == 0:
        return json.dumps({"intent": "exchange_rate" if "card" in right else "card_arrival"})
    return right


VARIANTS = """
  - name: gpt-4o
    model: openai/fake-4o
    pricing: {input_per_1m: 2.5, output_per_1m: 10}
  - name: few-shot-mini
    model: openai/fake-mini
    pricing: {input_per_1m: 0.15, output_per_1m: 0.6}
  - name: ft-mini
    kind: fine-tuned
    model: openai/fake-ft
    base_model: openai/fake-mini
    training: {cost_usd: 1200}
    pricing: {input_per_1m: 0.3, output_per_1m: 1.2}
"""
HYPOTHESES = """
baseline: gpt-4o
volume: {monthly_requests: 2000000}
value: {error_cost_usd: 0.40, amortise_months: 12}
guard:
  - {candidate: ft-mini, metric: accuracy, test: non-inferiority, margin: 0.30}
  - {candidate: few-shot-mini, metric: accuracy, test: non-inferiority, margin: 0.30}
  - {candidate: ft-mini, baseline: few-shot-mini, metric: net_monthly_value, test: superiority, margin: 0}
"""
