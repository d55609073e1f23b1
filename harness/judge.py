"""LLM-as-judge and pairwise preference for generation tasks (style, tone: no label to compare).

Suite entries (in `metrics:`):

    - judge: {model: openai/gpt-4o-mini, rubric: "...", scale: 1-5, repeats: 2, second_model: ...}
    - preference: {model: openai/gpt-4o-mini, rubric: "..."}

Optional keys of both: `api_base`, `params` (default temperature 0, or 0.7 when `repeats` >= 2 so
repeated judgements can disagree), `pricing` {input_per_1m, output_per_1m}, `timeout`.

How the numbers are made (after the variants ran; `judge_records`):
- `judge`: the judge model sees the input, the output, the reference (when the data has one) and
  the rubric, and answers JSON {score, reason} (response_format json_schema). The record's score
  is the mean of the judge's samples, as a fraction: pass_fail 0/1; 1-5 mapped to (s - 1) / 4.
- `preference`: each variant output against the baseline's output on the same example (same
  repeat), asked twice with the order swapped; each order is a vote (win 1, tie 0.5, loss 0) and
  the example's score is their mean, so a split decision is a tie (0.5) and a judge that always
  picks the first answer shown scores exactly 0.5. The metric is the win rate (ties half). The
  baseline scores 0.5 against itself, so the summary's paired delta (variant - baseline) IS
  win rate - 0.5, with a paired bootstrap CI over examples: a guard `metric: preference,
  test: superiority, margin: 0.1` means "preferred over the baseline on >= 60%".
- A variant error (no output) scores 0 (errors count as wrong): in `preference` it loses to the
  baseline's answer and a baseline error loses to the variant's; the same answer as the baseline
  is a tie without a judge call. A *judge* error (no valid answer after retries) scores nothing:
  the record is left out of the metric, never counted as a pass, and the errors are counted in
  summary["judge"]["errors"] (and per variant as "unscored").
- Agreement: with `repeats` >= 2 (sample 0 vs sample 1) or `second_model` (primary sample 0 vs the
  second model's), Cohen's kappa (scikit-learn; quadratic weights on the 1-5 scale).
- Position bias (preference): share of pairs where the judge picked the same position in both
  orders; high means the judge follows the order shown, and the swap made those ties.
- Style consistency (variant `repeats` >= 2): share of examples whose samples the judge rates
  within one point of each other (pass_fail: the same verdict).

Judgements are appended to results/<variant>.judge.jsonl as they finish, keyed by a hash of what
was judged, so a resumed run never re-judges (failed judgements are asked again); the response
cache covers it too. Judge cost is
reported in summary["judge"], apart from the variants' cost.

Light at import (numpy only): suite validation imports this module to register the metrics.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import metrics as M

SCALES = ("pass_fail", "1-5")
KINDS = ("judge", "preference")
_KEYS = {
    "judge": {"model", "rubric", "scale", "repeats", "second_model"},
    "preference": {"model", "rubric"},
}
_COMMON = {"api_base", "params", "pricing", "timeout"}


@dataclass(frozen=True)
class JudgeConfig:
    kind: str  # judge | preference
    model: str
    rubric: str
    scale: str = "pass_fail"
    repeats: int = 1
    second_model: str | None = None
    api_base: str | None = None
    params: dict = field(default_factory=dict)
    pricing: dict | None = None
    timeout: float = 60.0

    @property
    def models(self) -> list[str]:
        return [self.model] + ([self.second_model] if self.second_model else [])


# ---------------------------------------------------------------- configuration


def check_args(name: str, args: dict, spec: Any, fail, key: tuple) -> None:
    """Validate a `judge` / `preference` entry (called by metrics.validate_metrics)."""
    example = (
        "`- judge: {model: openai/gpt-4o-mini, rubric: 'Is it polite?', scale: pass_fail}`"
        if name == "judge"
        else "`- preference: {model: openai/gpt-4o-mini, rubric: 'Which reply is friendlier?'}`"
    )
    unknown = sorted(set(args) - _KEYS[name] - _COMMON)
    if unknown:
        allowed = ", ".join(sorted(_KEYS[name] | _COMMON))
        fail(f"unknown option(s) {unknown} for {name} — allowed: {allowed}", key)
    for req in ("model", "rubric"):
        if not isinstance(args.get(req), str) or not args.get(req, "").strip():
            fail(f"{name} needs `{req}:` — write {example}", key)
    if name == "judge":
        if str(args.get("scale", "pass_fail")) not in SCALES:
            fail(f"judge scale must be pass_fail or 1-5 (got {args.get('scale')!r})", key)
        rep = args.get("repeats", 1)
        if not isinstance(rep, int) or isinstance(rep, bool) or rep < 1:
            fail(f"judge repeats must be a whole number >= 1 (got {rep!r})", key)
    if name == "preference" and len(spec.variants) < 2:
        fail("preference compares each variant with the baseline — add a second variant", key)
    pricing = args.get("pricing")
    if pricing is not None and (
        not isinstance(pricing, dict) or set(pricing) != {"input_per_1m", "output_per_1m"}
    ):
        fail(f"{name} pricing must be {{input_per_1m: ..., output_per_1m: ...}}", key)
    if args.get("params") is not None and not isinstance(args.get("params"), dict):
        fail(f"{name} params must be a mapping, e.g. {{temperature: 0}}", key)


def configs(suite: Any) -> list[JudgeConfig]:
    """The judge/preference entries of a loaded suite (already validated)."""
    out = []
    for entry in suite.spec.metrics:
        name, args = M.entry_name(entry)
        if name not in KINDS:
            continue
        repeats = int(args.get("repeats", 1)) if name == "judge" else 1
        params = {"temperature": 0 if repeats == 1 else 0.7, "max_tokens": 256}
        params.update(args.get("params") or {})
        out.append(
            JudgeConfig(
                kind=name,
                model=args["model"],
                rubric=args["rubric"].strip(),
                scale=str(args.get("scale", "pass_fail")) if name == "judge" else "pass_fail",
                repeats=repeats,
                second_model=args.get("second_model") if name == "judge" else None,
                api_base=args.get("api_base"),
                params=params,
                pricing=args.get("pricing"),
                timeout=float(args.get("timeout", 60.0)),
            )
        )
    return out


def wants_judge(suite: Any) -> bool:
    from harness.similarity import embedding_config

    return bool(configs(suite)) or embedding_config(suite) is not None


# ---------------------------------------------------------------- prompts and answers


def score_format(scale: str, model: str = "") -> dict:
    """response_format asking for {score, reason} on the scale (llama.cpp turns it into a grammar)."""
    values = [0, 1] if scale == "pass_fail" else [1, 2, 3, 4, 5]
    return _json_schema(
        "judgement",
        {"score": {"type": "integer", "enum": values}, "reason": _reason_schema(model)},
        ["score", "reason"],
    )


def preference_format(model: str = "") -> dict:
    return _json_schema(
        "preference",
        {"winner": {"type": "string", "enum": ["A", "B", "tie"]}, "reason": _reason_schema(model)},
        ["winner", "reason"],
    )


def _reason_schema(model: str) -> dict:
    # The local model writes the (alphabetically first) reason until max_tokens runs out and never
    # reaches the score; a length cap in its grammar stops that. Providers' strict structured
    # outputs may reject maxLength, so only local models get it.
    if model.startswith("local/"):
        return {"type": "string", "maxLength": 160}
    return {"type": "string"}


def _json_schema(name: str, props: dict, required: list[str]) -> dict:
    schema = {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


def _inputs_text(example: Any) -> str:
    inputs = example.inputs or {}
    if len(inputs) == 1:
        return str(next(iter(inputs.values())))
    return "\n".join(f"{k}: {v}" for k, v in inputs.items())


def _reference_block(example: Any) -> str:
    t = getattr(example, "target", None)
    return "" if t in (None, "") else f"\n\n[REFERENCE ANSWER]\n{t}"


def judge_messages(cfg: JudgeConfig, example: Any, output: str) -> list[dict]:
    scale = (
        "score 1 if the response meets the rubric, 0 if it does not"
        if cfg.scale == "pass_fail"
        else "score from 1 (does not meet the rubric at all) to 5 (meets it fully)"
    )
    system = (
        "You are a strict evaluator. Grade the RESPONSE against the RUBRIC only. "
        f'Answer only JSON {{"score": ..., "reason": "one sentence"}}: {scale}.'
    )
    user = (
        f"[RUBRIC]\n{cfg.rubric}\n\n[INPUT]\n{_inputs_text(example)}"
        f"{_reference_block(example)}\n\n[RESPONSE]\n{output}"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def preference_messages(cfg: JudgeConfig, example: Any, first: str, second: str) -> list[dict]:
    system = (
        "You compare two responses to the same input against the RUBRIC. "
        'Answer only JSON {"winner": "A" | "B" | "tie", "reason": "one sentence"}.'
    )
    user = (
        f"[RUBRIC]\n{cfg.rubric}\n\n[INPUT]\n{_inputs_text(example)}"
        f"{_reference_block(example)}\n\n[RESPONSE A]\n{first}\n\n[RESPONSE B]\n{second}"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_score(text: str | None, scale: str) -> tuple[int, str]:
    """(score, reason) from the judge's JSON; ValueError with the reason when it is not valid."""
    obj = _json_object(text)
    score = obj.get("score")
    allowed = (0, 1) if scale == "pass_fail" else (1, 2, 3, 4, 5)
    if isinstance(score, str) and score.strip().lower() in ("pass", "fail"):
        score = int(score.strip().lower() == "pass")
    if isinstance(score, float) and score.is_integer():
        score = int(score)
    if isinstance(score, bool) or score not in allowed:
        raise ValueError(f"judge_invalid: score {score!r} is not one of {list(allowed)}")
    return int(score), str(obj.get("reason", ""))[:300]


