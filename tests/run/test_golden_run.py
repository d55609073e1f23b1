"""The golden run: `harness run` of tests/run/golden/suite.yaml gives the committed summary.json.

It pins the behaviour of the whole pipeline (suite → data → prompts, few-shot and retrieval →
calls → scoring → metrics and paired CIs → costs and break-even → guard verdicts), so that a
refactoring can show it changed nothing. The suite has a baseline, a few-shot, a RAG and a
fine-tuned variant; the test server answers from a script (below): some answers are wrong, some
are not JSON or break the schema, one example gets HTTP 400, so every delta is non-zero.

Only volatile values are normalised, by `normalise` (each rule says why); nothing else is dropped.
A difference fails with a unified diff of the two JSON texts.

Regenerate the expected file after an intended change, and review its diff:

    HARNESS_UPDATE_GOLDEN=1 python -m pytest tests/run/test_golden_run.py
"""

from __future__ import annotations

import csv
import difflib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main

GOLDEN = Path(__file__).parent / "golden"
EXPECTED = GOLDEN / "summary.json"
EXPECTED_REPORT = GOLDEN / "report.md"  # the report snapshot of the same run
UPDATE = os.environ.get("HARNESS_UPDATE_GOLDEN") == "1"
LABELS = ["card_arrival", "lost_or_stolen_card", "exchange_rate"]

# The scripted model. Per variant, the examples it gets wrong and how; every other example gets
# the right intent. "rag" answers the intent named by its first retrieved chunk, so what BM25
# retrieves decides its score. Example e24 gets HTTP 400 for every variant (an error record).
SCRIPT: dict[str, dict[str, str]] = {
    "zero-shot": {
        "e03": "wrong",
        "e07": "wrong",
        "e14": "wrong",
        "e16": "wrong",
        "e20": "wrong",
        "e22": "wrong",
        "e05": "not_json",
        "e12": "truncated",
        "e19": "off_schema",
    },
    "few-shot": {"e14": "wrong"},
    # As wrong as the baseline where it is wrong, and wrong on 8 more: a clear fail.
    "ft": {
        "e03": "wrong",
        "e07": "wrong",
        "e14": "wrong",
        "e16": "wrong",
        "e20": "wrong",
        "e22": "wrong",
        "e05": "wrong",
        "e12": "wrong",
        "e02": "wrong",
        "e06": "wrong",
        "e09": "wrong",
        "e10": "wrong",
        "e17": "wrong",
        "e18": "wrong",
        "e01": "not_json",
        "e23": "not_json",
    },
}
FAILING_TEXT = "Upstream fails on this one"


def _examples() -> dict[str, tuple[str, str]]:
    """Question text -> (id, intent), from the golden test data."""
    with (GOLDEN / "data" / "test.csv").open(encoding="utf-8") as f:
        return {row["text"]: (row["id"], row["category"]) for row in csv.DictReader(f)}


def scripted_answer(messages, body) -> str:
    prompt = messages[-1]["content"]
    question = prompt.rsplit("Question: ", 1)[-1].strip()
    ex_id, intent = _examples()[question]
    if "Context:\n" in prompt:
        named = re.search(r"intent: (\w+)", prompt)
        return json.dumps({"intent": named.group(1)}) if named else "no context"
    variant = (
        "ft"
        if body["model"].startswith("ft:")
        else "few-shot"
        if "Examples:" in prompt
        else "zero-shot"
    )
    how = SCRIPT[variant].get(ex_id)
    if how == "wrong":
        intent = LABELS[(LABELS.index(intent) + 1) % len(LABELS)]
    elif how == "not_json":
        return f"The intent is {intent}."
    elif how == "truncated":
        return '{"intent": "' + intent
    elif how == "off_schema":
        return json.dumps({"intent": intent, "confidence": "high"})
    return json.dumps({"intent": intent})


# ---------------------------------------------------------------- normalisation

_RUN_ID = re.compile(r"\d{8}-\d{6}(?:-[0-9a-f]+)?")


