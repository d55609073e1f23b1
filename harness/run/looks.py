"""`guard.sequential`: the calls sent look by look, and the run stopped once every hypothesis is
decided at a look (harness.decide.rule: the looks' sizes and their shares of α)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from harness.calls.pool import merge_paths
from harness.data.dataset import Dataset
from harness.decide.guard import settled
from harness.decide.rule import look_sizes, spending_levels
from harness.run.execute import PoolSlot, Sent
from harness.run.plan import Job
from harness.rundir.writer import RunDir
from harness.stats.summary import build_summary
from harness.suite import Suite, Variant


def send_in_looks(
    suite: Suite,
    selected: list[Variant],
    pool: PoolSlot,
    dataset: Dataset,
    run: RunDir,
    jobs: list[Job],
    send: Callable[[list[Job]], Sent],
) -> tuple[Sent, Dataset, dict]:
    """`guard.sequential`: send the calls look by look (a fixed, shuffled order of the test
    examples, so a look is never one class of a sorted file) and stop once every hypothesis
    is decided at that look's share of α (harness.decide.rule.spending_levels). Returns
    what was sent, the examples the verdict is on, and summary.json's `sequential`.
    `send(jobs)` sends one look's calls (harness.run.pipeline's send stage)."""
    looks = suite.sequential.looks
    order = sorted(dataset.test, key=lambda e: hashlib.sha256(e.id.encode()).hexdigest())
    sizes = look_sizes(len(order), looks)
    alpha = min((1 - h.confidence) / 2 for h in suite.hypotheses()) if suite.hypotheses() else 0.025
    levels = spending_levels(alpha, looks)
    # One process: each look's calls are few, and a closed worker pool cannot be reused.
    pool.close(now=True)
    pool.pool = None
    total = Sent()
    seen = 0
    for k, size in enumerate(sizes):
        ids = {e.id for e in order[seen:size]}
        look_jobs = [j for j in jobs if j.example.id in ids]
        sent = send(look_jobs)
        total.requests += sent.requests
        total.cache_hits += sent.cache_hits
        merge_paths(total.paths, sent.paths)
        seen = size
        kept = {e.id for e in order[:size]}
        part = replace(dataset, test=[e for e in dataset.test if e.id in kept])
        if k == looks - 1:
            break
        records = {v.name: run.records(v.name) for v in selected}
        summary = build_summary(suite, part, records, [v.name for v in selected], meta={}, notes={})
        if settled(suite, summary, levels[k]):
            break
    skipped = [j for j in jobs if j.example.id not in kept]
    look = {
        "looks": looks,
        "look": k + 1,
        "sizes": sizes,
        "levels": levels,
        "alpha": levels[k],
        "n_examples": len(part.test),
        "calls_skipped": len(skipped),
        "calls_skipped_by_variant": dict(Counter(j.variant for j in skipped)),
        "stopped_early": k + 1 < looks,
    }
    return total, part, look
