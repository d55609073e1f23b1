"""The judge stage: after the variants' calls, ask the judge what is not judged yet.

Every judgement is appended to results/<variant>.judge.jsonl as it finishes, keyed by a hash of
what was judged, so a resume asks only what is missing or failed."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness._util.jsonl import read_lines
from harness.calls._litellm import provider_facts
from harness.calls.cache import Cache
from harness.calls.engine import CallSpec, Engine, check_credentials
from harness.errors import RunInterrupted
from harness.rundir.paths import stage_path
from harness.score.judge.config import JudgeConfig, configs
from harness.score.judge.merge import judge_section, latest_by_key, merge_scores
from harness.score.judge.prompts import (
    judge_messages,
    parse_score,
    parse_winner,
    preference_format,
    preference_messages,
    score_format,
)

# ---------------------------------------------------------------- the judge stage


@dataclass
class _Task:
    variant: str
    key: str  # stable hash of what is judged (resume / dedupe)
    line: dict  # what goes into the .judge.jsonl (scores added when done)
    spec: Any = None  # engine.CallSpec


def _hash(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def judge_path(run_dir: Path, variant: str) -> Path:
    return stage_path(run_dir, variant, "judge")


def _read_done(path: Path) -> dict[str, dict]:
    # A line cut by a crash is judged again; a later line (a retried judgement) wins.
    return {line["key"]: line for line in read_lines(path, on_torn="skip")}


def build_tasks(suite: Any, dataset: Any, records: dict[str, list[dict]]) -> list[_Task]:
    """Every judge call the suite's entries need over the variants' answered records."""
    examples = {e.id: e for e in dataset.test}
    baseline = suite.baseline
    tasks: list[_Task] = []
    for cfg in configs(suite):

        def spec(messages, rf, repeat, model, cfg=cfg):
            return CallSpec(
                model=model,
                messages=messages,
                params=dict(cfg.params),
                api_base=cfg.api_base,
                response_format=rf,
                timeout=cfg.timeout,
                repeat=repeat,
                pricing=cfg.pricing,
                rate_limit_key=f"judge:{model}",
            )

        for variant, recs in records.items():
            latest = latest_by_key(recs)
            if cfg.kind == "judge":
                for (ex_id, rep), r in sorted(latest.items()):
                    if r.get("error") is not None or ex_id not in examples:
                        continue
                    ex = examples[ex_id]
                    msgs = judge_messages(cfg, ex, r.get("output") or "")
                    for model in cfg.models:
                        for jr in range(cfg.repeats):
                            key = _hash("judge", model, cfg.rubric, cfg.scale, msgs, jr)
                            line = {"key": key, "kind": "judge", "model": model, "id": ex_id}
                            line.update(repeat=rep, judge_repeat=jr, scale=cfg.scale)
                            tasks.append(
                                _Task(
                                    variant,
                                    key,
                                    line,
                                    spec(msgs, score_format(cfg.scale, model), jr, model),
                                )
                            )
            elif variant != baseline and baseline in records:
                base = latest_by_key(records[baseline])
                for (ex_id, rep), r in sorted(latest.items()):
                    b = base.get((ex_id, rep)) or base.get((ex_id, 0))
                    if ex_id not in examples or b is None:
                        continue
                    if r.get("error") is not None or b.get("error") is not None:
                        continue  # decided without a judge (see _merge_preference)
                    ex = examples[ex_id]
                    out, bout = r.get("output") or "", b.get("output") or ""
                    if out.strip() == bout.strip():
                        continue  # the same answer: a tie, no judge needed
                    # Order AB shows the variant first; BA shows it second.
                    for order, (first, second) in (("AB", (out, bout)), ("BA", (bout, out))):
                        msgs = preference_messages(cfg, ex, first, second)
                        key = _hash("preference", cfg.model, cfg.rubric, msgs, order)
                        line = {"key": key, "kind": "preference", "model": cfg.model}
                        line.update(id=ex_id, repeat=rep, order=order)
                        tasks.append(
                            _Task(
                                variant,
                                key,
                                line,
                                spec(msgs, preference_format(cfg.model), 0, cfg.model),
                            )
                        )
    return tasks


def judge_records(
    suite: Any,
    dataset: Any,
    records: dict[str, list[dict]],
    run_dir: str | Path,
    *,
    concurrency: int = 8,
    no_cache: bool = False,
    runs_dir: str | Path = "runs",
) -> dict | None:
    """Run the judge stage: call what is not judged yet, append it to results/<v>.judge.jsonl,
    merge the scores into `records` (in place: scores["judge"], scores["preference"], and the
    raw samples in record["judge"]) and return summary["judge"]. None when the suite has no judge.
    """
    cfgs = configs(suite)
    if not cfgs:
        return None
    run_dir = Path(run_dir)
    tasks = build_tasks(suite, dataset, records)
    done = {v: _read_done(judge_path(run_dir, v)) for v in records}
    # A judgement that failed is asked again on resume (a rate limit may have passed).
    todo = [t for t in tasks if (done[t.variant].get(t.key) or {"error": 1}).get("error")]
    if todo:
        check_judge_credentials(suite)
        cache = None
        if not no_cache:
            cache = Cache(Path(runs_dir) / ".cache.sqlite")
        try:
            engine = Engine(concurrency=concurrency, cache=cache)
            asyncio.run(_call_all(engine, todo, cfgs, run_dir, done))
        except KeyboardInterrupt:
            raise RunInterrupted(
                f"interrupted while judging — judgements so far are saved in {run_dir}/results/"
                f"*.judge.jsonl; finish with `harness run SUITE --resume {run_dir.name}`"
            ) from None
        finally:
            if cache is not None:
                cache.close()
    lines = _judged_lines(tasks, done, records)
    merge_scores(suite, records, lines)
    return judge_section(suite, dataset, records, lines)


def _judged_lines(tasks: list[_Task], done: dict, records) -> dict[str, list[dict]]:
    """The judgements on disk for this run's tasks, by variant."""
    return {
        v: [done[v][t.key] for t in tasks if t.variant == v and t.key in done[v]] for v in records
    }