def normalise(summary: dict, *, root: Path, api_base: str) -> dict:
    """A copy of `summary` with the values that change from run to run replaced by placeholders.

    Rules (by key name, at any depth, or by value):
    - timestamps and run ids (`started_at`, `finished_at`, `created_at`, `run_id`, and run ids
      inside strings) -> "<time>" / "<run-id>";
    - wall-clock measurements: durations, latencies and throughput (every number under a key
      containing `latency`, `duration`, `seconds`, `elapsed`, `wall`, `per_second` or
      `throughput`, e.g. the latency_p95 metric and its delta) -> "<timing>" (None stays None);
    - the tmp dir the run lives in and the test server's URL (random port) inside strings ->
      "<root>" / "<api_base>";
    - hashes of files that embed that URL (the resolved suite) -> "<suite-hash>", and the
      registered protocol's fingerprint (its baseline definition holds the endpoint's host, a
      random port) -> "<protocol-fingerprint>".
    The structure (every key, list length and all other values) is kept.
    """
    timing = re.compile(r"latency|duration|seconds|elapsed|wall|per_second|throughput")

    def fix(key: str | None, value, timed: bool = False):
        timed = timed or (key is not None and bool(timing.search(key)))
        if isinstance(value, dict):
            return {k: fix(k, v, timed) for k, v in value.items()}
        if isinstance(value, list):
            return [fix(key, v, timed) for v in value]
        if timed and isinstance(value, int | float) and not isinstance(value, bool):
            return "<timing>"
        if key in {"started_at", "finished_at", "created_at"} and value is not None:
            return "<time>"
        if key == "run_id" and value is not None:
            return "<run-id>"
        if key == "suite_hash" and value is not None:
            return "<suite-hash>"
        if isinstance(value, str):
            value = value.replace(str(root), "<root>").replace(api_base, "<api_base>")
            return _RUN_ID.sub("<run-id>", value)
        return value

    out = fix(None, summary)
    if isinstance(out.get("protocol"), dict) and out["protocol"].get("fingerprint"):
        out["protocol"]["fingerprint"] = "<protocol-fingerprint>"
    return out


def _dump(summary: dict) -> str:
    return json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------- the run


def golden_run(root: Path, api_base: str, runs_dir: Path) -> dict:
    """`harness run` of a copy of tests/golden under `root`; returns the normalised summary."""
    suite_dir = root / "suite"
    if not suite_dir.exists():
        shutil.copytree(
            GOLDEN, suite_dir, ignore=shutil.ignore_patterns("summary.json", "report.md")
        )
        text = (suite_dir / "suite.yaml").read_text(encoding="utf-8")
        (suite_dir / "suite.yaml").write_text(text.replace("@API_BASE@", api_base), "utf-8")
    result = CliRunner().invoke(
        main,
        ["run", str(suite_dir / "suite.yaml"), "--runs-dir", str(runs_dir), "--concurrency", "4"],
        catch_exceptions=False,
    )
    # The guard flags the worse fine-tuned variant: exit 1 is part of the golden behaviour.
    assert result.exit_code == 1, result.output
    (summary_path,) = runs_dir.glob("golden/*/summary.json")
    report = (summary_path.parent / "report.md").read_text("utf-8")
    golden_run.report = normalise_report(report, root=root, api_base=api_base)
    return normalise(json.loads(summary_path.read_text("utf-8")), root=root, api_base=api_base)


def normalise_report(md: str, *, root: Path, api_base: str) -> str:
    """report.md with the same volatile values replaced as in `normalise`: run ids, times, the
    tmp dir and URL, and wall-clock figures (the cells of latency columns, and the Δ of a
    latency metric)."""
    md = md.replace(str(root), "<root>").replace(api_base, "<api_base>")
    md = re.sub(r"started \S+, finished \S+", "started <time>, finished <time>", md)
    md = _RUN_ID.sub("<run-id>", md)
    out, timed = [], set()
    for line in md.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = line.strip("|").split(" | ")
            if any("latency" in c for c in cells) and cells[0].strip() == "variant":
                timed = {i for i, c in enumerate(cells) if "latency" in c}  # a header
            elif len(cells) > 1 and "latency" in cells[1]:  # a Differences row
                cells[2:3] = ["<timing>"]
            else:
                cells = ["<timing>" if i in timed else c for i, c in enumerate(cells)]
            line = "|" + " | ".join(cells) + "|"
        elif not line.strip():
            timed = set()
        out.append(line)
    return "\n".join(out) + "\n"


