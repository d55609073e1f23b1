"""report.md / report.html / plots rendered from a synthetic run directory (CONTRIBUTING.md formats)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from rundir_fixture import LABELS, add_retrieval, make_run_dir
from sklearn.metrics import accuracy_score, f1_score

from harness.cli import main
from harness.report.render import render_report
from harness.rundir.reader import load_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    run_dir = make_run_dir(tmp_path_factory.mktemp("rep"))
    # A model output that tries to inject markup into the HTML report.
    path = run_dir / "results" / "zero-shot.jsonl"  # the baseline's worst examples show it
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    bad = next(r for r in recs if r["scores"]["correct"] == 0 and not r["error"])
    bad["output"] = bad["parsed"] = "<script>alert(1)</script> | not a cell"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return run_dir, render_report(run_dir)


def _independent_scores(run_dir: Path, variant: str) -> tuple[float, float]:
    """accuracy and macro-F1 recomputed from the data file and the records, with scikit-learn."""
    run = load_run(run_dir)
    recs = run.records[variant]
    truth = [run.examples[r["id"]]["expected"] for r in recs]
    preds = [r["parsed"] or "" for r in recs]
    return accuracy_score(truth, preds), f1_score(
        truth, preds, labels=LABELS, average="macro", zero_division=0
    )


def _table_row(md: str, first_cell: str) -> list[str]:
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row starting with {first_cell!r}")


def test_files_written(rendered):
    run_dir, paths = rendered
    assert paths["md"] == run_dir / "report.md" and paths["md"].exists()
    assert paths["html"] == run_dir / "report.html" and paths["html"].exists()
    names = sorted(p.name for p in paths["plots"])
    assert names == sorted(
        [
            "cost_quality.png",
            "per_class_f1.png",
            "confusion_zero-shot.png",
            "confusion_few-shot.png",
            "confusion_ft-mini.png",
        ]
    )
    for p in paths["plots"]:
        assert p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 5000


def test_comparison_row_matches_sklearn(rendered):
    run_dir, paths = rendered
    md = paths["md"].read_text()
    acc, mf1 = _independent_scores(run_dir, "ft-mini")
    row = _table_row(md, "**ft-mini**")
    # variant | kind | model | accuracy | macro_f1 | cost | cost/1k | errors
    assert row[1:3] == ["fine-tuned", "openai/ft:gpt-4o-mini:acme::x1"]
    # One number format everywhere: rates in percent, differences in points.
    assert row[3] == f"{acc:.1%} [{acc - 0.1:.1%}, {min(1.0, acc + 0.1):.1%}]"
    assert row[4].startswith(f"{mf1:.1%} [")
    base = _table_row(md, "**zero-shot** (baseline)")
    n_err = sum(1 for r in load_run(run_dir).records["zero-shot"] if r["error"])
    assert base[-1] == f"{n_err} / 30 (timeout: {n_err})"


def test_deltas_verdicts_and_worst_examples(rendered):
    run_dir, paths = rendered
    md = paths["md"].read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    d = summary["variants"]["few-shot"]["delta"]["macro_f1"]
    pts = [f"{100 * d[k]:+.1f}".replace("-", "−") for k in ("value", "ci_low", "ci_high")]
    assert f"| **few-shot** | macro_f1 | {pts[0]} pts [{pts[1]}, {pts[2]}] | 0.04 |" in md
    assert "- **ft-mini — inconclusive**: ft-mini: +3.1 pts macro-F1 vs zero-shot" in md
    assert (
        "- `ft-mini` vs `zero-shot`: superiority on `macro_f1`, margin 5.0 pts, confidence 95%"
        in md
    )
    # Worst examples show the input and the expected label re-read from the data file,
    # with markdown specials escaped so a '|' in an input doesn't break the table.
    assert "### ft-mini" in md
    assert "\\| about \\*card\\_lost\\*" in md
    assert "error: timeout after 3 retries" in md


def test_html_is_self_contained_and_escaped(rendered):
    _, paths = rendered
    html = paths["html"].read_text()
    assert html.startswith("<!doctype html>")
    assert 'src="plots/' not in html
    assert html.count('src="data:image/png;base64,') == 5
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<table>" in html and "<th>macro_f1</th>" in html


def test_class_limits(tmp_path):
    many = [f"label_{i:02d}" for i in range(25)]
    run_dir = make_run_dir(tmp_path / "a", n=75, labels=many)
    names = {p.name for p in render_report(run_dir)["plots"]}
    assert "per_class_f1.png" in names  # 25 <= 30
    assert not any(n.startswith("confusion") for n in names)  # 25 > 20
    too_many = [f"label_{i:02d}" for i in range(31)]
    run_dir = make_run_dir(tmp_path / "b", n=62, labels=too_many)
    names = {p.name for p in render_report(run_dir)["plots"]}
    assert names == {"cost_quality.png"}


def test_break_even_table_and_plot(tmp_path):
    from harness.decide.costs import break_even

    run_dir = make_run_dir(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    row = break_even(12.0, 0.002, 0.0005, monthly_requests=10_000)  # the guard's numbers
    summary["break_even"] = {"ft-mini": row}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    out = render_report(run_dir)
    md = out["md"].read_text()
    # 12 / (0.002 - 0.0005) = 8000 requests; 0.8 months at 10k/month; saving $15/month
    assert "| **ft-mini** | $12 | $0.0015 | 0.25 | 8,000 | 0.80 | $15 |" in md
    png = run_dir / "plots" / "break_even.png"
    assert png in out["plots"] and png.read_bytes()[:8] == PNG_MAGIC
    assert "![break_even](plots/break_even.png)" in md


def test_report_without_data_falls_back_to_ids(tmp_path):
    run_dir = make_run_dir(tmp_path)
    (tmp_path / "data" / "test.csv").unlink()  # the data moved since the run
    md = render_report(run_dir)["md"].read_text()
    assert "## Worst examples" in md and "error: timeout after 3 retries" in md


def test_cli_report(tmp_path):
    run_dir = make_run_dir(tmp_path)
    result = CliRunner().invoke(main, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert (
        result.output == f"wrote {run_dir / 'report.md'}, {run_dir / 'report.html'} and 5 plot(s)\n"
    )


def test_cli_report_missing_run(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert f"run directory not found: {tmp_path / 'nope'}" in result.output


def test_cli_report_unfinished_run(tmp_path):
    (tmp_path / "r").mkdir()
    result = CliRunner().invoke(main, ["report", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "summary.json not found — the run did not finish" in result.output


def test_records_with_a_torn_last_line(tmp_path):
    run_dir = make_run_dir(tmp_path)
    with open(run_dir / "results" / "few-shot.jsonl", "a") as f:
        f.write('{"id": "abc", "rep')  # a crash mid-write
    assert len(load_run(run_dir).records["few-shot"]) == 30
    assert isinstance(pd.read_csv(tmp_path / "data" / "test.csv"), pd.DataFrame)


# ---------------------------------------------------------------- verdicts, judge, retrieval

LONG_SENTENCE = (
    "ft-mini: −1.2 pts macro-F1 [−3.0, +0.6] vs zero-shot; no worse than −2.0 not shown — "
    "inconclusive, ~1,234 test examples would decide, at 0.17× the baseline's cost per request, "
    "training pays back after 310k requests (3.1 months). 2 of 3 iterations, $61 spent."
)


def test_verdict_sentence_is_never_cut(tmp_path):
    from harness.report.cells import CELL_CHARS

    run_dir = make_run_dir(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    verdict = summary["guard"]["verdicts"]["ft-mini"]
    verdict.update(sentence=LONG_SENTENCE, flags=["moved_goalposts"])
    summary["guard"]["moved_goalposts"] = {
        "registered": {"metric": "macro_f1", "margin": 0.05},
        "current": {"metric": "macro_f1", "margin": 0.02},
        "changes": ["margin: 0.05 → 0.02"],
        "registered_run_id": "20261101-090000-aaaa",
        "after_failing_run_id": "20261102-090000-bbbb",
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    out = render_report(run_dir)
    md = out["md"].read_text()
    assert len(LONG_SENTENCE) > CELL_CHARS
    line = next(x for x in md.splitlines() if x.startswith("- **ft-mini — inconclusive**"))
    assert "…" not in line
    assert line.endswith(
        "training pays back after 310k requests (3.1 months). 2 of 3 iterations, $61 spent."
    )
    assert "\\[−3.0, +0.6\\]" in line  # escaped: brackets are markdown link syntax
    assert "  - ⚠ moved\\_goalposts: the hypothesis is weaker than the one registered first" in md
    assert (
        "- **moved goalposts**: margin: 0.05 → 0.02 — registered in run `20261101-090000-aaaa`, "
        "weakened after the failing run `20261102-090000-bbbb`" in md
    )
    html = out["html"].read_text()
    assert "[−3.0, +0.6] vs zero-shot; no worse than −2.0 not shown" in html
    assert "training pays back after 310k requests (3.1 months). 2 of 3 iterations, $61" in html


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    """A real `harness run` of a generation suite with judge + preference (tests/judged_run.py)."""
    from judged_run import judged_run

    root = tmp_path_factory.mktemp("judged")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", "sk-test-FAKE-0123456789abcdef")
        outcome = judged_run(root, None)  # the session's temporary MLflow store
    return outcome.run_dir


def _judge_lines(run_dir: Path) -> list[dict]:
    return [
        json.loads(line)
        for f in sorted((run_dir / "results").glob("*.judge.jsonl"))
        for line in f.read_text().splitlines()
    ]


def test_judge_section(judged):
    from sklearn.metrics import cohen_kappa_score

    md = (judged / "report.md").read_text()
    lines = _judge_lines(judged)
    ok = [x for x in lines if x["error"] is None]
    # Judge cost from its tokens at the suite's judge pricing ($1 / $2 per 1M), not the variants'.
    cost = sum(x["tokens_in"] for x in ok) * 1e-6 + sum(x["tokens_out"] for x in ok) * 2e-6
    assert len(lines) == 36 and len(lines) - len(ok) == 2
    assert (
        f"judge model(s): `openai/judge`, `openai/judge2`; 36 calls (0 cached), 2 errors; "
        f"cost ${cost:.4g} ("
    ) in md
    assert "Errors: judge\\_invalid: 2 — an unscored answer is left out of the metric" in md
    section = md.split("## Judge", 1)[1].split("\n## ", 1)[0]
    assert (
        "| variant | judge [95% CI] | preference (win rate) [95% CI] | wins / losses / ties | "
        "position bias | κ second judge | unscored |" in section
    )
    # base: the primary judge fails all 6, the second judge passes ex1: kappa by scikit-learn.
    base = [
        json.loads(x) for x in (judged / "results" / "base.judge.jsonl").read_text().splitlines()
    ]
    prim = {x["id"]: x["score"] for x in base if x["model"] == "openai/judge"}
    sec = {x["id"]: x["score"] for x in base if x["model"] == "openai/judge2"}
    base_ids = sorted(i for i in prim if i in sec)
    kappa = cohen_kappa_score([prim[i] for i in base_ids], [sec[i] for i in base_ids])
    rows = [r for r in md.splitlines() if r.startswith("| **base** (baseline) | 0.0% [")]
    # The Judge table shows the summary's own interval (Wilson for 0/6), as the Comparison does.
    ci = json.loads((judged / "summary.json").read_text())["variants"]["base"]["metrics"]["judge"]
    assert ci["ci_high"] > 0.3
    assert rows == [
        f"| **base** (baseline) | 0.0% [{ci['ci_low']:.1%}, {ci['ci_high']:.1%}] | 50.0% [50.0%, 50.0%] | – | – | "
        f"{kappa:.2f} (n=6) | 0 |"
    ]
    # cand: always preferred in both orders (no position bias); its ex2 could not be judged.
    pref = json.loads((judged / "summary.json").read_text())["variants"]["cand"]["metrics"]
    pref = pref["preference"]
    assert pref["ci_low"] < 1.0  # Wilson for 6/6, as in the Comparison table
    assert (
        f"| **cand** | 100.0% [100.0%, 100.0%] | 100.0% [{pref['ci_low']:.1%}, 100.0%] | 6 / 0 / 0 | 0% | "
        "– (n=5) | 1 |" in md
    )


def test_worst_examples_show_judge_scores_and_reasons(judged):
    run = load_run(judged)
    assert run.variants == ["base", "cand"]  # <variant>.judge.jsonl files are not variants
    md = (judged / "report.md").read_text()
    section = md.split("### base", 1)[1].split("###", 1)[0]
    assert "| id | input | expected | got | score | judge | reason |" in section
    row = _table_row(section, "ex1")
    assert row[3] == "base reply for ex1"
    assert row[4] == "0.250"  # judge 0 and preference 0.5 (the baseline against itself)
    assert row[5] == "0 (pass\\_fail); second judge: 1"
    assert row[6] == "judge: verdict on base reply for"
    # The records as re-read carry the merged judge scores, as the runner had them.
    cand = {r["id"]: r for r in run.records["cand"]}
    assert cand["ex0"]["scores"]["judge"] == 1.0 and cand["ex0"]["scores"]["preference"] == 1.0
    assert "judge" not in cand["ex2"]["scores"]
    assert cand["ex2"]["reasons"]["judge"].startswith("judge error: judge_invalid")


def test_retrieval_section_and_retrieved_passages(tmp_path):
    run_dir = make_run_dir(tmp_path)
    add_retrieval(run_dir, gold_missed={"value": 0.4285714, "n": 7})
    md = render_report(run_dir)["md"].read_text()
    assert "## Retrieval (gold passages named by the data)" in md
    assert "| **ft-mini** | 2 | 28 | 0.750 | 0.607 | 0.905 (n=21) | 0.429 (n=7) |" in md
    section = md.split("### ft-mini wrong, zero-shot right", 1)[1]
    assert "| id | input | expected | ft-mini got | zero-shot got | score | retrieved |" in section
    assert "| docs/a.md (7.25), docs/b.md (3.5) |" in section
    assert "## Judge" not in md  # no judge stage in this suite


def test_unpriced_winner_is_named_not_dropped_from_the_plot(tmp_path):
    """The winning variant without a price: the plot leaves it out and the report says why,
    and the terminal's `pricing:` note reaches the report."""
    run_dir = make_run_dir(tmp_path)
    s = json.loads((run_dir / "summary.json").read_text())
    ft = s["variants"]["ft-mini"]
    note = "no price for openai/ft:gpt-4o-mini:acme::x1 in litellm's price list — set `pricing:` on the variant"
    ft.update(cost_usd=None, unpriced_calls=ft["n_calls"], notes=[note])
    (run_dir / "summary.json").write_text(json.dumps(s))
    md = render_report(run_dir)["md"].read_text()
    escaped = note.replace("`", "\\`").replace("_", "\\_")  # markdown-escaped as written
    assert f"- ft-mini: {escaped}" in md
    assert (
        "- `ft-mini` is not in the cost/quality plot: none of its 30 calls has a price — "
        "set `pricing:` on the variant" in md
    )
    assert _table_row(md.split("## Cost per request", 1)[1], "**ft-mini**") == [
        "**ft-mini**",
        "–",
        "–",
    ]


def test_iteration_history_and_disagreements(rendered):
    run_dir, paths = rendered
    md = paths["md"].read_text()
    history = md.split("## Iteration history", 1)[1].split("\n## ", 1)[0]
    assert (
        "**ft-mini** (macro\\_f1 vs zero-shot): 2 iteration(s), $20 training + $0.01 evaluation "
        "= $20 spent" in history
    )
    assert (
        "| 1 | `20261120-101500-cd34` | openai/ft:gpt-4o-mini:acme::x0 | $8.00 | "
        "−1.2 pts \\[−9.0, +6.6\\] | fail |" in history
    )
    # Disagreements with the baseline, counted from the records themselves.
    run = load_run(run_dir)
    base = {r["id"]: r["scores"]["correct"] for r in run.records["zero-shot"]}
    lost = sum(1 for r in run.records["ft-mini"] if r["scores"]["correct"] < base[r["id"]])
    won = sum(1 for r in run.records["ft-mini"] if r["scores"]["correct"] > base[r["id"]])
    assert f"### ft-mini wrong, zero-shot right ({lost})" in md
    assert f"### ft-mini right, zero-shot wrong ({won})" in md
    assert md.index("ft-mini wrong, zero-shot right") < md.index("ft-mini right, zero-shot wrong")