def check_judge_credentials(suite: Any, facts=provider_facts) -> None:
    """Exit 2 naming the judge and the missing variable when a judge model lacks its API key
    (`facts`: see harness.calls.engine.check_credentials)."""
    check_credentials([_JudgeAsVariant(c, m) for c in configs(suite) for m in c.models], facts)


@dataclass
class _JudgeAsVariant:
    """What engine.check_credentials reads from a variant."""

    cfg: JudgeConfig
    model: str

    @property
    def name(self) -> str:
        return f"{self.cfg.kind} ({self.model})"

    @property
    def api_base(self) -> str | None:
        return self.cfg.api_base


async def _call_all(engine, todo: list[_Task], cfgs, run_dir: Path, done) -> None:
    scale_of = {c.model: c.scale for c in cfgs if c.kind == "judge"}
    files: dict[str, Any] = {}
    bar = _progress(len(todo))
    try:

        async def one(t: _Task) -> None:
            result = await engine.call(t.spec)
            line = dict(t.line)
            line.update(
                cost_usd=result.cost_usd,
                tokens_in=result.tokens_in,
                tokens_out=result.tokens_out,
                cached=result.cached,
                error=result.error,
            )
            if result.error is None:
                try:
                    if t.line["kind"] == "judge":
                        line["score"], line["reason"] = parse_score(
                            result.output, t.line.get("scale", scale_of.get(t.line["model"]))
                        )
                    else:
                        line["winner"], line["reason"] = parse_winner(result.output)
                except ValueError as e:
                    line["error"] = str(e)
                    line["output"] = (result.output or "")[:300]
            done[t.variant][t.key] = line
            f = files.get(t.variant)
            if f is None:
                path = judge_path(run_dir, t.variant)
                path.parent.mkdir(parents=True, exist_ok=True)
                f = files[t.variant] = path.open("a", encoding="utf-8")
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
            f.flush()  # appended as it finishes: a crash loses only in-flight judgements
            if bar is not None:
                bar.advance(bar.task_ids[0])

        await asyncio.gather(*(one(t) for t in todo))
    finally:
        if bar is not None:
            bar.stop()
        for f in files.values():
            f.close()


def _progress(total: int):
    """A 'judging' bar on stderr when it is a terminal (like the variants' progress)."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        "judging", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
    bar.add_task("judging", total=total)
    bar.start()
    return bar
