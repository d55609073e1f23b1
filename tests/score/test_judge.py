"""LLM-as-judge and pairwise preference on the scripted OpenAI-compatible server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from judged_run import write_gen_data
from scipy.stats import norm

from harness.data.dataset import load_dataset
from harness.errors import SuiteError
from harness.score import judge as J
from harness.score.registry import validate_suite
from harness.stats.summary import build_summary
from harness.suite import load_suite as _load_suite


def load_suite(path):
    return validate_suite(_load_suite(path))


N = 8
PRICING = "{input_per_1m: 1.0, output_per_1m: 2.0}"


def write_gen_suite(root: Path, api_base: str, metrics: str, *, repeats: int = 1) -> Path:
    write_gen_data(root, N)
    metrics = metrics.replace(
        "{model: openai/judge", f"{{api_base: {api_base}, model: openai/judge"
    )
    path = root / "suite.yaml"
    path.write_text(
        f"""name: gen-suite
task: generation
data:
  test: data/test.jsonl
  id: id
  input: draft
  target: reference
metrics:
{metrics}
defaults:
  model: openai/fake-model
  api_base: {api_base}
  params: {{temperature: 0, max_tokens: 32}}
  timeout: 5
  user: "Rewrite: {{{{ draft }}}}"
variants:
  - name: base
    system: STYLE-BASE
  - name: cand
    system: STYLE-CAND
    repeats: {repeats}
