"""`harness diagnose` on runs with each cause of error planted on known examples."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest
from diagnose_run import LABELS, make_planted_run, plan_by_probability
from statsmodels.stats.proportion import proportion_confint

from harness.diagnose import diagnose, write
from harness.diagnose.render import text
from harness.errors import SuiteError
from harness.rundir.reader import load_run

PLANTED = {
    "failed": 2,
    "format": 6,
    "inconsistent": 8,
    "specification": 10,
    "knowledge": 12,
    "capability": 7,
    "label_doubt": 5,
    "residual": 4,
}


def _plan(counts: dict[str, int], right: int) -> list[str]:
    plan = ["right"] * right
    for cause, k in counts.items():
        plan += [cause] * k
    # Interleaved, so that no cause sits on one label.
    return [plan[(i * 7) % len(plan)] for i in range(len(plan))] if len(plan) % 7 else plan


def test_each_planted_cause_is_recovered_with_its_wilson_interval(tmp_path):
    plan = _plan(PLANTED, right=67)
    run = load_run(make_planted_run(tmp_path, plan))
    d = diagnose(run)
    n_errors = sum(PLANTED.values())
    assert (d["variant"], d["n_examples"], d["n_errors"]) == ("zero-shot", 121, n_errors)
    by = {c["cause"]: c for c in d["causes"]}
    assert list(by) == d["precedence"]
    for cause, k in PLANTED.items():
        lo, hi = proportion_confint(k, n_errors, alpha=0.05, method="wilson")
        assert by[cause]["count"] == k, cause
        assert by[cause]["share"] == pytest.approx(k / n_errors)
        assert (by[cause]["ci_low"], by[cause]["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    # Every example is sorted into the cause planted on it.
    planted_by_id = {
        json.loads(line)["id"]: plan[i]
        for i, line in enumerate((run.path / "results" / "few-shot.jsonl").read_text().splitlines())
    }
    assert all(e["cause"] == planted_by_id[e["id"]] for e in d["examples"])


def test_shares_drawn_at_random_hold_the_true_probability_in_their_interval(tmp_path):
    probs = {
        "right": 0.5,
        "failed": 0.02,
        "format": 0.06,
        "inconsistent": 0.08,
        "specification": 0.1,
        "knowledge": 0.12,
        "capability": 0.06,
        "label_doubt": 0.03,
        "residual": 0.03,
    }
    plan = plan_by_probability(600, probs, seed=3)
    d = diagnose(load_run(make_planted_run(tmp_path, plan)))
    p_error = 1 - probs["right"]
    for c in d["causes"]:
        truth = probs[c["cause"]] / p_error
        assert c["ci_low"] <= truth <= c["ci_high"], (c["cause"], truth, c)
    assert d["n_errors"] == sum(1 for p in plan if p != "right")


def test_the_decision_table_adds_the_causes_of_each_approach(tmp_path):
    run = load_run(make_planted_run(tmp_path, _plan(PLANTED, right=67)))
    d = diagnose(run)
    rows = {a["approach"]: a for a in d["approaches"]}
    n = d["n_errors"]
    assert rows["prompt"]["count"] == PLANTED["format"] + PLANTED["specification"]
    assert rows["rag"]["count"] == PLANTED["knowledge"]
    assert rows["finetune"]["count"] == PLANTED["inconsistent"] + PLANTED["format"]
    assert rows["model"]["count"] == PLANTED["capability"]
    assert rows["labels"]["count"] == PLANTED["label_doubt"]
    lo, hi = proportion_confint(16, n, alpha=0.05, method="wilson")
    assert (rows["prompt"]["ci_low"], rows["prompt"]["ci_high"]) == (
        pytest.approx(lo),
        pytest.approx(hi),
    )
    assert "knowledge trap" in rows["rag"]["dont"]
    assert rows["prompt"]["investment"] == "hours"
    assert rows["rag"]["investment"] == "days–weeks"
    assert rows["finetune"]["investment"] == "weeks"
    # big costs 0.006 per call, the baseline 0.001: switching costs 6x per request. The
    # baseline's 2 repeats are how the run measures it, not what serving it costs.
    assert "costs 6.0× zero-shot per call" in rows["model"]["advice"]
    # The largest share: prompting (format + specification = 16 of 54; fine-tuning's is 14).
    assert d["recommendation"] == "prompt"
    assert "kind: fine-tuned" in rows["finetune"]["suite_edit"]
    assert "candidate: fine-tuned, baseline: zero-shot" in rows["finetune"]["suite_edit"]


def test_label_doubts_go_to_a_csv_the_user_can_correct(tmp_path):
    plan = _plan(PLANTED, right=67)
    run = load_run(make_planted_run(tmp_path, plan))
    d = diagnose(run)
    write(run, d)
    saved = json.loads((run.path / "diagnosis.json").read_text())
    assert saved == json.loads(json.dumps(d))
    with open(run.path / "label_review.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == PLANTED["label_doubt"]
    for r in rows:
        i = int(r["input"].split()[1])  # "question {i} about {true}"
        assert plan[i] == "label_doubt"
        assert r["suggested"] == LABELS[i % 3] != r["label"]
        assert r["agreed_by"] == "big+rag"
        assert r["corrected"] == ""


def test_a_cause_without_evidence_is_not_measured_never_zero(tmp_path):
    plan = _plan({"format": 3, "specification": 5}, right=12)
    run = load_run(make_planted_run(tmp_path, plan, variants=("zero-shot",), repeats=1))
    d = diagnose(run)
    by = {c["cause"]: c for c in d["causes"]}
    for cause in ("inconsistent", "specification", "knowledge", "capability", "label_doubt"):
        assert by[cause]["measured"] is False
        assert by[cause]["share"] is None and by[cause]["count"] is None
    assert by["format"]["count"] == 3
    assert by["residual"]["count"] == 5  # nothing in the run can fix the specification errors
    out = text(d)
    assert "  inconsistent   –       not measured    zero-shot has one call per example" in out
    rows = {a["approach"]: a for a in d["approaches"]}
    assert rows["rag"]["measured"] is False and rows["rag"]["share"] is None
    for line in out.splitlines():
        if line.strip().startswith(("RAG", "knowledge", "capability", "label doubt")):
            assert "not measured" in line and "0%" not in line, line


def test_a_run_with_repeats_but_no_other_variant(tmp_path):
    plan = _plan({"inconsistent": 4, "residual": 2}, right=10)
    d = diagnose(load_run(make_planted_run(tmp_path, plan, variants=("zero-shot",))))
    by = {c["cause"]: c for c in d["causes"]}
    assert by["inconsistent"]["count"] == 4
    assert by["residual"]["count"] == 2


def test_another_variant_can_be_diagnosed(tmp_path):
    run = load_run(make_planted_run(tmp_path, _plan(PLANTED, right=67)))
    d = diagnose(run, "few-shot")
    # few-shot is wrong on knowledge, capability, label doubt and residual examples; rag and big
    # are its fixers; few-shot has one call per example.
    counts = Counter(e["cause"] for e in d["examples"])
    assert counts == Counter(
        knowledge=PLANTED["knowledge"],
        capability=PLANTED["capability"],
        label_doubt=PLANTED["label_doubt"],
        residual=PLANTED["residual"],
    )


def test_an_unknown_variant_is_a_clear_error(tmp_path):
    run = load_run(make_planted_run(tmp_path, _plan({"format": 1}, right=3)))
    with pytest.raises(SuiteError, match=r"unknown variant 'nope' .* choose one of"):
        diagnose(run, "nope")


def test_a_fixer_that_breaks_more_than_it_fixes_is_no_recommendation(tmp_path):
    plan = _plan({"specification": 5, "broken": 8}, right=10)
    d = diagnose(load_run(make_planted_run(tmp_path, plan, variants=("zero-shot", "few-shot"))))
    prompt = next(a for a in d["approaches"] if a["approach"] == "prompt")
    assert (prompt["count"], prompt["doubtful"]) == (5, 5)
    assert prompt["caveat"] == "few-shot fixes 5 but breaks 8 that zero-shot got right (net -3)"
    assert d["recommendation"] is None
    assert d["evidence"]["flips"] == {"few-shot": {"fixes": 5, "breaks": 8}}
    assert text(d).splitlines()[12] == (
        "Recommendation: nothing in this run is shown to fix its errors (few-shot fixes 5 but "
        "breaks 8 that zero-shot got right (net -3): no evidence that it helps) — add the "
        "variants below to measure the causes marked not measured."
    )


def test_the_suite_edits_make_a_suite_check_accepts(tmp_path):
    """Every edit the table prints, pasted into the run's suite, is a valid suite."""
    import yaml
    from click.testing import CliRunner

    from harness.cli import main

    run = load_run(make_planted_run(tmp_path, _plan(PLANTED, right=67)))
    d = diagnose(run)
    suite = yaml.safe_load((run.path / "suite.yaml").read_text())
    guards = []
    for a in d["approaches"]:
        if not a["suite_edit"]:
            continue
        edit = yaml.safe_load(a["suite_edit"])
        suite["variants"] += edit.get("variants", [])
        guards += edit["guard"]
    suite["guard"] = guards
    path = tmp_path / "edited.yaml"  # beside docs/, which the RAG edit's corpus glob reads
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    result = CliRunner().invoke(main, ["check", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "few-shot-similar (prompt, openai/small)" in result.output
    assert "distilled (fine-tuned, finetune:distilled)" in result.output
    assert (
        "  ✓ training: distilled: `harness finetune` trains openai/small on distilled from big"
        in result.output
    )
    assert [g["candidate"] for g in guards] == [
        "few-shot-similar",
        "rag",
        "fine-tuned",
        "distilled",
    ]


def test_a_run_without_a_right_wrong_score_is_a_clear_error(tmp_path):
    run_dir = make_planted_run(tmp_path, ["right", "residual"], variants=("zero-shot",))
    path = run_dir / "results" / "zero-shot.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for r in records:
        r["scores"] = {"chrf": 0.5}  # a generation suite scored by similarity only
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(SuiteError) as e:
        diagnose(load_run(run_dir))
    assert str(e.value) == (
        f"{run_dir}: no record has a right/wrong score (correct, exact_record, exact_match) — "
        "diagnose sorts wrong answers, so it needs a classification or extraction suite, or a "
        "generation suite with exact_match"
    )


def _rename(run_dir, old: str, new: str) -> None:
    """The run as if its variant `old` had been called `new` in the suite."""
    import yaml

    suite = yaml.safe_load((run_dir / "suite.yaml").read_text())
    for v in suite["variants"]:
        v["name"] = new if v["name"] == old else v["name"]
    suite["baseline"] = new if suite["baseline"] == old else suite["baseline"]
    (run_dir / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["variants"] = {new if k == old else k: v for k, v in summary["variants"].items()}
    summary["baseline"] = new if summary["baseline"] == old else summary["baseline"]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "results" / f"{old}.jsonl").rename(run_dir / "results" / f"{new}.jsonl")


@pytest.mark.parametrize("name", ["no", "1", "2.0", "null"])
def test_suite_edits_keep_a_variant_name_yaml_would_read_as_another_type(tmp_path, name):
    """A name the suite allows (letters, digits, . _ -) but YAML reads as a bool, number or null
    is quoted in the edits, so pasting them names the variant, not False / 1 / None."""
    import yaml

    run_dir = make_planted_run(tmp_path, _plan(PLANTED, right=67))
    _rename(run_dir, "zero-shot", name)
    d = diagnose(load_run(run_dir))
    assert d["variant"] == name
    for a in d["approaches"]:
        if not a["suite_edit"]:
            continue
        edit = yaml.safe_load(a["suite_edit"])
        assert [g["baseline"] for g in edit["guard"]] == [name], a["approach"]
        for v in edit.get("variants", []):
            assert v.get("extends", name) == name, a["approach"]


def test_a_run_whose_errors_are_failed_calls_says_so_not_add_variants(tmp_path):
    """Every cause is measured and nothing fixes a call that got no answer: the advice is the
    failed calls, not 'add the variants below' (there are none below)."""
    plan = _plan({"failed": 6}, right=4)
    d = diagnose(load_run(make_planted_run(tmp_path, plan)))
    assert d["recommendation"] is None
    assert all(c["measured"] for c in d["causes"])
    shown = text(d)
    assert "Recommendation: nothing in this run is shown to fix its errors." in shown
    assert (
        "6 of the 6 errors are failed calls (no answer came back): look at the errors in "
        "results/zero-shot.jsonl (a rate limit, a timeout), then `harness run SUITE.yaml --resume` "
        "retries them." in shown
    )
    assert "add the variants below" not in shown


def test_an_edit_that_would_measure_an_unmeasured_cause_is_shown(tmp_path):
    """Only the baseline: prompting's row is measured (format, 0) but specification is not; its
    few-shot edit is what measures it. Fine-tuning's edit measures no unmeasured cause."""
    plan = _plan({"specification": 3, "residual": 2}, right=5)
    d = diagnose(load_run(make_planted_run(tmp_path, plan, variants=("zero-shot",), repeats=1)))
    lines = text(d).splitlines()
    assert "  # prompt engineering: specification not measured — this would measure it" in lines
    assert "    - name: few-shot-similar" in lines
    assert not any(line.startswith("  # fine-tuning") for line in lines)


def test_without_a_train_split_the_prompt_edit_is_a_format_focused_prompt_check_accepts(
    tmp_path,
):
    """few_shot draws from data.train: a suite without one gets a clearer prompt instead."""
    import yaml
    from click.testing import CliRunner

    from harness.cli import main

    run_dir = make_planted_run(tmp_path, _plan(PLANTED, right=67))
    suite = yaml.safe_load((run_dir / "suite.yaml").read_text())
    del suite["data"]["train"]
    suite["variants"] = [v for v in suite["variants"] if "few_shot" not in v]
    (run_dir / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    d = diagnose(load_run(run_dir))
    prompt = next(a for a in d["approaches"] if a["approach"] == "prompt")
    edit = yaml.safe_load(prompt["suite_edit"])
    assert "few_shot" not in edit["variants"][0]
    assert edit["variants"][0]["system"] == (
        "Answer with exactly one of these labels and nothing else: " + ", ".join(LABELS)
    )
    suite["variants"] += edit["variants"]
    suite["guard"] = edit["guard"]
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    result = CliRunner().invoke(main, ["check", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_a_variant_without_records_says_how_to_get_them(tmp_path):
    run_dir = make_planted_run(tmp_path, _plan({"residual": 2}, right=3))
    (run_dir / "results" / "zero-shot.jsonl").write_text('{"id": "x", "repe')  # killed mid-line
    with pytest.raises(SuiteError) as e:
        diagnose(load_run(run_dir))
    assert str(e.value) == (
        f"'zero-shot' has no scored records in {run_dir}/results/zero-shot.jsonl — finish the "
        "run with `harness run SUITE.yaml --resume`, or pass --variant with one of ['few-shot', "
        "'rag', 'big']"
    )


def test_a_free_diagnosed_model_is_not_called_unpriced(tmp_path):
    """A local model's calls cost $0: priced, so no 'set pricing:' — the strong one's price."""
    cost = {"zero-shot": 0.0, "few-shot": 0.0, "rag": 0.0, "big": 0.006}
    d = diagnose(load_run(make_planted_run(tmp_path, _plan(PLANTED, right=67), cost=cost)))
    advice = next(a["advice"] for a in d["approaches"] if a["approach"] == "model")
    assert advice.endswith("; zero-shot runs at no API cost, big costs $0.006 per call")
    assert "pricing" not in advice


def test_a_causes_evidence_names_only_the_variants_that_show_that_cause(tmp_path):
    """The planted specification errors are fixed by few-shot, rag and big; only few-shot (a
    prompt variant of the same model) is the evidence that prompting fixes them."""
    d = diagnose(load_run(make_planted_run(tmp_path, _plan(PLANTED, right=67))))
    rows = {line.split()[0]: line for line in text(d).splitlines()[3:11]}
    assert rows["specification"].endswith("fixed by few-shot")
    assert rows["knowledge"].endswith("fixed by rag")
    assert rows["capability"].endswith("fixed by big")
    spec = next(e for e in d["examples"] if e["cause"] == "specification")
    assert spec["fixed_by"] == ["few-shot", "rag", "big"]  # diagnosis.json keeps every fixer


def test_prompt_advice_credits_few_shot_only_with_specification_errors(tmp_path):
    # The tutorial's baseline: every error a format error, few-shot fixing none of them.
    d = diagnose(load_run(make_planted_run(tmp_path, _plan({"format": 6}, right=30))))
    assert {c["cause"]: c["count"] for c in d["causes"]}["specification"] == 0
    advice = next(a["advice"] for a in d["approaches"] if a["approach"] == "prompt")
    assert advice == "a format-focused prompt (state the labels and the answer format)"


def test_prompt_advice_offers_constrained_output_only_where_the_suite_can_use_it(tmp_path):
    """The planted suite declares no output_schema: `response_format: output_schema` would fail
    its check, so the advice is a format-focused prompt."""
    d = diagnose(load_run(make_planted_run(tmp_path, _plan(PLANTED, right=67))))
    advice = next(a["advice"] for a in d["approaches"] if a["approach"] == "prompt")
    assert advice == (
        "a format-focused prompt (state the labels and the answer format); "
        "few-shot already fixes the specification errors"
    )
