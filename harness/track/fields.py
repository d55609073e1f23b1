"""What gets logged (pure): params, metrics and tags of the parent and variant runs."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.score.record import example_score, given_answer, reason_text, right_score
from harness.stats import summary as stats_summary
from harness.track import readable
from harness.track.store import ROLE_TAG

# ---------------------------------------------------------------- what gets logged (pure)


def parent_fields(run) -> tuple[dict[str, str], dict[str, float], dict[str, str]]:
    """Params, metrics and tags of the suite-level parent run."""
    from harness.results import hypotheses_of  # not at the tracking child's start

    s = run.summary
    hyps = hypotheses_of(s)
    metrics = _parent_metrics(s, bool(hyps))
    tags = _parent_tags(run)
    # A run none of whose variants has a figure reads "–", as its children do (not $0).
    figures = [v for v in (s.get("variants") or {}).values() if isinstance(v, dict)]
    spent, cost = (
        metrics[k] if any(_finite(v.get(k)) for v in figures) else None
        for k in ("spent_usd", "cost_usd")
    )
    tags.update(readable.suite_tags(s, spent, cost))
    return _parent_params(run, hyps), metrics, tags


def _parent_params(run, hyps: list[dict[str, Any]]) -> dict[str, str]:
    s = run.summary
    params: dict[str, str] = {
        "suite_hash": str(s.get("suite_hash")),
        "task": str(s.get("task")),
        "baseline": str(s.get("baseline")),
        "n_examples": str(s.get("n_examples")),
        "variants": ",".join(run.variants),
    }
    for path, digest in (s.get("data_hashes") or {}).items():
        params[_key(f"data_hash.{path}")] = str(digest)
    single = isinstance(s.get("hypothesis"), dict) and "hypotheses" not in s["hypothesis"]
    for h in hyps:  # a single guard keeps its keys; a list names each hypothesis
        prefix = "hypothesis" if single else f"hypothesis.{h['key']}"
        for k in ("metric", "test", "margin", "confidence") + (() if single else ("baseline",)):
            params[_key(f"{prefix}.{k}")] = str(h.get(k))
    return params


def _parent_metrics(s: dict[str, Any], guarded: bool) -> dict[str, float]:
    metrics: dict[str, float] = {}
    total_cost = total_spent = 0.0
    for name, v in (s.get("variants") or {}).items():
        for m, val in (v.get("metrics") or {}).items():
            if isinstance(val, dict) and _finite(val.get("value")):
                metrics[_key(f"{name}.{m}")] = float(val["value"])
        for hyp_metric in stats_summary.guard_metrics(s) if guarded else []:
            d = (v.get("delta") or {}).get(hyp_metric)
            if d and _finite(d.get("value")):
                metrics[_key(f"{name}.delta_{hyp_metric}")] = float(d["value"])
        if _finite(v.get("cost_usd")):
            metrics[_key(f"{name}.cost_usd")] = float(v["cost_usd"])
            total_cost += float(v["cost_usd"])
        if _finite(v.get("spent_usd")):
            metrics[_key(f"{name}.spent_usd")] = float(v["spent_usd"])
            total_spent += float(v["spent_usd"])
    metrics["total_cost_usd"] = total_cost  # the variants' calls; the judge's is apart
    # The runs table's cost columns are the children's `cost_usd` (would cost, uncached) and
    # `spent_usd` (the calls sent): the parent row shows the totals.
    metrics["cost_usd"] = total_cost
    metrics["spent_usd"] = total_spent
    judge = s.get("judge") if isinstance(s.get("judge"), dict) else {}
    for k in ("cost_usd", "calls", "cached_calls", "errors", "tokens_in", "tokens_out"):
        if _finite(judge.get(k)):
            metrics[f"judge_{k}"] = float(judge[k])
    if _finite(s.get("exit_code")):
        metrics["exit_code"] = float(s["exit_code"])
    return metrics


def _parent_tags(run) -> dict[str, str]:
    s = run.summary
    tags = {
        ROLE_TAG: "suite",
        "harness.suite": run.suite_name,
        "harness.run_id": str(s.get("run_id", run.path.name)),
        # The ledger's lineage (the test data's hash): its runs are found under any suite name.
        "harness.lineage": str(s.get("lineage")),
        "harness.hypothesis": json.dumps(s.get("hypothesis")),
        "harness.ledger_entry": json.dumps(s.get("ledger_entry", {}), default=str),
        "harness.verdicts": json.dumps(verdicts_of(s)),
        "harness.exit_code": str(s.get("exit_code")),
        "mlflow.note.content": _cut_tag(_note(s)),
    }
    protocol = s.get("protocol") or {}
    if protocol:  # the registered protocol's fingerprint and what this run amended (issue 27)
        tags["harness.protocol"] = str(protocol.get("fingerprint"))
        amended = [f"{a['key']}: {a['old']} → {a['new']}" for a in protocol.get("amendments") or []]
        tags["harness.amendments"] = json.dumps(amended, ensure_ascii=False)[:5000]
    verdicts = verdicts_of(s, labelled=True)
    if verdicts:  # the verdict column of the first view, on the parent row too
        tags["harness.verdict"] = ", ".join(f"{n}: {v}" for n, v in verdicts.items())
    for name, verdict in verdicts.items():
        tags[_key(f"harness.verdict.{name}")] = verdict
    commit = git_commit(_suite_dir(run))
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def variant_fields(run, name: str) -> tuple[dict[str, str], dict[str, float], dict[str, str]]:
    """Params, metrics and tags of one variant's nested run."""
    v = (run.summary.get("variants") or {}).get(name) or {}
    spec = _merged_spec(run, name)
    params = {
        k: val for k, val in flatten(spec).items() if k not in ("name", "system", "user", "index")
    }
    for field in ("system", "user"):
        if spec.get(field):
            params[f"{field}_template_hash"] = hashlib.sha256(
                str(spec[field]).encode()
            ).hexdigest()[:12]
    params.setdefault("model", v.get("model"))
    params.setdefault("kind", v.get("kind"))
    if v.get("base_model"):
        params.setdefault("base_model", v.get("base_model"))
    params = {_key(k): _param_value(val) for k, val in params.items() if val is not None}

    metrics: dict[str, float] = {}
    for m, val in (v.get("metrics") or {}).items():
        metrics.update(_ci_metrics(m, val))
    for m, d in (v.get("delta") or {}).items():
        metrics.update(_ci_metrics(f"delta_{m}", d, _CI_PARTS + (("p_value", "_p_value"),)))
    for k in (
        "cost_usd",
        "spent_usd",
        "tokens_in",
        "tokens_out",
        "n_calls",
        "n_errors",
        "error_rate",
        "cached_calls",
        "n_examples",
    ):
        if _finite(v.get(k)):
            metrics[k] = float(v[k])
    for q in (50, 95):  # the summary's figures, unless the suite declares the metric itself
        if f"latency_p{q}" not in metrics and _finite(v.get(f"latency_p{q}_ms")):
            metrics[f"latency_p{q}_ms"] = float(v[f"latency_p{q}_ms"])
    judge = (run.summary.get("judge") or {}).get("variants") or {}
    for k, val in judge_child_metrics(judge.get(name) or {}).items():
        metrics.setdefault(k, val)  # a declared metric's own value (with its CI) comes first
    metrics.update(retrieval_child_metrics(v.get("retrieval") or {}))
    metrics.update(readable.value_metrics(run.summary, name))

    tags = {ROLE_TAG: "variant", "harness.suite": run.suite_name, "harness.variant": name}
    tags.update(readable.variant_tags(run.summary, name))
    if v.get("kind"):
        tags["harness.kind"] = str(v["kind"])
    return params, metrics, tags