def parse_winner(text: str | None) -> tuple[str, str]:
    """("A" | "B" | "tie", reason); ValueError when the answer is not one of them."""
    obj = _json_object(text)
    w = str(obj.get("winner", "")).strip()
    w = {"a": "A", "b": "B", "tie": "tie"}.get(w.lower(), w)
    if w not in ("A", "B", "tie"):
        raise ValueError(f"judge_invalid: winner {obj.get('winner')!r} is not A, B or tie")
    return w, str(obj.get("reason", ""))[:300]


def _json_object(text: str | None) -> dict:
    from harness.scoring import parse_json_lenient

    try:  # small models put raw newlines inside strings: strict=False accepts control characters
        value = json.loads(text or "", strict=False)
    except json.JSONDecodeError:
        value, _ = parse_json_lenient(text or "")
    if not isinstance(value, dict):
        raise ValueError(f"judge_invalid: not a JSON object: {str(text)[:80]!r}")
    return value


def normalized(score: float, scale: str) -> float:
    """A judge score as a fraction (metric values are fractions): 1-5 -> (s - 1) / 4."""
    return float(score) if scale == "pass_fail" else (float(score) - 1.0) / 4.0


def vote(winner: str, variant_side: str) -> float:
    """One order's vote for the variant: 1 win, 0.5 tie, 0 loss."""
    return 0.5 if winner == "tie" else float(winner == variant_side)


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


