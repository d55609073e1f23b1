"""Issue #28 at the level a user meets it (`harness run` / `harness plan` against the test
server): no zero-width interval ever decides.

(a) 200 examples, few-shot truly +15 pts better than zero-shot, margin 0.05, four sequential
    looks, the zero-shot model's 30 mistakes all outside the first look: look 1 (50 agreeing
    pairs) must not fail the hypothesis.
(b) `--limit 10`, a fixed design where every pair agrees: +5 pts is not "ruled out".
(c) `harness plan --pilot` with a pilot of another suite, or one whose every call failed: exit 2
    naming what is wrong.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner
from conftest import intent_answer, write_suite

from harness.cli import main
from harness.data.dataset import load_dataset
from harness.stats.paired import newcombe_paired_ci
from harness.suite import load_suite


@pytest.fixture(autouse=True)
def _isolated(isolated_cwd):
    """MLflow store and any relative output stay in the test's tmp_path."""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


GUARD = """
baseline: zero-shot
guard: {{candidate: few-shot, metric: accuracy, test: superiority, margin: 0.05{extra}}}
"""


def _pts(x: float) -> str:
    return f"{x * 100:+.1f}".replace("-", "−")


def _question_number(messages) -> int:
    return int(messages[-1]["content"].rsplit("(#", 1)[-1].split(")")[0])


def test_agreeing_first_look_does_not_fail_a_sequential_guard(openai_server, fake_key, tmp_path):
    n = 200
    extra = ", sequential: {looks: 4}"
    path = write_suite(tmp_path, "http://127.0.0.1:1/v1", n=n, extra=GUARD.format(extra=extra))
    # The run's look order (harness.run.pipeline: by the hash of the example id), so the
    # zero-shot model's mistakes can be put after the first look of 50.
    test = load_dataset(load_suite(path)).test
    order = sorted(test, key=lambda e: hashlib.sha256(e.id.encode()).hexdigest())
    number = {e.id: int(str(e.inputs["text"]).rsplit("(#", 1)[-1].split(")")[0]) for e in test}
    later = [number[e.id] for e in order[50:]]
    wrong = set(later[::5])  # 30 mistakes spread over looks 2-4
    assert len(wrong) == 30 and not wrong & {number[e.id] for e in order[:50]}

    def answer(messages, body):
        right = intent_answer(messages, body)
        few_shot = "Q: " in messages[-1]["content"]
        if not few_shot and _question_number(messages) in wrong:
            return json.dumps({"intent": "exchange_rate" if "card" in right else "card_arrival"})
        return right

    server = openai_server(answer)
    path.write_text(path.read_text().replace("http://127.0.0.1:1/v1", server.url))
    result = invoke("run", path, "--json")
    s = json.loads(result.stdout)
    look = s["sequential"]
    v = s["guard"]["verdicts"]["few-shot"]
    assert look["look"] > 1, "decided on 50 agreeing pairs"
    assert v["verdict"] in ("pass", "inconclusive")
    seen = {number[e.id] for e in order[: look["n_examples"]]}
    mistakes = len(wrong & seen)
    m = look["n_examples"]
    lo, hi = (float(x) for x in newcombe_paired_ci((m - mistakes, mistakes, 0, 0), 0.95))
    assert v["delta"]["table"] == [m - mistakes, mistakes, 0, 0]
    assert (v["delta"]["ci_low"], v["delta"]["ci_high"]) == pytest.approx((lo, hi))
    shown = "shown — pass" if v["verdict"] == "pass" else "not shown — inconclusive"
    assert v["sentence"].startswith(
        f"few-shot: {_pts(mistakes / m)} pts accuracy [{_pts(lo)}, {_pts(hi)}] vs zero-shot; "
        f"target +5.0 {shown}"
    )
    how = (
        f"decided at look {look['look']} of 4 ({m:,} test examples), one-sided α = "
        f"{look['alpha']:.4g} spent at this look."
        if v["verdict"] == "pass"
        else f"not decided after all 4 looks ({m:,} test examples), one-sided α = "
        f"{look['alpha']:.4g} spent at the last look."
    )
    assert v["sentence"].endswith(f" Sequential: {how}"), v["sentence"]
    print(v["sentence"])
    assert result.exit_code == (0 if v["verdict"] == "pass" else 1)
    assert server.requests == 2 * m


def test_ten_agreeing_pairs_rule_nothing_out(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer)  # both variants always right
    path = write_suite(tmp_path, server.url, n=40, extra=GUARD.format(extra=""))
    result = invoke("run", path, "--limit", "10", "--json")
    s = json.loads(result.stdout)
    v = s["guard"]["verdicts"]["few-shot"]
    assert v["delta"]["table"] == [10, 0, 0, 0]
    # Newcombe at ten agreeing pairs: ± z²/(n + z²) = ±27.8 pts; never [+0.0, +0.0].
    assert v["delta"]["ci_high"] == pytest.approx(1.959964**2 / (10 + 1.959964**2), abs=1e-6)
    assert v["verdict"] == "inconclusive" and result.exit_code == 1
    assert v["sentence"].startswith(
        "few-shot: +0.0 pts accuracy [−27.8, +27.8] vs zero-shot; target +5.0 not shown — "
        "inconclusive"
    )
    assert "ruled out" not in invoke("run", path, "--limit", "10").output


def test_plan_refuses_a_foreign_or_failed_pilot(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer)
    ours = write_suite(tmp_path / "ours", server.url, n=40, extra=GUARD.format(extra=""))
    # Another suite, whose data has other labels, as the pilot.
    other = write_suite(tmp_path / "other", server.url, n=12, extra=GUARD.format(extra=""))
    other.write_text(other.read_text().replace("name: test-suite", "name: other-suite"))
    data = tmp_path / "other" / "data" / "test.csv"
    data.write_text(data.read_text().replace(",exchange_rate", ",fx_rate"))
    invoke("run", other, "--runs-dir", tmp_path / "runs")
    pilot = next((tmp_path / "runs" / "other-suite").iterdir())
    result = invoke("plan", ours, "--pilot", pilot)
    assert result.exit_code == 2, result.output
    run_id = json.loads((pilot / "summary.json").read_text())["run_id"]
    assert (
        f"--pilot {pilot}: run {run_id} is suite 'other-suite', not 'test-suite', and its labels "
        "are card_arrival, fx_rate, lost_or_stolen_card, not card_arrival, exchange_rate, "
        "lost_or_stolen_card — give a pilot run of this suite (or of one with the same task, labels "
        "and metric)"
    ) in " ".join(result.output.split())

    # A pilot of this very suite in which every call failed.
    dead = openai_server(intent_answer, statuses={"": 400})
    failed = write_suite(tmp_path / "failed", dead.url, n=40, extra=GUARD.format(extra=""))
    invoke("run", failed, "--runs-dir", tmp_path / "runs2")
    pilot = next((tmp_path / "runs2" / "test-suite").iterdir())
    run_id = json.loads((pilot / "summary.json").read_text())["run_id"]
    result = invoke("plan", ours, "--pilot", pilot)
    assert result.exit_code == 2, result.output
    assert (
        f"--pilot {pilot}: run {run_id}: every one of zero-shot's 40 calls failed — it "
        "answered no example, so it shows no spread; give a pilot run whose calls were answered"
    ) in " ".join(result.output.split())
