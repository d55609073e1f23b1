"""The post-call stages, run in order after the variants' calls: embedding cosine, then the LLM
judge. Each merges its per-record scores into the records (the pipeline persists them, see
harness.rundir.writer.write_stage_scores) and reports apart from the variants' cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.score.judge import judge_records
from harness.score.judge.config import configs
from harness.score.similarity import embed_records, embedding_config


def run_post_call_stages(
    suite: Any,
    dataset: Any,
    records: dict[str, list[dict]],
    run_dir: str | Path,
    *,
    concurrency: int = 8,
    no_cache: bool = False,
    runs_dir: str | Path = "runs",
    say=None,
) -> dict | None:
    """summary["judge"] (with "embedding" when that stage ran), or None when no stage applies.
    `say(text)` hears of each stage as it starts."""
    say = say or (lambda text: None)
    if embedding_config(suite) is not None:
        say("embedding the answers for embedding_cosine…")
    embedding = embed_records(suite, dataset, records, run_dir)
    cfgs = configs(suite)
    if cfgs:
        say(f"judging the answers ({', '.join(sorted({c.model for c in cfgs}))})…")
    section = judge_records(
        suite,
        dataset,
        records,
        run_dir,
        concurrency=concurrency,
        no_cache=no_cache,
        runs_dir=runs_dir,
    )
    if section is None:
        return None if embedding is None else {"embedding": embedding}
    if embedding is not None:
        section["embedding"] = embedding
    return section