def _latest(records: list[dict]) -> dict[tuple, dict]:
    """Records by (id, repeat); the last line wins (as harness.metrics.make_table)."""
    return {(r["id"], r.get("repeat", 0)): r for r in records}


def judge_path(run_dir: Path, variant: str) -> Path:
    return Path(run_dir) / "results" / f"{variant}.judge.jsonl"


def _read_done(path: Path) -> dict[str, dict]:
    done: dict[str, dict] = {}
    if path.exists():
        for raw in path.read_text(encoding="utf-8").splitlines():
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:  # a line cut by a crash: judge it again
                continue
            done[line["key"]] = line  # a later line (a retried judgement) wins
    return done


def build_tasks(suite: Any, dataset: Any, records: dict[str, list[dict]]) -> list[_Task]:
    """Every judge call the suite's entries need over the variants' answered records."""
    from harness.engine import CallSpec

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
            latest = _latest(recs)
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
                base = _latest(records[baseline])
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
    from harness import similarity

    cfgs = configs(suite)
    embedding = similarity.embed_records(suite, dataset, records, run_dir)
    if not cfgs:
        return None if embedding is None else {"embedding": embedding}
    from harness.engine import Engine

    run_dir = Path(run_dir)
    tasks = build_tasks(suite, dataset, records)
    done = {v: _read_done(judge_path(run_dir, v)) for v in records}
    # A judgement that failed is asked again on resume (a rate limit may have passed).
    todo = [t for t in tasks if (done[t.variant].get(t.key) or {"error": 1}).get("error")]
    if todo:
        check_judge_credentials(suite)
        cache = None
        if not no_cache:
            from harness.cache import Cache

            cache = Cache(Path(runs_dir) / ".cache.sqlite")
        try:
            engine = Engine(concurrency=concurrency, cache=cache)
            asyncio.run(_call_all(engine, todo, cfgs, run_dir, done))
        except KeyboardInterrupt:
            from harness.runner import RunInterrupted

            raise RunInterrupted(
                f"interrupted while judging — judgements so far are saved in {run_dir}/results/"
                f"*.judge.jsonl; finish with `harness run SUITE --resume {run_dir.name}`"
            ) from None
        finally:
            if cache is not None:
                cache.close()
    lines = _judged_lines(tasks, done, records)
    merge_scores(suite, records, lines)
    section = judge_section(suite, dataset, records, lines)
    if embedding is not None:
        section["embedding"] = embedding
    return section