baseline: base
""",
        encoding="utf-8",
    )
    return path


def variant_records(server_answer, suite, dataset) -> dict[str, list[dict]]:
    """Records as the runner writes them, with outputs from the scripted 'variants'."""
    out: dict[str, list[dict]] = {}
    for v in suite.variants:
        recs = []
        for ex in dataset.test:
            for rep in range(v.repeats):
                text = server_answer(v.name, ex, rep)
                recs.append(
                    {
                        "id": ex.id,
                        "repeat": rep,
                        "output": text,
                        "scores": {},
                        "reasons": {},
                        "error": None if text is not None else "server_error: boom",
                        "cost_usd": 0.001,
                    }
                )
        out[v.name] = recs
    return out


def plain_outputs(variant, ex, rep):
    return f"{variant} reply for {ex.id}"


def responses(messages) -> tuple[str, str]:
    text = messages[-1]["content"]
    a = re.search(r"\[RESPONSE A\]\n(.*?)\n\n\[RESPONSE B\]", text, re.S).group(1)
    b = text.split("[RESPONSE B]\n", 1)[1]
    return a, b


def prefers_variant(messages, body) -> str:
    a, _ = responses(messages)
    return json.dumps({"winner": "A" if a.startswith("cand") else "B", "reason": "cand is better"})


def prefers_first(messages, body) -> str:
    return json.dumps({"winner": "A", "reason": "the first one"})


def judge_stage(suite, dataset, records, run_dir, **kw):
    """The judge stage as the pipeline runs it: its section's metrics are the summary's."""
    section = J.judge_records(suite, dataset, records, run_dir, **kw)
    summary = build_summary(
        suite, dataset, records, list(records), meta={}, notes={}, judge=section
    )
    return summary.get("judge", section)


def run_judge(tmp_path, server, metrics, outputs=plain_outputs, repeats=1, no_cache=False):
    suite = load_suite(write_gen_suite(tmp_path, server.url, metrics, repeats=repeats))
    dataset = load_dataset(suite)
    records = variant_records(outputs, suite, dataset)
    run_dir = tmp_path / "run"
    section = judge_stage(
        suite, dataset, records, run_dir, runs_dir=tmp_path / "runs", no_cache=no_cache
    )
    return suite, dataset, records, section, run_dir


PREF = f"  - preference: {{model: openai/judge, rubric: 'Which is nicer?', pricing: {PRICING}}}"


def test_judge_always_preferring_the_variant_gives_win_rate_one(openai_server, tmp_path):
    server = openai_server(prefers_variant)
    suite, dataset, records, section, _ = run_judge(tmp_path, server, PREF)
    assert section["variants"]["cand"]["preference"]["value"] == 1.0
    assert section["variants"]["cand"]["wins"] == N
    assert section["variants"]["cand"]["position_bias"] == 0.0
    assert section["calls"] == 2 * N  # both orders for every example
    assert server.outcomes["ok"] == 2 * N
    # The baseline ties with itself, so the paired delta is win rate - 0.5.
    summary = build_summary(suite, dataset, records, list(records), meta={}, notes={})
    assert summary["variants"]["base"]["metrics"]["preference"]["value"] == 0.5
    delta = summary["variants"]["cand"]["delta"]["preference"]
    assert delta["value"] == pytest.approx(0.5)
    # Every resample gives the same +0.5: a degenerate bootstrap, floored by the half-width
    # N agreeing 0/1 pairs get, z²/(N + z²), and marked (a sequential look never acts on it).
    half = norm.ppf(0.975) ** 2 / (N + norm.ppf(0.975) ** 2)
    assert delta["degenerate"] is True and delta["interval"] == "bootstrap"
    assert (delta["ci_low"], delta["ci_high"]) == pytest.approx((0.5 - half, 0.5 + half))


def test_position_biased_judge_gives_ties_thanks_to_the_order_swap(openai_server, tmp_path):
    server = openai_server(prefers_first)
    _, _, records, section, _ = run_judge(tmp_path, server, PREF)
    assert section["variants"]["cand"]["preference"]["value"] == 0.5
    assert section["variants"]["cand"]["ties_or_split"] == N
    assert section["variants"]["cand"]["position_bias"] == 1.0
    assert all(r["scores"]["preference"] == 0.5 for r in records["cand"])
    assert (
        "shown first: preferred; shown second: not preferred"
        in records["cand"][0]["reasons"]["preference"]
    )


JUDGE = (
    "  - judge: {model: openai/judge, rubric: Starts with Hi there, scale: pass_fail, "
    f"pricing: {PRICING}}}"
)


def pass_fail_judge(messages, body) -> str:
    text = messages[-1]["content"]
    response = text.split("[RESPONSE]\n", 1)[1]
    return json.dumps({"score": int(response.startswith("cand")), "reason": "checked"})


def test_judge_errors_are_counted_and_never_scored_as_passes(openai_server, tmp_path):
    def outputs(variant, ex, rep):
        if variant == "cand" and ex.id == "ex3":
            return "cand reply JUDGEFAIL"  # the judge's call gets a 400
        if variant == "cand" and ex.id == "ex5":
            return "cand reply GARBLED"  # the judge answers something that is not JSON
        if variant == "cand" and ex.id == "ex6":
            return None  # the variant itself failed
        return plain_outputs(variant, ex, rep)

    def answer(messages, body):
        if "GARBLED" in messages[-1]["content"]:
            return "looks great to me"
        return pass_fail_judge(messages, body)

    server = openai_server(answer, statuses={"JUDGEFAIL": 400})
    suite, dataset, records, section, run_dir = run_judge(tmp_path, server, JUDGE, outputs=outputs)
    assert section["errors"] == 2
    assert section["errors_by_reason"] == {"bad_request": 1, "judge_invalid": 1}
    cand = {r["id"]: r for r in records["cand"]}
    assert "judge" not in cand["ex3"]["scores"] and "judge" not in cand["ex5"]["scores"]
    assert cand["ex3"]["reasons"]["judge"].startswith("judge error: bad_request")
    assert cand["ex6"]["scores"]["judge"] == 0.0  # a variant error is a wrong answer
    # 5 judged passes, the variant error a fail, the 2 judge errors left out: 5 / 6.
    assert section["variants"]["cand"]["judge"]["value"] == pytest.approx(5 / 6)
    assert section["variants"]["cand"]["unscored"] == 2
    assert section["variants"]["base"]["judge"]["value"] == 0.0
    lines = [
        json.loads(x) for x in (run_dir / "results" / "cand.judge.jsonl").read_text().splitlines()
    ]
    assert len(lines) == N - 1 and sum(1 for x in lines if x["error"]) == 2
    # A resume asks failed judgements again; the garbled answer comes back from the cache.
    server.statuses.clear()
    before = server.requests
    again = judge_stage(
        suite,
        dataset,
        variant_records(outputs, suite, dataset),
        run_dir,
        runs_dir=tmp_path / "runs",
    )
    assert server.requests == before + 1
    assert again["errors"] == 1 and again["errors_by_reason"] == {"judge_invalid": 1}
    assert again["variants"]["cand"]["judge"]["value"] == pytest.approx(6 / 7)


def test_judge_cost_is_reported_apart_and_resume_does_not_rejudge(openai_server, tmp_path):
    server = openai_server(pass_fail_judge)
    suite, dataset, records, section, run_dir = run_judge(tmp_path, server, JUDGE, no_cache=True)
    lines = [
        json.loads(x)
        for v in ("base", "cand")
        for x in (run_dir / "results" / f"{v}.judge.jsonl").read_text().splitlines()
    ]
    expected = sum((x["tokens_in"] * 1.0 + x["tokens_out"] * 2.0) / 1e6 for x in lines)
    assert section["cost_usd"] == pytest.approx(expected) and expected > 0
    assert section["calls"] == 2 * N and section["tokens_in"] > 0
    assert all(r["cost_usd"] == 0.001 for recs in records.values() for r in recs)  # untouched
    # A second pass over the same run (a resume) reads the judgements back: no new request.
    before = server.requests
    again = judge_stage(
        suite, dataset, variant_records(plain_outputs, suite, dataset), run_dir, no_cache=True
    )
    assert server.requests == before
    assert again["variants"] == section["variants"]


def test_kappa_for_repeats_and_second_model_matches_sklearn(openai_server, tmp_path):
    from sklearn.metrics import cohen_kappa_score

    def noisy(messages, body):  # 1-5 scores that depend on the judge model and the repeat index
        text = messages[-1]["content"]
        i = int(re.search(r"ex(\d)", text).group(1))
        bump = 1 if body["model"] == "judge2" else 0
        salt = (i * 7 + bump * 3 + int(body.get("temperature", 0) * 10)) % 5
        return json.dumps({"score": 1 + salt, "reason": "r"})

    metrics = (
        "  - judge: {model: openai/judge, rubric: r, scale: 1-5, second_model: openai/judge2}\n"
        "  - judge_agreement"
    )
    server = openai_server(noisy)
    suite, dataset, records, section, _ = run_judge(tmp_path, server, metrics)
    a, b = [], []
    for r in records["cand"]:
        a.append(r["judge"]["samples"][0])
        b.append(r["judge"]["second"][0])
    want = cohen_kappa_score(a, b, weights="quadratic")
    agree = section["variants"]["cand"]["agreement"]
    assert agree["second_model"] == pytest.approx(want)
    assert agree["second_model_pairs"] == N
    assert section["variants"]["cand"]["judge_agreement"]["value"] == pytest.approx(want)
    assert J.kappa([1, 0, 1, 1], [1, 0, 0, 1], "pass_fail") == pytest.approx(
        cohen_kappa_score([1, 0, 1, 1], [1, 0, 0, 1])
    )
    assert J.kappa([1, 1], [1, 1], "pass_fail") is None


def test_style_consistency_share_within_one_point(openai_server, tmp_path):
    # cand samples twice per example; the judge rates repeat 1 of ex0..ex3 three points lower.
    def outputs(variant, ex, rep):
        return f"{variant} reply for {ex.id} take {rep}"

    def answer(messages, body):
        text = messages[-1]["content"].split("[RESPONSE]\n", 1)[1]
        far = "take 1" in text and re.search(r"ex[0-3]", text)
        return json.dumps({"score": 2 if far else 5, "reason": "r"})

    metrics = "  - judge: {model: openai/judge, rubric: r, scale: 1-5}\n  - style_consistency"
    server = openai_server(answer)
    _, _, _, section, _ = run_judge(tmp_path, server, metrics, outputs=outputs, repeats=2)
    assert section["variants"]["cand"]["style_consistency"]["value"] == pytest.approx(4 / 8)
    assert section["variants"]["base"]["style_consistency"]["value"] is None  # one sample


def test_parsers_and_normalisation():
    assert J.parse_score('{"score": 4, "reason": "ok"}', "1-5") == (4, "ok")
    assert J.parse_score('```json\n{"score": "pass", "reason": "x"}\n```', "pass_fail")[0] == 1
    with pytest.raises(ValueError, match="judge_invalid: score 7"):
        J.parse_score('{"score": 7}', "1-5")
    assert J.parse_winner('{"winner": "b", "reason": ""}')[0] == "B"
    assert J.parse_score('{"reason": "two\nlines", "score": 1}', "pass_fail") == (1, "two\nlines")
    assert J.normalized(5, "1-5") == 1.0 and J.normalized(1, "1-5") == 0.0
    assert J.vote("tie", "A") == 0.5 and J.vote("B", "A") == 0.0


def test_suite_validation_names_the_bad_option(tmp_path):
    bad = "  - judge: {model: openai/judge, rubric: r, scale: 1-10}"
    with pytest.raises(SuiteError, match="judge scale must be pass_fail or 1-5"):
        load_suite(write_gen_suite(tmp_path, "http://x", bad))
    bad = "  - preference: {rubric: r}"
    with pytest.raises(SuiteError, match="preference needs `model:`"):
        load_suite(write_gen_suite(tmp_path, "http://x", bad))
    bad = "  - judge: {model: m, rubric: r, temprature: 0}"
    with pytest.raises(SuiteError, match=r"unknown option\(s\) \['temprature'\] for judge"):
        load_suite(write_gen_suite(tmp_path, "http://x", bad))


def test_house_style_suite_checks():
    from click.testing import CliRunner

    from harness.cli import main

    root = Path(__file__).resolve().parents[2]
    result = CliRunner().invoke(main, ["check", str(root / "suites" / "house-style.yaml")])
    assert result.exit_code == 0, result.output
    assert "metric: judge, preference, chrf, rouge_l" in result.output


def test_run_suite_judges_after_the_variants_and_the_guard_reads_preference(
    openai_server, fake_key, tmp_path
):
    from harness.run.pipeline import run_suite

    def answer(messages, body):
        text = messages[-1]["content"]
        if "[RESPONSE A]" in text:
            return prefers_variant(messages, body)
        if "[RESPONSE]" in text:
            return pass_fail_judge(messages, body)
        style = "cand" if "STYLE-CAND" in messages[0]["content"] else "base"
        return f"{style} reply to {text}"

    server = openai_server(answer)
    metrics = f"{PREF}\n{JUDGE}\n  - chrf"
    path = write_gen_suite(tmp_path, server.url, metrics)
    text = path.read_text().replace(
        "  - name: cand\n", "  - name: cand\n    pricing: {input_per_1m: 0, output_per_1m: 0}\n"
    )
    text = text.replace(
        "  - name: base\n", "  - name: base\n    pricing: {input_per_1m: 0, output_per_1m: 0}\n"
    )
    path.write_text(
        text + "guard: {metric: preference, test: superiority, margin: 0.1, applies_to: [cand]}\n"
    )
    outcome = run_suite(path, runs_dir=tmp_path / "runs", workers=0)
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    judge = summary["judge"]
    assert judge["calls"] == 2 * N + 2 * N  # judge: both variants; preference: both orders
    assert judge["errors"] == 0 and judge["cost_usd"] > 0
    assert summary["variants"]["cand"]["cost_usd"] == 0.0  # the judge's cost is not the variant's
    assert summary["variants"]["cand"]["metrics"]["preference"]["value"] == 1.0
    assert summary["variants"]["cand"]["delta"]["preference"]["value"] == pytest.approx(0.5)
    assert summary["guard"]["verdicts"]["cand"]["verdict"] == "pass"
    assert outcome.exit_code == 0
    assert (outcome.run_dir / "results" / "cand.judge.jsonl").exists()


def test_identical_answers_and_variant_errors_are_decided_without_the_judge(
    openai_server, tmp_path
):
    def outputs(variant, ex, rep):
        if ex.id == "ex0":
            return "the very same reply"  # both variants: a tie, no call
        if ex.id == "ex1":
            return None if variant == "cand" else "base reply"  # the variant failed: a loss
        if ex.id == "ex2":
            return None if variant == "base" else "cand reply"  # the baseline failed: a win
        return plain_outputs(variant, ex, rep)

    server = openai_server(prefers_first)
    _, _, records, section, _ = run_judge(tmp_path, server, PREF, outputs=outputs)
    cand = {r["id"]: r["scores"]["preference"] for r in records["cand"]}
    assert (cand["ex0"], cand["ex1"], cand["ex2"]) == (0.5, 0.0, 1.0)
    assert section["calls"] == 2 * (N - 3) == server.outcomes["ok"]
    assert section["variants"]["cand"]["preference"]["value"] == pytest.approx(
        (0.5 + 0.0 + 1.0 + 0.5 * (N - 3)) / N
    )


def test_summarize_reads_the_merged_judge_scores(openai_server, tmp_path):
    from harness.stats.summary import summarize

    server = openai_server(prefers_variant)
    suite, dataset, records, section, _ = run_judge(tmp_path, server, PREF + "\n  - chrf")
    summary = summarize(suite, dataset, records, {"bootstrap_resamples": 200})
    cand = summary["variants"]["cand"]
    assert cand["metrics"]["preference"]["value"] == 1.0
    assert cand["delta"]["preference"]["value"] == pytest.approx(0.5)
    assert summary["variants"]["base"]["metrics"]["preference"]["value"] == 0.5
    assert cand["metrics"]["chrf"]["value"] is not None


def test_missing_judge_key_stops_before_any_variant_call(openai_server, tmp_path, monkeypatch):
    from harness.run.pipeline import run_suite

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = openai_server("a reply")
    path = write_gen_suite(
        tmp_path, server.url, "  - judge: {model: openai/gpt-4o-mini, rubric: r}"
    )
    with pytest.raises(SuiteError, match=r"judge \(openai/gpt-4o-mini\) needs OPENAI_API_KEY"):
        run_suite(path, runs_dir=tmp_path / "runs", workers=0)
    assert server.requests == 0


def test_judge_repeats_agreement_is_kappa_between_sample_0_and_1(openai_server, tmp_path):
    import itertools
    import threading

    from sklearn.metrics import cohen_kappa_score

    counter, lock = itertools.count(), threading.Lock()

    def flaky(messages, body):  # every third answer fails the reply: a noisy judge
        with lock:
            n = next(counter)
        return json.dumps({"score": int(n % 3 != 0), "reason": "r"})

    metrics = "  - judge: {model: openai/judge, rubric: r, repeats: 2}\n  - judge_agreement"
    server = openai_server(flaky)
    _, _, records, section, _ = run_judge(tmp_path, server, metrics)
    a = [r["judge"]["samples"][0] for r in records["cand"]]
    b = [r["judge"]["samples"][1] for r in records["cand"]]
    agree = section["variants"]["cand"]["agreement"]
    assert agree["repeats_pairs"] == N
    assert set(a) | set(b) == {0, 1}  # every third answer is a fail: kappa is defined
    assert agree["repeats"] == pytest.approx(cohen_kappa_score(a, b))
    # Both samples count: the record's score is their mean.
    assert records["cand"][0]["scores"]["judge"] == pytest.approx(
        sum(records["cand"][0]["judge"]["samples"]) / 2
    )
    # Repeats at temperature 0 would only measure provider noise: the default samples.
    again = load_suite(write_gen_suite(tmp_path / "t", "http://x", metrics))
    assert J.configs(again)[0].params["temperature"] == 0.7


def test_judge_section_interval_is_the_summarys_at_the_guards_confidence(openai_server, tmp_path):
    """One source for a judge metric's interval: the judge section shows the summary's own
    (Wilson at the guard's 90% here), not a 95% bootstrap of its own."""

    def judge(messages, body) -> str:
        response = messages[-1]["content"].split("[RESPONSE]\n", 1)[1]
        number = int(re.search(r"ex(\d+)", response).group(1))
        return json.dumps({"score": int(response.startswith("cand") and number % 3 != 0)})

    server = openai_server(judge)
    path = write_gen_suite(tmp_path, server.url, JUDGE)
    path.write_text(
        path.read_text() + "guard: {metric: judge, margin: 0.05, confidence: 0.9}\n",
        encoding="utf-8",
    )
    suite = load_suite(path)
    dataset = load_dataset(suite)
    records = variant_records(plain_outputs, suite, dataset)
    section = J.judge_records(suite, dataset, records, tmp_path / "run", runs_dir=tmp_path / "r")
    summary = build_summary(
        suite, dataset, records, list(records), meta={}, notes={}, judge=section
    )
    from scipy.stats import binomtest

    passes = sum(1 for r in records["cand"] if r["scores"]["judge"] == 1.0)
    assert passes == 5  # ex1, ex2, ex4, ex5, ex7
    ci = binomtest(passes, N).proportion_ci(confidence_level=0.9, method="wilson")
    cand = summary["judge"]["variants"]["cand"]["judge"]
    assert cand == summary["variants"]["cand"]["metrics"]["judge"]
    assert (cand["value"], cand["ci_low"], cand["ci_high"]) == pytest.approx(
        (5 / 8, ci.low, ci.high)
    )