def run_name(run, name: str) -> str:
    """A variant run's name: the variant, and for a guarded one its iteration ("ft-mini · x3"),
    so that the runs table tells the iterations of a lineage apart."""
    v = ((run.summary.get("guard") or {}).get("verdicts") or {}).get(name)
    iterations = ((v or {}).get("ledger") or {}).get("iterations") if isinstance(v, dict) else None
    return f"{name} · x{iterations}" if iterations else name


def headline_metrics(summary: dict[str, Any]) -> list[str]:
    """The metric keys the first view shows: the guard's metric(s) with interval and Δ (the
    first declared quality metric without a guard)."""
    keys = []
    for m in stats_summary.guard_metrics(summary):
        keys += [m, f"{m}_ci_low", f"{m}_ci_high", f"delta_{m}"]
        keys += [f"delta_{m}_ci_low", f"delta_{m}_ci_high"]
    return [_key(k) for k in keys]


LEDGER_FILE = "ledger.json"


def ledger_table(summary: dict[str, Any]):
    """The sunk-cost ledger of each hypothesis, one row per counted run of its lineage (this
    one last), with that hypothesis's own Δ and verdict (harness.decide.history)."""
    import pandas as pd

    from harness.decide.history import hypothesis_history

    rows = []
    for key, v in ((summary.get("guard") or {}).get("verdicts") or {}).items():
        candidate = ((v.get("hypothesis") or {}) if isinstance(v, dict) else {}).get("candidate")
        for h in hypothesis_history(summary, key):
            ci = h["delta_ci"] or [None, None]
            rows.append(
                {
                    "variant": candidate or key,
                    "hypothesis": key,
                    "iteration": h["iteration"],
                    "run_id": h["run_id"],
                    "model": h["model"],
                    "training_usd": h["training_usd"],
                    "metric": h["metric"],
                    "baseline": h["baseline"],
                    "delta": h["delta"],
                    "delta_ci_low": ci[0],
                    "delta_ci_high": ci[1],
                    "verdict": h["verdict"],
                }
            )
    return pd.DataFrame(rows)