def merge_judgements(suite: Any, dataset: Any, records: dict[str, list[dict]], run_dir) -> None:
    """Put the judgements and cosines already on disk on the records (in place), as the run had
    them in memory; no call and no summary (report/tracking re-reading a run)."""
    from harness import similarity

    similarity.embed_records(suite, dataset, records, run_dir, offline=True)
    if not configs(suite):
        return
    tasks = build_tasks(suite, dataset, records)
    done = {v: _read_done(judge_path(Path(run_dir), v)) for v in records}
    merge_scores(suite, records, _judged_lines(tasks, done, records))


def _judged_lines(tasks: list[_Task], done: dict, records) -> dict[str, list[dict]]:
    """The judgements on disk for this run's tasks, by variant."""
    return {
        v: [done[v][t.key] for t in tasks if t.variant == v and t.key in done[v]] for v in records
    }


def check_judge_credentials(suite: Any) -> None:
    """Exit 2 naming the judge and the missing variable when a judge model lacks its API key."""
    from harness.engine import check_credentials

    check_credentials([_JudgeAsVariant(c, m) for c in configs(suite) for m in c.models])


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


# ---------------------------------------------------------------- merging and summary


def merge_scores(suite: Any, records: dict[str, list[dict]], lines: dict[str, list[dict]]) -> None:
    """Put the judgements on the variant records (in place) so the metrics can read them."""
    cfgs = {c.kind: c for c in configs(suite)}
    baseline = suite.baseline
    for variant, recs in records.items():
        by_rec: dict[tuple, list[dict]] = {}
        for line in lines.get(variant, []):
            by_rec.setdefault((line["id"], line["repeat"]), []).append(line)
        base = _latest(records.get(baseline, []))
        for r in recs:
            got = by_rec.get((r["id"], r.get("repeat", 0)), [])
            scores = r.setdefault("scores", {})
            reasons = r.setdefault("reasons", {})
            if "judge" in cfgs:
                _merge_judge(cfgs["judge"], r, got, scores, reasons)
            if "preference" in cfgs and baseline in records:
                b = base.get((r["id"], r.get("repeat", 0))) or base.get((r["id"], 0))
                _merge_preference(variant == baseline, r, b, got, scores, reasons)


