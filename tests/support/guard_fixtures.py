"""Shared builders for the guard tests: a tiny resolved suite and summaries with chosen deltas."""

from __future__ import annotations

from pathlib import Path

import yaml

from harness.decide.guard import decide
from harness.score.registry import validate_suite
from harness.suite import load_suite

BASE_SUITE = {
    "name": "guarded",
    "task": "classification",
    "data": {"test": "test.csv", "input": "text", "target": "label"},
    "labels": ["a", "b"],
    "metrics": ["accuracy", "macro_f1", "cost_per_1k"],
    "defaults": {"user": "{{ text }}"},
    "variants": [
        {"name": "base", "model": "openai/gpt-4o"},
        {
            "name": "ft",
            "kind": "fine-tuned",
            "model": "openai/ft:gpt-4o-mini:acme::v1",
            "base_model": "openai/gpt-4o-mini",
            "training": {"cost_usd": 40.0},
        },
    ],
    "baseline": "base",
    "guard": {"metric": "macro_f1", "margin": 0.05, "max_iterations": 3, "budget_usd": 500},
    "volume": {"monthly_requests": 1_000_000},
}


_KEEP = object()


def make_suite(tmp_path: Path, guard=_KEEP, **overrides):
    """Write the suite (with overrides merged at top level / into guard) and load it.

    guard: a mapping merged into the base guard, or None for a suite without one."""
    raw = yaml.safe_load(yaml.safe_dump(BASE_SUITE))
    if guard is None:
        del raw["guard"]
    elif guard is not _KEEP:
        raw["guard"] = {**raw["guard"], **guard}
    guard_list = overrides.pop("guard_list", None)
    if guard_list is not None:  # several hypotheses: `guard:` as a list
        raw["guard"] = guard_list
    model = overrides.pop("ft_model", None)
    if model:
        raw["variants"][1]["model"] = model
    raw.update(overrides)
    (tmp_path / "test.csv").write_text("text,label\nhello,a\nbye,b\n")
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return validate_suite(load_suite(path))


def make_summary(
    delta=(0.08, 0.06, 0.10),
    *,
    n=200,
    base_cost=2.0,
    ft_cost=0.2,
    base_errors=0,
    ft_errors=0,
    run_id="run-now",
    metric="macro_f1",
):
    value, lo, hi = delta

    def variant(cost, errors, d=None):
        v = {
            "n_examples": n,
            "n_calls": n,
            "n_errors": errors,
            "error_rate": errors / n,
            "cost_usd": cost,
            "spent_usd": cost,  # no cached answers
            "metrics": {},
        }
        if d:
            v["delta"] = {metric: {"value": d[0], "ci_low": d[1], "ci_high": d[2], "p_value": 0.01}}
        return v

    return {
        "schema_version": 1,
        "suite": "guarded",
        "run_id": run_id,
        "baseline": "base",
        "n_examples": n,
        "variants": {
            "base": variant(base_cost, base_errors),
            "ft": variant(ft_cost, ft_errors, (value, lo, hi)),
        },
    }


def past_run(
    run_id,
    *,
    model="openai/ft:gpt-4o-mini:acme::v0",
    training=40.0,
    eval_cost=0.2,
    delta=0.01,
    verdict="fail",
    hypothesis=None,
):
    hyp = hypothesis or {
        "metric": "macro_f1",
        "test": "superiority",
        "margin": 0.05,
        "confidence": 0.95,
    }
    return {
        "run_id": run_id,
        "start_time": 0,
        "hypothesis": hyp,
        "ledger_entry": {
            "metric": hyp["metric"],
            "variants": {
                "ft": {
                    "model": model,
                    "training_usd": training,
                    "eval_cost_usd": eval_cost,
                    "delta": delta,
                    "verdict": verdict,
                },
                "base": {
                    "model": "openai/gpt-4o",
                    "training_usd": 0.0,
                    "eval_cost_usd": 2.0,
                    "delta": None,
                    "verdict": None,
                },
            },
        },
        "verdicts": {"ft": verdict},
    }


def decided(suite, summary, history=None, **kwargs):
    """`decide`'s Decision applied to the summary, as the pipeline writes summary.json."""
    return decide(suite, summary, history, **kwargs).apply(summary)
