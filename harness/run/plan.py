"""What `harness run` will send: the selected variants, one rendered call per (variant, example,
repeat), and the checks that must pass before the first call."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from harness.data.dataset import Example
from harness.errors import SuiteError
from harness.prompt.templates import FewShotSelector, render_messages, response_format_for
from harness.retrieve import build_retriever
from harness.suite.kinds import KINDS
from harness.types import CallSpec


@dataclass
class Job:
    variant: str
    example: Example
    repeat: int
    spec: CallSpec
    retrieved: list[dict] | None = None
    key: str | None = None


def select_variants(suite, names) -> list:
    if not names:
        return list(suite.variants)
    known = [v.name for v in suite.variants]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SuiteError(
            f"--variant: unknown variant {unknown[0]!r} — choose from {', '.join(known)}"
        )
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    # A guarded variant is judged against its hypothesis's baseline: without it the run would
    # spend money and log a run that cannot reach a verdict.
    for h in suite.hypotheses():
        if h.candidate in seen and h.baseline not in seen:
            raise SuiteError(
                f"--variant {h.candidate}: the guard judges it against the baseline "
                f"{h.baseline!r}, which is not selected — add --variant {h.baseline} "
                "(or run without --variant)"
            )
    return [suite.variant(n) for n in seen]


def check_same_data(run, dataset) -> None:
    before = run.meta.get("data_hashes") or {}
    changed = [p for p, h in dataset.hashes.items() if before.get(p) not in (None, h)]
    if changed:
        raise SuiteError(
            f"--resume: {changed[0]} changed since run {run.run_id} started — "
            "start a new run (without --resume) to evaluate the new data"
        )


def build_jobs(suite, dataset, variants, *, runs_dir="runs") -> list[Job]:
    """One call per (variant, example, repeat), rendered and ready to send."""
    jobs: list[Job] = []
    inputs = suite.spec.data.inputs
    for v in variants:
        selector = FewShotSelector(dataset.train, v.few_shot, inputs) if v.few_shot else None
        response_format = response_format_for(v, suite.output_schema)
        retrieved_by_id: dict[str, list[dict]] = {}
        if KINDS[v.kind].retrieves:
            retrieved_by_id = build_retriever(suite, v, runs_dir=runs_dir).retrieve_all(
                dataset.test
            )
        for ex in dataset.test:
            shots = selector.select(ex) if selector else ()
            context = retrieved_by_id.get(ex.id) if KINDS[v.kind].retrieves else None
            messages = render_messages(v, ex, examples=shots, context=context)
            retrieved = (
                [
                    {"id": c.get("id"), "source": c.get("source"), "score": c.get("score")}
                    for c in context
                ]
                if context is not None
                else None
            )
            for r in range(v.repeats):
                spec = CallSpec(
                    model=v.model,
                    messages=messages,
                    params=dict(v.params),
                    api_base=v.api_base,
                    response_format=response_format,
                    timeout=v.timeout,
                    repeat=r,
                    pricing=v.pricing,
                    rate_limit_key=v.name,
                )
                jobs.append(
                    Job(variant=v.name, example=ex, repeat=r, spec=spec, retrieved=retrieved)
                )
    return jobs


def rate_limits(variants) -> dict[str, Any]:
    """Each variant's rpm/tpm budget, keyed as CallSpec.rate_limit_key (the variant's name)."""
    return {v.name: v.rate_limit for v in variants if v.rate_limit}


def resume_command(suite_path, run_id: str, runs_dir) -> str:
    cmd = ["harness", "run", str(suite_path), "--resume", run_id]
    if str(runs_dir) != "runs":
        cmd += ["--runs-dir", str(runs_dir)]
    return shlex.join(cmd)