def _merge_judge(cfg, r, got, scores, reasons) -> None:
    if r.get("error") is not None:
        scores["judge"], reasons["judge"] = 0.0, f"error: {r['error']}"
        return
    mine = [g for g in got if g["kind"] == "judge"]
    primary = sorted(
        (g for g in mine if g["model"] == cfg.model and g.get("error") is None),
        key=lambda g: g["judge_repeat"],
    )
    second = [g for g in mine if g["model"] == cfg.second_model and g.get("error") is None]
    r["judge"] = {
        "scale": cfg.scale,
        "samples": [g["score"] for g in primary],
        "second": [g["score"] for g in second] if cfg.second_model else None,
        "errors": sum(1 for g in mine if g.get("error") is not None),
    }
    if primary:  # a judge error leaves the record unscored: never a pass
        scores["judge"] = float(np.mean([normalized(g["score"], cfg.scale) for g in primary]))
        reasons["judge"] = primary[0].get("reason", "")
    else:
        scores.pop("judge", None)
        reasons["judge"] = "judge error: " + "; ".join(
            {str(g.get("error")) for g in mine} or {"not judged"}
        )


def _merge_preference(is_baseline, r, b, got, scores, reasons) -> None:
    if is_baseline:
        scores["preference"] = 0.5  # the baseline against itself: a tie by definition
        return
    if b is None:
        scores.pop("preference", None)
        reasons["preference"] = "the baseline has no answer for this example: not scored"
        return
    if r.get("error") is not None or b.get("error") is not None:
        # An error is a wrong answer: losing to an answer, beating a baseline error.
        mine_err, base_err = r.get("error") is not None, b.get("error") is not None
        scores["preference"] = 0.5 if (mine_err and base_err) else float(base_err)
        reasons["preference"] = "decided by a variant error, without a judge"
        return
    if (r.get("output") or "").strip() == (b.get("output") or "").strip():
        scores["preference"] = 0.5
        reasons["preference"] = "the same answer as the baseline: a tie"
        return
    votes = {g["order"]: g for g in got if g["kind"] == "preference" and g.get("error") is None}
    if set(votes) != {"AB", "BA"}:
        scores.pop("preference", None)
        reasons["preference"] = "judge error in one or both orders: not scored"
        return
    ab, ba = vote(votes["AB"]["winner"], "A"), vote(votes["BA"]["winner"], "B")
    scores["preference"] = (ab + ba) / 2
    reasons["preference"] = f"variant shown first: {_word(ab)}; shown second: {_word(ba)}"


def _word(v: float) -> str:
    return {1.0: "preferred", 0.5: "tie", 0.0: "not preferred"}[v]