_CI_PARTS = (("value", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high"))


def _ci_metrics(name: str, entry: Any, parts=_CI_PARTS) -> dict[str, float]:
    """A summary {value, ci_low, ci_high} entry as metrics name, name_ci_low, name_ci_high."""
    if not isinstance(entry, dict):
        return {}
    return {_key(name + suffix): float(entry[p]) for p, suffix in parts if _finite(entry.get(p))}


def judge_child_metrics(j: dict[str, Any]) -> dict[str, float]:
    """One variant's summary["judge"]["variants"] entry as flat child-run metrics."""
    out: dict[str, float] = {}
    for m in ("judge", "preference", "style_consistency"):
        out.update(_ci_metrics(m, j.get(m)))
    agreement = j.get("agreement") or {}
    for which in ("repeats", "second_model"):
        if _finite(agreement.get(which)):
            out[f"judge_agreement_{which}"] = float(agreement[which])
        if _finite(agreement.get(f"{which}_pairs")):
            out[f"judge_agreement_{which}_pairs"] = float(agreement[f"{which}_pairs"])
    # The judge_agreement metric: kappa between repeats, else between the two judge models.
    for which in ("repeats", "second_model"):
        if f"judge_agreement_{which}" in out:
            out["judge_agreement"] = out[f"judge_agreement_{which}"]
            break
    for key, metric in (
        ("unscored", "judge_unscored"),
        ("wins", "preference_wins"),
        ("losses", "preference_losses"),
        ("ties_or_split", "preference_ties"),
        ("unscored_preference", "preference_unscored"),
        ("position_bias", "position_bias"),
    ):
        if _finite(j.get(key)):
            out[metric] = float(j[key])
    return out


def retrieval_child_metrics(r: dict[str, Any]) -> dict[str, float]:
    """A RAG variant's summary["retrieval"] (gold passages) as flat child-run metrics."""
    out: dict[str, float] = {}
    for key, metric in (
        ("recall_at_k", "recall_at_k"),
        ("mrr", "mrr"),
        ("k", "retrieval_k"),
        ("n", "retrieval_n_gold"),
    ):
        if _finite(r.get(key)):
            out[metric] = float(r[key])
    for group in ("gold_retrieved", "gold_missed"):
        g = r.get(f"accuracy_{group}") or {}
        if _finite(g.get("value")):
            out[f"accuracy_{group}"] = float(g["value"])
        if _finite(g.get("n")):
            out[f"n_{group}"] = float(g["n"])
    return out


def _merged_spec(run, name: str) -> dict[str, Any]:
    """The variant's settings with suite defaults filled in (the resolved suite may list them apart)."""
    spec = run.variant_spec(name)
    defaults = run.suite.get("defaults") or {}
    merged = {**defaults, **spec}
    if isinstance(defaults.get("params"), dict) and isinstance(spec.get("params"), dict):
        merged["params"] = {**defaults["params"], **spec["params"]}
    return merged


def example_table(run, name: str):
    """The per-example table of one variant (one row per record), for mlflow.log_table."""
    import pandas as pd

    rows = []
    for r in run.records.get(name) or []:
        ex = run.examples.get(r.get("id"), {})
        # MLflow's evaluation view (the runs table's third mode) groups rows by `input` and
        # compares `output` run by run: there, each variant's answer marked right or wrong.
        row = {
            "input": json_text(ex.get("input")),
            "output": _answer(r),
            "expected": json_text(ex.get("expected")),
            "correct": _correct(r),
            "id": r.get("id"),
            "repeat": r.get("repeat", 0),
            "raw_output": r.get("output"),
            "parsed": json_text(r.get("parsed")),
            "score": example_score(r),
            "reason": reason_text(r),
            "latency_ms": r.get("latency_ms"),
            "cost_usd": r.get("cost_usd"),
            "tokens_in": r.get("tokens_in"),
            "tokens_out": r.get("tokens_out"),
            "cached": bool(r.get("cached")),
            "error": r.get("error"),
        }
        for k, val in (r.get("scores") or {}).items():
            row[f"score.{k}"] = val
        if r.get("judge"):  # the judge stage's raw samples (scores.judge is their mean)
            j = r["judge"]
            row["judge_samples"] = json.dumps(j.get("samples") or [])
            row["judge_second"] = json.dumps(j["second"]) if j.get("second") else None
            row["judge_scale"] = j.get("scale")
            row["judge_errors"] = j.get("errors", 0)
        reasons = r.get("reasons") or {}
        for k in ("judge", "preference"):
            if reasons.get(k):
                row[f"{k}_reason"] = reasons[k]
        if r.get("retrieved") is not None:  # RAG: what the model was shown, in rank order
            passages = [p for p in r["retrieved"] if isinstance(p, dict)]
            row["retrieved_ids"] = json.dumps([p.get("id") for p in passages])
            row["retrieved_scores"] = json.dumps([p.get("score") for p in passages])
            row["retrieved_sources"] = json.dumps([p.get("source") for p in passages])
        rows.append(row)
    return pd.DataFrame(rows)


def _correct(record: dict[str, Any]) -> bool | None:
    """Right or wrong by the task's own 0/1 score (classification's `correct`, extraction's
    `exact_record`, `exact_match`: `right_score`, as diagnose reads it; an error is wrong);
    None for graded scores."""
    score = right_score(record)
    return None if score is None else score >= 1.0


def _answer(record: dict[str, Any]) -> str | None:
    """The answer as the comparison shows it: "✓ transfer", "✗ routing", "✗ error: timeout"."""
    text = json_text(given_answer(record))  # as report.md's tables show it
    mark = {True: "✓ ", False: "✗ ", None: ""}[_correct(record)]
    return f"{mark}{text}" if text is not None else None


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{"params": {"temperature": 0}} -> {"params.temperature": 0}; lists become JSON."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif prefix:
        out[prefix[:-1]] = json.dumps(obj, default=str) if isinstance(obj, (list, tuple)) else obj
    return out


# ---------------------------------------------------------------- small pure helpers


def git_commit(directory: Path | None) -> str | None:
    """HEAD commit of the git repository holding the suite, if any."""
    if directory is None or not directory.exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def _suite_dir(run) -> Path:
    return run.suite_origin.parent if run.suite_origin else run.path


def verdicts_of(s: dict[str, Any], labelled: bool = False) -> dict[str, str]:
    """Each hypothesis's verdict: as the ledger reads it back (`harness.verdicts`), or
    `labelled` as every surface names it for people (an amended pass is not counted)."""
    from harness.stats.numbers import verdict_label  # not at the tracking child's start

    out = {}
    for name, v in ((s.get("guard") or {}).get("verdicts") or {}).items():
        if not isinstance(v, dict):
            out[name] = str(v)
        else:
            out[name] = verdict_label(v) if labelled else str(v.get("verdict"))
    return out


def _note(s: dict[str, Any]) -> str:
    """The run's description in the MLflow UI: the decision lines first, then the
    hypotheses and the verdict sentences."""
    # Imported here: the tracking child starts (and must answer EOF) before any run is logged.
    from harness.decide.sections import decision_lines, hypothesis_lines
    from harness.results import as_summary
    from harness.stats.numbers import verdict_label

    typed = as_summary(s)
    lines = decision_lines(typed)
    if lines:
        lines += ["", "Hypotheses (pre-registered):", *hypothesis_lines(typed), ""]
    for name, v in ((s.get("guard") or {}).get("verdicts") or {}).items():
        if isinstance(v, dict) and v.get("sentence"):
            lines.append(f"- **{name}** ({verdict_label(v)}): {v['sentence']}")
    return "\n".join(lines) or f"harness run {s.get('run_id', '')} of suite {s.get('suite', '')}"


# MLflow keeps this many characters of a tag's value (mlflow.utils.validation, not imported at
# the tracking child's start); past it, it cuts with a warning quoting the text, or refuses the
# whole batch (MLFLOW_TRUNCATE_LONG_VALUES=false, or a server configured so).
MAX_TAG_CHARS = 8000
_CUT = "… (cut at MLflow's 8,000 characters: the whole text is in report.md)"


def _cut_tag(text: str) -> str:
    """A text tag (the run's description) within MLflow's limit, cut at a line when it can be."""
    if len(text) <= MAX_TAG_CHARS:
        return text
    head = text[: MAX_TAG_CHARS - len(_CUT) - 1]
    line_end = head.rfind("\n")
    return (head[:line_end] if line_end > MAX_TAG_CHARS // 2 else head) + "\n" + _CUT


def iso_to_ms(iso: Any) -> int | None:
    if not isinstance(iso, str):
        return None
    try:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _finite(x: Any) -> bool:
    return (
        isinstance(x, (int, float))
        and not isinstance(x, bool)
        and x == x
        and abs(x) != float("inf")
    )


def _key(k: str) -> str:
    # MLflow keys allow alphanumerics, _ - . space : and /; no leading '/' and no '..'.
    k = re.sub(r"[^\w\-. :/]", "_", k).lstrip("/")
    return k.replace("..", "._")


def quote_filter_value(s: str) -> str:
    return s.replace("'", "\\'")


def _param_value(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    return text[:6000]


def json_text(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)


def loads_or(text: str | None, default):
    if not text:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return default