def assert_report(md: str) -> None:
    _assert_snapshot(md, EXPECTED_REPORT)


def assert_golden(summary: dict) -> None:
    _assert_snapshot(_dump(summary), EXPECTED)


def _assert_snapshot(got: str, path: Path) -> None:
    """`got` equals the committed file (HARNESS_UPDATE_GOLDEN=1 rewrites it instead)."""
    if UPDATE:
        path.write_text(got, encoding="utf-8")
        return
    want = path.read_text(encoding="utf-8")
    if got != want:
        diff = "".join(
            difflib.unified_diff(
                want.splitlines(keepends=True),
                got.splitlines(keepends=True),
                f"tests/run/golden/{path.name} (expected)",
                "this run",
            )
        )
        pytest.fail(
            f"{path.name} differs from the golden file "
            "(regenerate with HARNESS_UPDATE_GOLDEN=1 if the change is intended):\n" + diff,
            pytrace=False,
        )


def test_golden_run_gives_the_committed_summary_cold_and_warm(
    openai_server, fake_key, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    server = openai_server(scripted_answer, statuses={FAILING_TEXT: 400})

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'cold' / 'mlflow.db'}")
    cold = golden_run(tmp_path, server.url, tmp_path / "cold" / "runs")
    # Every variant asked every example once: HTTP 400 is not retried.
    assert server.requests == 4 * 24
    assert_golden(cold)
    assert_report(golden_run.report)

    # Warm: a fresh runs dir and MLflow store (no history for the ledger) holding only the cold
    # run's response cache. The answers come from the cache; only e24 (an error, never cached)
    # is asked again, and the summary differs only in the cache-hit counts and in what was spent
    # (nothing: cached answers cost $0, the error costs nothing; would-cost figures are equal).
    warm_runs = tmp_path / "warm" / "runs"
    warm_runs.mkdir(parents=True)
    shutil.copy(tmp_path / "cold" / "runs" / ".cache.sqlite", warm_runs / ".cache.sqlite")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'warm' / 'mlflow.db'}")
    warm = golden_run(tmp_path, server.url, warm_runs)
    assert server.requests == 4 * 24 + 4
    for name, stats in warm["variants"].items():
        assert (stats["cached_calls"], cold["variants"][name]["cached_calls"]) == (23, 0), name
        stats["cached_calls"] = 0
        assert cold["variants"][name]["spent_usd"] == cold["variants"][name]["cost_usd"] > 0
    assert _spend(warm) == {k: 0.0 for k in _spend(cold)}
    assert (
        "1 of 3 iterations, $0 of $50 budget spent."
        in warm["guard"]["verdicts"]["few-shot"]["sentence"]
    )
    assert _without_spend(warm) == _without_spend(cold)


def _spend(summary: dict) -> dict[str, float]:
    """What a run spent, wherever summary.json says it (training, a sunk cost, left out)."""
    out = {f"{v}.spent_usd": s["spent_usd"] for v, s in summary["variants"].items()}
    for v, verdict in summary["guard"]["verdicts"].items():
        out[f"{v}.ledger.eval_usd"] = verdict["ledger"]["eval_usd"]
    for v, entry in summary["ledger_entry"]["variants"].items():
        out[f"{v}.eval_cost_usd"] = entry["eval_cost_usd"]
    return out


def _without_spend(summary: dict) -> dict:
    """The summary without its spend figures and the sentences and totals that quote them."""
    s = json.loads(json.dumps(summary))
    for stats in s["variants"].values():
        del stats["spent_usd"]
    for verdict in s["guard"]["verdicts"].values():
        for key in ("eval_usd", "spent_usd"):
            del verdict["ledger"][key]
        del verdict["sentence"]
    for entry in s["ledger_entry"]["variants"].values():
        del entry["eval_cost_usd"]
    return s
