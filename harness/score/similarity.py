"""Reference similarity without a judge: chrF (sacrebleu) and ROUGE-L F1 (rouge-score).

Both are sentence-level scores of each output against the example's reference (`data.target`),
as fractions (sacrebleu's chrF / 100), averaged over calls; an error (no output) scores 0, and a
record without a reference is left out. The per-example sums make them bootstrappable like every
other rate metric (harness.score.registry.Decomposed).

Light at import: sacrebleu and rouge-score are imported when a metric is computed.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import numpy as np

from harness._util.jsonl import read_lines
from harness.calls.embed import embed_normalised
from harness.rundir.paths import stage_path
from harness.score import registry as M
from harness.score.metrics import mean_score, ratio
from harness.score.table import Table


def chrf(hypothesis: str, reference: str) -> float:
    """sacrebleu's sentence chrF (default char order 6, beta 2) as a fraction."""
    return float(_chrf_scorer().sentence_score(hypothesis, [reference]).score) / 100.0


@lru_cache(maxsize=1)
def _chrf_scorer():
    from sacrebleu.metrics import CHRF

    return CHRF()


def rouge_l(hypothesis: str, reference: str) -> float:
    """rouge-score's ROUGE-L F-measure (Porter stemming on, as in the paper's setup)."""
    return float(_rouge_scorer().score(reference, hypothesis)["rougeL"].fmeasure)


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def _similarity(table: Table, fn) -> M.Decomposed | None:
    vals = np.zeros(table.n_records)
    has = np.zeros(table.n_records)
    for i, (e, r) in enumerate(zip(table.ex.tolist(), table.records, strict=True)):
        ref = table.targets[e]
        if ref is None or str(ref).strip() == "":
            continue
        has[i] = 1.0
        if r.get("error") is None and r.get("output") is not None:
            vals[i] = fn(str(r["output"]), str(ref))
    if has.sum() == 0:
        return None
    return M.Decomposed(np.c_[table.per_example(vals), table.per_example(has)], ratio)


@M.metric("chrf", needs=("target",))
def chrf_metric(table: Table) -> M.Decomposed | None:
    """Mean sentence chrF of the output against the reference (sacrebleu), as a fraction."""
    return _similarity(table, chrf)


@M.metric("rouge_l", needs=("target",))
def rouge_l_metric(table: Table) -> M.Decomposed | None:
    """Mean ROUGE-L F1 of the output against the reference (rouge-score, stemmed)."""
    return _similarity(table, rouge_l)


# ---------------------------------------------------------------- embedding cosine (calls a model)


def check_args(name: str, args: dict, spec, fail, key: tuple) -> None:
    """Validate `- embedding_cosine: {model: ..., api_base?: ...}` (its `@metric` check)."""
    unknown = sorted(set(args) - {"model", "api_base"})
    if unknown:
        fail(f"unknown option(s) {unknown} for embedding_cosine — allowed: api_base, model", key)
    if not isinstance(args.get("model"), str) or not args["model"].strip():
        fail(
            "embedding_cosine needs `model:` — write "
            "`- embedding_cosine: {model: openai/text-embedding-3-small}`",
            key,
        )


def embedding_config(suite) -> dict | None:
    for entry in suite.spec.metrics:
        name, args = M.entry_name(entry)
        if name == "embedding_cosine":
            return {"model": args["model"], "api_base": args.get("api_base")}
    return None


def embed_records(suite, dataset, records: dict[str, list[dict]], run_dir, *, offline=False):
    """Cosine of each answered output with its reference (any litellm embedding model), merged
    into the records as scores["embedding_cosine"] (an error scores 0). Cosines are kept in
    results/<variant>.embedding.jsonl keyed by a hash of (model, output, reference), so a resumed
    run or a re-read never embeds again. Returns {"model", "embedded"} or None without the metric.
    """
    cfg = embedding_config(suite)
    if cfg is None:
        return None
    refs = {e.id: e.target for e in dataset.test}
    embedded = 0
    for variant, recs in records.items():
        path = stage_path(run_dir, variant, "embedding")
        known = {
            line["key"]: line["cosine"]
            for line in read_lines(path, on_torn="skip")
            if "key" in line and "cosine" in line
        }

        def key_of(r, ref):
            blob = json.dumps([cfg["model"], r.get("output"), ref], ensure_ascii=False)
            return hashlib.sha256(blob.encode()).hexdigest()[:16]

        answered = [
            r for r in recs if r.get("error") is None and refs.get(r["id"]) not in (None, "")
        ]
        todo = [r for r in answered if key_of(r, refs[r["id"]]) not in known]
        if todo and not offline:
            new = _cosines(
                cfg, [str(r.get("output") or "") for r in todo], [str(refs[r["id"]]) for r in todo]
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as f:
                for r, c in zip(todo, new, strict=True):
                    k = key_of(r, refs[r["id"]])
                    known[k] = c
                    f.write(
                        json.dumps(
                            {"key": k, "id": r["id"], "repeat": r.get("repeat", 0), "cosine": c}
                        )
                        + "\n"
                    )
            embedded += len(todo)
        for r in recs:
            scores = r.setdefault("scores", {})
            ref = refs.get(r["id"])
            if ref in (None, ""):
                continue
            if r.get("error") is not None:
                scores["embedding_cosine"] = 0.0
                continue
            c = known.get(key_of(r, ref))
            if c is not None:
                scores["embedding_cosine"] = c
    return {"model": cfg["model"], "embedded": embedded}


def _cosines(cfg: dict, outputs: list[str], references: list[str]) -> list[float]:
    """Row-wise cosine of two text lists, embedded in batches (retried, harness.retrieve.retrieval)."""
    v = embed_normalised(cfg["model"], cfg["api_base"], outputs + references, float)
    a, b = v[: len(outputs)], v[len(outputs) :]
    return [float(x) for x in (a * b).sum(axis=1)]


@M.metric("embedding_cosine", needs=("target",), check=check_args, bounds=(-1.0, 1.0))
def embedding_cosine(table: Table, **_) -> M.Decomposed | None:
    """Mean cosine similarity of output and reference embeddings (any litellm embedding model)."""
    return mean_score(table, "embedding_cosine")