def judge_section(suite, dataset, records, lines) -> dict:
    """summary["judge"]: cost, calls, errors (apart from the variants'), per-variant metrics and
    agreement."""

    all_lines = [line for ls in lines.values() for line in ls]
    costs = [line.get("cost_usd") for line in all_lines if line.get("error") is None]
    errors = [line for line in all_lines if line.get("error") is not None]
    by_reason: dict[str, int] = {}
    for line in errors:
        kind = str(line["error"]).split(":", 1)[0]
        by_reason[kind] = by_reason.get(kind, 0) + 1
    targets = {e.id: e.target for e in dataset.test}
    per_variant: dict[str, dict] = {}
    for variant, recs in records.items():
        table = M.make_table(recs, targets)
        out: dict[str, Any] = {}
        for name in ("judge", "preference", "judge_agreement", "style_consistency"):
            if not _declared(suite, name):
                continue
            out[name] = _value_ci(M.compute(name, table))
        if _declared(suite, "judge"):
            out["agreement"] = agreement(table)
            out["unscored"] = sum(
                1 for r in table.records if r.get("error") is None and "judge" not in r["scores"]
            )
        if _declared(suite, "preference") and variant != suite.baseline:
            prefs = [r["scores"].get("preference") for r in table.records]
            out["wins"] = sum(1 for p in prefs if p == 1.0)
            out["losses"] = sum(1 for p in prefs if p == 0.0)
            out["ties_or_split"] = sum(1 for p in prefs if p is not None and 0 < p < 1)
            out["unscored_preference"] = sum(1 for p in prefs if p is None)
            out["position_bias"] = position_bias(lines.get(variant, []))
        per_variant[variant] = out
    return {
        "models": sorted({m for c in configs(suite) for m in c.models}),
        "calls": len(all_lines),
        "cached_calls": sum(1 for line in all_lines if line.get("cached")),
        "errors": len(errors),
        "errors_by_reason": by_reason,
        "cost_usd": None if any(c is None for c in costs) else float(sum(costs)),
        "tokens_in": int(sum(line.get("tokens_in") or 0 for line in all_lines)),
        "tokens_out": int(sum(line.get("tokens_out") or 0 for line in all_lines)),
        "variants": per_variant,
    }


def _declared(suite, name: str) -> bool:
    names = [M.entry_name(e)[0] for e in suite.spec.metrics]
    if name == "judge_agreement":
        return "judge" in names and name in names
    return name in names


# ---------------------------------------------------------------- agreement


def position_bias(lines: list[dict]) -> float | None:
    """Share of judged pairs where the judge picked the same position (A or B) in both orders:
    its verdict followed the order shown, not the answers (the swap turns those into ties)."""
    pairs: dict[tuple, dict[str, str]] = {}
    for line in lines:
        if line.get("kind") == "preference" and line.get("error") is None:
            pairs.setdefault((line["id"], line["repeat"]), {})[line["order"]] = line["winner"]
    both = [p for p in pairs.values() if set(p) == {"AB", "BA"}]
    if not both:
        return None
    return sum(1 for p in both if p["AB"] == p["BA"] != "tie") / len(both)


def kappa(a: list[int], b: list[int], scale: str) -> float | None:
    """Cohen's kappa (scikit-learn); quadratic weights on 1-5. None when undefined (< 2 pairs,
    or both raters constant on the same value)."""
    if len(a) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    if len(set(a) | set(b)) < 2:
        return None  # perfect agreement on one value: kappa is 0/0
    k = cohen_kappa_score(a, b, weights=None if scale == "pass_fail" else "quadratic")
    return None if np.isnan(k) else float(k)


def agreement(table: M.Table) -> dict:
    """{"repeats": kappa of sample 0 vs 1, "second_model": kappa of primary vs second, n pairs}."""
    rep_a, rep_b, sec_a, sec_b = [], [], [], []
    scale = "pass_fail"
    for r in table.records:
        j = r.get("judge")
        if not j:
            continue
        scale = j["scale"]
        s = j["samples"]
        if len(s) >= 2:
            rep_a.append(s[0])
            rep_b.append(s[1])
        if s and j.get("second"):
            sec_a.append(s[0])
            sec_b.append(j["second"][0])
    return {
        "repeats": kappa(rep_a, rep_b, scale) if rep_a else None,
        "repeats_pairs": len(rep_a),
        "second_model": kappa(sec_a, sec_b, scale) if sec_a else None,
        "second_model_pairs": len(sec_a),
    }


# ---------------------------------------------------------------- metrics


@M.metric("judge", tasks=(M.GENERATION,))
def judge_metric(table: M.Table, **_: Any) -> M.Decomposed | None:
    """Mean judge score as a fraction (pass_fail: pass rate; 1-5: (s-1)/4); judge errors excluded."""
    return M.mean_score(table, "judge")


@M.metric("preference", tasks=(M.GENERATION,))
def preference_metric(table: M.Table, **_: Any) -> M.Decomposed | None:
    """Win rate against the baseline's output, both orders, ties half (baseline: 0.5)."""
    return M.mean_score(table, "preference")


@M.metric("judge_agreement", quality=False, tasks=(M.GENERATION,))
def judge_agreement(table: M.Table, **_: Any) -> float | None:
    """Cohen's kappa between judge samples (repeats), else between the two judge models."""
    a = agreement(table)
    return a["repeats"] if a["repeats"] is not None else a["second_model"]


@M.metric("style_consistency", tasks=(M.GENERATION,))
def style_consistency(table: M.Table, **_: Any) -> M.Decomposed | None:
    """Share of examples (>= 2 variant samples) whose samples the judge rates within one point
    of each other (pass_fail: all the same verdict)."""
    per_ex: dict[int, list[float]] = {}
    scale = None
    for e, r in zip(table.ex.tolist(), table.records, strict=True):
        j = r.get("judge")
        if j and j["samples"]:
            scale = j["scale"]
            per_ex.setdefault(e, []).append(float(np.mean(j["samples"])))
        elif r.get("error") is not None:
            per_ex.setdefault(e, []).append(float("nan"))  # an error breaks consistency
    stats = np.zeros((table.n_examples, 2))
    tol = 0.0 if scale == "pass_fail" else 1.0
    for e, vals in per_ex.items():
        if len(vals) >= 2:
            v = np.array(vals)
            ok = not np.isnan(v).any() and (v.max() - v.min()) <= tol + 1e-9
            stats[e] = (float(ok), 1.0)
    if stats[:, 1].sum() == 0:
        return None
    return M.Decomposed(stats, M.ratio)


# ---------------------------------------------------------------- summary.json


# Metrics whose scores this stage puts on the records (the summary may not compute them yet).
_STAGE_METRICS = ("judge", "preference", "style_consistency", "embedding_cosine")


def _value_ci(res) -> dict:
    from harness import stats as S

    value = M.value_of(res)
    lo = hi = None
    if isinstance(res, M.Decomposed) and value is not None:
        lo, hi = S.bootstrap_ci(res.stats, res.combine)
    return {"value": value, "ci_low": lo, "ci_high": hi}


def add_to_summary(summary: dict, section: dict, suite: Any, dataset: Any, records) -> dict:
    """summary["judge"] = section, plus each variant's judge metrics and paired deltas vs the
    baseline (kept when harness.summary computed them already), so the guard can use them."""
    from harness import stats as S

    summary["judge"] = section
    targets = {e.id: e.target for e in dataset.test}
    guard = suite.spec.guard
    baseline = suite.baseline
    names = [n for n in _STAGE_METRICS if _declared(suite, n)]
    for variant, out in (summary.get("variants") or {}).items():
        metrics = out.setdefault("metrics", {})
        if variant in records:
            table = M.make_table(records[variant], targets)
            for name in names:
                if name not in metrics:
                    metrics[name] = _value_ci(M.compute(name, table))
        if variant == baseline or baseline not in records or variant not in records:
            continue
        common = sorted(
            {r["id"] for r in records[baseline]}
            & {r["id"] for r in records[variant]}
            & set(targets)
        )
        ta = M.make_table(records[baseline], targets, ids=common)
        tb = M.make_table(records[variant], targets, ids=common)
        delta = out.setdefault("delta", {})
        for name in names:
            if name in delta:
                continue
            ra, rb = M.compute(name, ta), M.compute(name, tb)
            if not (isinstance(ra, M.Decomposed) and isinstance(rb, M.Decomposed)):
                delta[name] = {"value": None, "ci_low": None, "ci_high": None, "p_value": None}
                continue
            conf = guard.confidence if guard and guard.metric == name else 0.95
            d = S.paired_bootstrap(ra.stats, ra.combine, rb.stats, rb.combine, confidence=conf)
            d.update(p_method="bootstrap", confidence=conf)
            delta[name] = d
    return summary
