"""The registered protocol at the CLI (issue 27): each way a verdict's meaning could be changed
by editing what the guard did not register ends flagged, with the exact line that changed, or
continues its lineage; the honest workflow reads clean.

`harness run` against the scripted test server (tests/decide/test_guard_scenarios.py): question
#i is right when (37·i mod 100)/100 < the model's accuracy, so a 0.45 model's right answers are a
subset of a 0.5 model's, and the rows it misses are known.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_suite
from test_guard_scenarios import scripted

from harness.cli import main

VARIANTS = """
  - name: zero-shot
    model: openai/fake-base
    pricing: {{input_per_1m: {base_price}, output_per_1m: {base_price}}}{base_extra}
  - name: ft
    kind: fine-tuned
    model: openai/{ft_model}
    base_model: openai/fake-small
    training: {{cost_usd: 40}}
    pricing: {{input_per_1m: 1, output_per_1m: 1}}
"""

GUARD = """
baseline: zero-shot
guard:
  metric: accuracy
  test: non-inferiority
  margin: {margin}
  max_iterations: 3{guard_extra}
volume: {{monthly_requests: 100000}}
value: {{error_cost_usd: {error_cost}}}
"""


class Story:
    """One lineage's runs in one tmp_path: run(model, **edits) -> (exit code, output, summary)."""

    def __init__(self, tmp_path: Path, openai_server):
        self.tmp = tmp_path
        self.accuracy = {"fake-base": 0.5}
        self.server = openai_server(scripted(self.accuracy))
        self.tracking = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
        self.runs = tmp_path / "runs"

    def write(
        self,
        model="fake-ft-v1",
        *,
        margin=0.03,
        name="test-suite",
        n=60,
        drop=(),
        base_price=10.0,
        base_extra="",
        error_cost=0.4,
        guard_extra="",
        guard=None,
        variants=None,
    ) -> Path:
        variants = variants or VARIANTS.format(
            ft_model=model, base_price=base_price, base_extra=base_extra
        )
        extra = guard or GUARD.format(margin=margin, guard_extra=guard_extra, error_cost=error_cost)
        path = write_suite(self.tmp, self.server.url, n=n, variants=variants, extra=extra)
        path.write_text(path.read_text().replace("name: test-suite", f"name: {name}"))
        if drop:
            test = self.tmp / "data" / "test.csv"
            lines = test.read_text().splitlines()
            kept = [lines[0]] + [r for i, r in enumerate(lines[1:]) if i not in set(drop)]
            test.write_text("\n".join(kept) + "\n")
        return path

    def run(self, model="fake-ft-v1", *flags, acc=0.45, **edits):
        self.accuracy[model] = acc
        path = self.write(model, **edits)
        name = edits.get("name", "test-suite")
        args = ["run", str(path), "--runs-dir", str(self.runs), "--tracking-uri", self.tracking]
        res = CliRunner().invoke(main, [*args, *flags])
        found = sorted((self.runs / name).glob("*/summary.json"))
        summary = json.loads(found[-1].read_text()) if found else None
        return res.exit_code, res.output, summary

    def cli(self, *args):
        return CliRunner().invoke(main, [str(a) for a in args])


def verdict_line(output, key="ft"):
    return next(
        line
        for line in output.splitlines()
        if line.startswith(("PASS", "FAIL", "INCONCLUSIVE", "ABANDON")) and f": {key}: " in line
    )


def notes(output):
    return [line[len("note: ") :] for line in output.splitlines() if line.startswith("note: ")]


def amendments(output):
    return [n for n in notes(output) if n.startswith(("protocol", "baseline", "lineage"))]


# Rows of fake-ft at 0.45 that it gets wrong while the baseline (0.5) is right.
FT_MISSES = [i for i in range(60) if 0.45 <= (37 * i % 100) / 100 < 0.5]


def test_dropping_the_candidates_misses_is_an_amendment_and_continues_the_lineage(
    tmp_path, openai_server, fake_key
):
    s = Story(tmp_path, openai_server)
    code, out, first = s.run("fake-ft-v1")
    assert code == 1 and first["protocol"]["registered_now"] is True
    assert amendments(out) == []
    comment = tmp_path / "comment.md"
    code, out, second = s.run("fake-ft-v2", "--pr-comment", str(comment), acc=0.6, drop=FT_MISSES)
    v = second["guard"]["verdicts"]["ft"]
    assert second["lineage"] == first["lineage"]
    pr = comment.read_text()
    assert "| ft | 🚩 pass (not counted: amended protocol) |" in pr
    assert (
        "**Protocol:**\n"
        f"- protocol amendment (registered in run {first['run_id']}): test set: 60 examples → "
        "57 examples (3 removed) — a pass under it does not count until `harness register "
        'SUITE.yaml --amend --why "…"` accepts it\n'
    ) in pr
    assert v["status"] == "pass" and v["flags"] == ["amended"] and code == 1
    assert second["ledger_entry"]["variants"]["ft"]["honest_pass"] is False
    assert v["ledger"]["iterations"] == 2
    assert amendments(out) == [
        f"protocol amendment (registered in run {first['run_id']}): test set: 60 examples → "
        f"{60 - len(FT_MISSES)} examples ({len(FT_MISSES)} removed) — a pass under it does not "
        'count until `harness register SUITE.yaml --amend --why "…"` accepts it',
        f"lineage {first['lineage']} continued: 95% of the test examples are the registered ones",
    ]
    line = verdict_line(out)
    assert line.startswith(
        "PASS — flagged: amended protocol (test set); exit 1: a pass under a protocol amended "
        "since registration does not count: ft: "
    )
    assert line.endswith(
        " Amended protocol: test set: 60 examples → 57 examples (3 removed); a pass under it "
        "does not count until `harness register --amend` accepts it."
    )
    report = (s.runs / "test-suite" / second["run_id"] / "report.md").read_text()
    assert "test set: 60 examples → 57 examples (3 removed)" in report
    # Accepted, it is named on every later verdict and the pass counts.
    res = s.cli("register", tmp_path / "suite.yaml", "--runs-dir", s.runs, "--amend")
    assert res.exit_code == 2 and "--amend: say why" in res.output
    res = s.cli(
        "register", tmp_path / "suite.yaml", "--runs-dir", s.runs, "--amend", "--why", "dupes"
    )
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[1] == (
        "amendment: test set: 60 examples → 57 examples (3 removed)"
    )
    code, out, third = s.run("fake-ft-v2", acc=0.6, drop=FT_MISSES)
    v = third["guard"]["verdicts"]["ft"]
    assert code == 0 and v["flags"] == [] and amendments(out) == []
    assert " Protocol amended by hand at " in v["sentence"]
    assert v["sentence"].endswith(": dupes (test set: 60 examples → 57 examples (3 removed)).")


def test_renamed_suite_with_a_dropped_row_continues_the_lineage(tmp_path, openai_server, fake_key):
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    _, out, second = s.run("fake-ft-v2", name="renamed", drop=[7])
    led = second["guard"]["verdicts"]["ft"]["ledger"]
    assert second["lineage"] == first["lineage"]
    assert led["iterations"] == 2 and led["models"] == ["openai/fake-ft-v1", "openai/fake-ft-v2"]
    assert led["training_usd"] == 80.0
    assert (
        f"lineage {first['lineage']} continued: 98% of the test examples are the registered ones"
        in notes(out)
    )
    shown = s.cli(
        "ledger", tmp_path / "suite.yaml", "--runs-dir", s.runs, "--tracking-uri", s.tracking
    )
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert (
        lines[0]
        == f"ledger of renamed (lineage {first['lineage']}: the test data's hash): 2 run(s)"
    )
    assert lines[3].startswith("ft: 2 iteration(s), $80 spent")
    assert lines[4].startswith(
        f"protocol {first['protocol']['fingerprint']} registered by run {first['run_id']} at "
    )
    assert lines[4].endswith(
        ": 60 test examples (sha256 " + first["lineage"][:12] + "), correction holm"
    )
    assert lines[5] == (
        "  ft: ft vs zero-shot, non-inferiority on accuracy, margin 0.03, confidence 0.95; "
        "max_iterations 3"
    )
    assert lines[7] == (
        "  dollars: $ per 1M in/out tokens: zero-shot 10/10, ft 1/1; error cost $0.4; volume "
        "100,000 requests/month; training amortised over 12 months"
    )
    # The renamed suite's amendment names the suite that registered the lineage.
    _, out, _ = s.run("fake-ft-v3", name="renamed", drop=[7], margin=0.05)
    assert (
        f"protocol amendment (registered in run {first['run_id']} of suite test-suite): "
        "hypothesis ft margin: 0.03 → 0.05"
    ) in "\n".join(notes(out)), out


def test_a_protocol_registered_by_register_says_so_after_the_first_run(
    tmp_path, openai_server, fake_key
):
    s = Story(tmp_path, openai_server)
    path = s.write("fake-ft-v1", guard=GUARD.format(margin=0.03, guard_extra="", error_cost=0.4))
    res = s.cli("register", path, "--runs-dir", s.runs)
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[1].startswith("protocol ")
    assert " registered by harness register at " in res.output.splitlines()[1]
    _, _, first = s.run("fake-ft-v1")
    shown = s.cli("register", path, "--runs-dir", s.runs)
    assert f" registered by harness register (baseline scored by run {first['run_id']}) at " in (
        shown.output
    )
    _, out, _ = s.run("fake-ft-v2", margin=0.05)
    assert any(
        n.startswith("protocol amendment (registered by harness register): hypothesis ft margin: ")
        for n in notes(out)
    ), out


def test_a_weaker_baseline_endpoint_is_an_amendment(tmp_path, openai_server, fake_key):
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    weak = openai_server(scripted({"fake-base": 0.4}))
    host = s.server.url.split("//")[1].rstrip("/")
    weak_host = weak.url.split("//")[1].rstrip("/")
    code, out, second = s.run("fake-ft-v2", base_extra=f"\n    api_base: {weak.url}")
    v = second["guard"]["verdicts"]["ft"]
    assert v["status"] == "pass" and code == 1 and v["flags"] == ["amended"]
    assert amendments(out) == [
        f"protocol amendment (registered in run {first['run_id']}): baseline host: {host} → "
        f"{weak_host} (scores lower on the shared examples) — a pass under it does not count "
        'until `harness register SUITE.yaml --amend --why "…"` accepts it',
        "baseline zero-shot changed since the protocol was registered: it scores 40.0% on the "
        "60 shared examples, 50.0% in the registered run",
    ]


def test_a_shortened_baseline_prompt_that_scores_the_same_is_an_amendment(
    tmp_path, openai_server, fake_key
):
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    code, out, second = s.run("fake-ft-v2", base_extra="\n    system: 'JSON.'")
    assert [a["key"] for a in second["protocol"]["amendments"]] == ["baseline system"]
    assert second["protocol"]["amendments"][0]["new"] == (
        "'JSON.' (scores the same on the shared examples)"
    )
    assert code == 1


def test_a_better_baseline_is_stricter_not_flagged(tmp_path, openai_server, fake_key):
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1", acc=0.5)
    strong = openai_server(scripted({"fake-base": 0.55}))
    # A candidate right wherever the baseline is, and more: a pass under the paired interval
    # (one identical to the baseline has no discordant pair, and shows nothing at 3 pts).
    code, out, second = s.run("fake-ft-v2", acc=0.65, base_extra=f"\n    api_base: {strong.url}")
    p = second["protocol"]
    assert p["amendments"] == [] and [a["key"] for a in p["stricter"]] == ["baseline host"]
    assert code == 0, out


def test_dearer_baseline_or_cheaper_errors_are_amendments(tmp_path, openai_server, fake_key):
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    code, out, second = s.run("fake-ft-v2", acc=0.6, base_price=100.0, error_cost=0.04)
    assert [(a["key"], a["old"], a["new"]) for a in second["protocol"]["amendments"]] == [
        ("price of zero-shot ($ per 1M in/out)", "10/10", "100/100"),
        ("error_cost_usd", "0.4", "0.04"),
    ]
    assert code == 1 and second["guard"]["verdicts"]["ft"]["flags"] == ["amended"], out
    assert second["ledger_entry"]["variants"]["ft"]["honest_pass"] is False


def test_replaced_hypothesis_and_correction_none_are_amendments(tmp_path, openai_server, fake_key):
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    code, out, second = s.run(
        "fake-ft-v2", acc=0.5, guard_extra="\n  correction: none", margin=0.03
    )
    keys = [a["key"] for a in second["protocol"]["amendments"]]
    assert keys == ["correction"] and code == 1
    guard = GUARD.format(margin=0.03, guard_extra="", error_cost=0.4).replace(
        "metric: accuracy\n  test: non-inferiority",
        "metric: net_monthly_value\n  test: non-inferiority",
    )
    code, out, third = s.run("fake-ft-v3", acc=0.5, guard=guard)
    (a,) = third["protocol"]["amendments"]
    assert a["key"] == "hypothesis ft" and a["old"] == (
        "ft vs zero-shot, non-inferiority on accuracy, margin 0.03, confidence 0.95"
    )
    assert a["new"].startswith("replaced by ft vs zero-shot, non-inferiority on net_monthly_value")


def test_a_subset_of_the_family_keeps_its_alpha(tmp_path, openai_server, fake_key):
    s = Story(tmp_path, openai_server)
    variants = (
        VARIANTS.format(ft_model="fake-ft-v1", base_price=10.0, base_extra="")
        + """
  - name: ft2
    kind: fine-tuned
    model: openai/fake-other
    base_model: openai/fake-small
    training: {cost_usd: 40}
    pricing: {input_per_1m: 1, output_per_1m: 1}
"""
    )
    s.accuracy["fake-other"] = 0.5
    _, out, first = s.run("fake-ft-v1", acc=0.5, variants=variants)
    assert first["guard"]["verdicts"]["ft"]["holm"]["m"] == 2
    code, out, second = s.run(
        "fake-ft-v1", "--variant", "zero-shot", "--variant", "ft", acc=0.5, variants=variants
    )
    v = second["guard"]["verdicts"]["ft"]
    assert list(second["guard"]["verdicts"]) == ["ft"]
    assert v["holm"]["m"] == 2 and v["holm"]["alpha"] == pytest.approx(0.025 / 3 / 2)
    assert v["sentence"].endswith(
        " Not evaluated in this run: ft2 — tested at the Holm levels of the registered family "
        "of 2 hypotheses."
    )


def test_excluded_iterations_still_count(tmp_path, openai_server, fake_key):
    s = Story(tmp_path, openai_server)
    ids = [s.run(f"fake-ft-v{k}")[2]["run_id"] for k in (1, 2)]
    for run_id in ids:
        res = s.cli("ledger", "exclude", run_id, "--runs-dir", s.runs, "--why", "bad prompt")
        assert res.exit_code == 0, res.output
    code, out, third = s.run("fake-ft-v3")
    led = third["guard"]["verdicts"]["ft"]["ledger"]
    assert led["iterations"] == 3 and led["training_usd"] == 120.0
    assert [r["model"] for r in led["history"]] == ["openai/fake-ft-v3"]
    assert third["guard"]["verdicts"]["ft"]["verdict"] == "abandon" and code == 1
    shown = s.cli(
        "ledger", tmp_path / "suite.yaml", "--runs-dir", s.runs, "--tracking-uri", s.tracking
    )
    assert "ft: 3 iteration(s), $120 spent" in shown.output
    code, out, fourth = s.run("fake-ft-v4", acc=0.5)
    assert fourth["guard"]["verdicts"]["ft"]["verdict"] == "abandon"
    assert "4 of 3 iterations without a pass" in verdict_line(out)


def test_honest_workflow_reads_clean(tmp_path, openai_server, fake_key):
    s = Story(tmp_path, openai_server)
    s.write("fake-ft-v1")
    res = s.cli("register", tmp_path / "suite.yaml", "--runs-dir", s.runs)
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0].startswith("registered the protocol of lineage ")
    code, out, first = s.run("fake-ft-v1", acc=0.6)
    assert code == 0, out
    assert amendments(out) == []
    line = verdict_line(out)
    assert line.startswith("PASS: ft: +10.0 pts accuracy [+1.8, +17.9] vs zero-shot; ")
    assert (
        " Test-set reuse: up to 3 iterations are selected on these test examples, so each is "
        "tested at one-sided α = 0.025/3 = 0.008333 (p < 0.001)." in line
    )
    code, out, again = s.run("fake-ft-v1", acc=0.6)  # a re-run
    assert code == 0 and amendments(out) == []
    code, out, more = s.run("fake-ft-v1", acc=0.6, n=72, margin=0.02)  # more examples, tighter
    assert code == 0, out
    assert amendments(out) == [
        "protocol: stricter than registered (recorded): test set: 60 examples → 72 examples "
        "(12 added)",
        "protocol: stricter than registered (recorded): hypothesis ft margin: 0.03 → 0.02",
    ]
    res = s.cli("register", tmp_path / "suite.yaml", "--runs-dir", s.runs)
    assert (
        res.exit_code == 0 and "no amendment: stricter changes need no registration" in res.output
    )


def test_baseline_drift_is_said(tmp_path, openai_server, fake_key):
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1", acc=0.5)
    s.accuracy["fake-base"] = 0.3
    code, out, second = s.run("fake-ft-v2", "--no-cache", acc=0.3)
    (drift,) = [n for n in notes(out) if n.startswith("baseline drift")]
    assert drift.startswith(
        "baseline drift: zero-shot scores 30.0% on the 60 shared examples, outside its registered interval ["
    )
    assert drift.endswith(
        f"(50.0% in run {first['run_id']}) — same definition, so the endpoint or model behind it changed"
    )


def test_fewer_max_iterations_is_an_amendment(tmp_path, openai_server, fake_key):
    # Each iteration is tested at α / max_iterations: lowering it after registration raises
    # every later iteration's level, so it cannot be "stricter".
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1", acc=0.6)
    guard = GUARD.format(margin=0.03, guard_extra="", error_cost=0.4).replace(
        "max_iterations: 3", "max_iterations: 2"
    )
    code, out, second = s.run("fake-ft-v2", acc=0.6, guard=guard)
    assert second["protocol"]["stricter"] == []
    assert [(a["key"], a["old"], a["new"]) for a in second["protocol"]["amendments"]] == [
        ("hypothesis ft max_iterations", "3", "2")
    ]
    assert code == 1, verdict_line(out)
    assert "amended" in second["guard"]["verdicts"]["ft"]["flags"], verdict_line(out)


def test_a_deleted_protocol_file_is_not_a_silent_fresh_start(tmp_path, openai_server, fake_key):
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    (s.runs / ".protocol" / f"{first['lineage']}.json").unlink()
    code, out, second = s.run("fake-ft-v2", acc=0.6, drop=FT_MISSES)
    assert second["lineage"] == first["lineage"]
    (a,) = second["protocol"]["amendments"]
    assert a["key"] == "protocol" and a["old"] == (
        f"{first['protocol']['fingerprint']} (registered in run {first['run_id']})"
    )
    assert a["new"] == (
        f"missing from {s.runs / '.protocol' / (first['lineage'] + '.json')}; registered afresh "
        "from this run — restore the file to continue the registered protocol"
    )
    assert code == 1 and second["guard"]["verdicts"]["ft"]["flags"] == ["amended"], out


def test_a_protocol_file_edited_by_hand_is_an_amendment(tmp_path, openai_server, fake_key):
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    path = s.runs / ".protocol" / f"{first['lineage']}.json"
    data = json.loads(path.read_text())
    data["examples"] = [f for i, f in enumerate(data["examples"]) if i not in FT_MISSES]
    path.write_text(json.dumps(data))
    code, out, second = s.run("fake-ft-v2", acc=0.6, drop=FT_MISSES)
    keys = [a["key"] for a in second["protocol"]["amendments"]]
    assert keys == ["protocol"] and code == 1
    assert second["protocol"]["amendments"][0]["new"].startswith("edited by hand")
    assert second["guard"]["verdicts"]["ft"]["flags"] == ["amended"]


def test_the_baseline_endpoint_is_its_resolved_host_and_path(tmp_path, openai_server, monkeypatch):
    # Another path on the same host (a proxy serving a weaker model) and an `${env:…}` host that
    # now resolves elsewhere are other endpoints; the variable's value is never written.
    s = Story(tmp_path, openai_server)
    monkeypatch.setenv("BASE_HOST", "models.internal:8000")
    path = s.write(base_extra="\n    api_base: http://${env:BASE_HOST}/strong/v1")
    res = s.cli("register", path, "--runs-dir", s.runs)
    assert res.exit_code == 0, res.output
    (stored,) = (s.runs / ".protocol").glob("*.json")
    assert "models.internal" not in res.output + stored.read_text()
    path.write_text(path.read_text().replace("/strong/v1", "/weak/v1"))
    res = s.cli("register", path, "--runs-dir", s.runs)
    assert res.exit_code == 1, res.output
    (line,) = [x for x in res.output.splitlines() if x.startswith("amendment: baseline host: ")]
    assert "${env:BASE_HOST}/strong/v1" in line and "${env:BASE_HOST}/weak/v1" in line
    path.write_text(path.read_text().replace("/weak/v1", "/strong/v1"))
    monkeypatch.setenv("BASE_HOST", "cheap-models.internal:8000")
    res = s.cli("register", path, "--runs-dir", s.runs)
    assert res.exit_code == 1, res.output
    assert "cheap-models" not in res.output
    assert any(x.startswith("amendment: baseline host: ") for x in res.output.splitlines())


def test_the_baseline_response_format_and_retriever_are_registered(tmp_path, openai_server):
    # What the baseline is asked to answer in, and a RAG baseline's own retriever, decide its
    # score as much as its prompt does.
    s = Story(tmp_path, openai_server)
    path = s.write()
    assert s.cli("register", path, "--runs-dir", s.runs).exit_code == 0
    path.write_text(
        path.read_text().replace(
            "model: openai/fake-base",
            "model: openai/fake-base\n    response_format: json_object",
            1,
        )
    )
    res = s.cli("register", path, "--runs-dir", s.runs)
    assert res.exit_code == 1, res.output
    assert any(
        x.startswith("amendment: baseline response_format: 'null' → 'json_object'")
        for x in res.output.splitlines()
    ), res.output


def test_a_new_test_set_under_the_same_suite_name_is_not_a_replaced_protocol(
    tmp_path, openai_server, fake_key
):
    # Runs of the suite's other lineage are in its history: their protocol is not this one's.
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    _, _, second = s.run("fake-ft-v2", drop=range(40))
    _, _, third = s.run("fake-ft-v3", drop=range(40))
    assert second["lineage"] != first["lineage"] == first["protocol"]["lineage"]
    assert third["lineage"] == second["lineage"]
    assert [a["key"] for a in second["protocol"]["amendments"]] == []
    assert [a["key"] for a in third["protocol"]["amendments"]] == []


def test_check_says_an_amendment_before_any_call(tmp_path, openai_server, fake_key):
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    calls = s.server.requests
    path = s.write("fake-ft-v2", drop=FT_MISSES, base_price=20.0)
    res = s.cli("check", path, "--runs-dir", s.runs)
    fp = first["protocol"]["fingerprint"]
    tail = ' — a pass under it is flagged until `harness register SUITE.yaml --amend --why "…"` accepts it'
    lines = [line for line in res.output.splitlines() if "protocol" in line]
    assert lines == [
        f"  ! protocol: amendment to the registered protocol {fp}: test set: 60 examples → 57 "
        "examples (3 removed)" + tail,
        f"  ! protocol: amendment to the registered protocol {fp}: price of zero-shot ($ per 1M "
        "in/out): 10/10 → 20/20" + tail,
    ], res.output
    assert res.exit_code == 0 and s.server.requests == calls  # no model call
    # The suite as registered reads clean.
    path = s.write("fake-ft-v2")
    res = s.cli("check", path, "--runs-dir", s.runs)
    assert f"  ✓ protocol: matches the registered protocol {fp}" in res.output.splitlines()


def test_two_first_runs_at_once_register_one_protocol(
    tmp_path, openai_server, fake_key, monkeypatch
):
    # Both runs of a fresh lineage read "no protocol" before either wrote one: the second to
    # write must be judged against the first's registration, not overwrite it.
    from harness.decide import protocol

    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    path = s.runs / ".protocol" / f"{first['lineage']}.json"
    registered = path.read_bytes()
    stale = iter([None])
    real_load = protocol.load
    monkeypatch.setattr(protocol, "load", lambda *a: next(stale, None) or real_load(*a))
    code, out, second = s.run("fake-ft-v2", acc=0.6, drop=FT_MISSES)
    assert path.read_bytes() == registered
    assert second["protocol"]["registered_now"] is False
    assert second["protocol"]["registered_run_id"] == first["run_id"]
    assert [a["key"] for a in second["protocol"]["amendments"]] == ["test set"]
    assert code == 1 and second["guard"]["verdicts"]["ft"]["flags"] == ["amended"], out


def test_save_first_lets_exactly_one_registration_win(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from harness.decide.protocol import load, save_first

    path = write_suite(tmp_path, "http://127.0.0.1:9/v1", n=5)
    from harness.decide.protocol import build
    from harness.suite import load_suite

    suite = load_suite(path)
    drafts = [build(suite, "lin", [f"e{i}"], None, f"run-{i}") for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda p: save_first(tmp_path / "runs", p), drafts))
    kept = load(tmp_path / "runs", "lin")
    assert {w.run_id for w in won} == {kept.run_id}
    assert sum(w is d for w, d in zip(won, drafts, strict=True)) == 1
    assert list((tmp_path / "runs" / ".protocol").iterdir()) == [
        tmp_path / "runs" / ".protocol" / "lin.json"
    ]


def test_save_first_without_hard_links_still_keeps_the_first(tmp_path, monkeypatch):
    import os

    from harness.decide.protocol import build, load, save_first
    from harness.suite import load_suite

    def no_links(*a):
        raise PermissionError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    suite = load_suite(write_suite(tmp_path, "http://127.0.0.1:9/v1", n=5))
    first, second = (build(suite, "lin", ["e"], None, f"run-{i}") for i in (1, 2))
    assert save_first(tmp_path / "runs", first) is first
    assert save_first(tmp_path / "runs", second).run_id == "run-1"
    assert load(tmp_path / "runs", "lin").run_id == "run-1"
    assert sorted(p.name for p in (tmp_path / "runs" / ".protocol").iterdir()) == ["lin.json"]


def test_an_amended_protocol_is_registered_by_register_not_by_the_run_that_rescored_it(
    tmp_path, openai_server, fake_key
):
    # The tutorial's path: another suite's run registered the lineage, `register --amend`
    # accepted a changed baseline, and the next run scored it. That run registered nothing.
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    path = s.write("fake-ft-v1", base_extra="\n    system: 'JSON.'")
    res = s.cli("register", path, "--runs-dir", s.runs, "--amend", "--why", "a shorter prompt")
    assert res.exit_code == 0, res.output
    amended = next(line for line in res.output.splitlines() if line.startswith("protocol "))
    assert " registered by harness register at " in amended, res.output
    code, out, second = s.run("fake-ft-v1", base_extra="\n    system: 'JSON.'")
    assert amendments(out) == [], out
    shown = s.cli("register", path, "--runs-dir", s.runs).output
    assert f" registered by harness register (baseline scored by run {second['run_id']}) at " in (
        shown
    ), shown
    assert f"registered by run {second['run_id']}" not in shown


def test_a_protocol_gone_with_its_runs_folder_is_an_amendment_register_can_accept(
    tmp_path, openai_server, fake_key
):
    # runs/ moved aside, MLflow kept, the baseline dearer: the runs MLflow holds recorded the
    # old protocol. `harness register` says so and `--amend` is the way on (it used to register
    # the new one silently, and then say "nothing changed" while every run stayed flagged).
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    s.runs.rename(tmp_path / "runs-old")
    path = s.write("fake-ft-v1", base_price=20.0)
    track = ("--runs-dir", s.runs, "--tracking-uri", s.tracking)
    res = s.cli("register", path, *track)
    old = first["protocol"]["fingerprint"]
    assert res.exit_code == 1, res.output
    assert f"amendment: protocol: {old} (recorded by run {first['run_id']}) → replaced by " in (
        res.output
    )
    code, out, _ = s.run("fake-ft-v1", acc=0.6, base_price=20.0)
    assert code == 1 and any(n.startswith("protocol amendment") for n in amendments(out)), out
    res = s.cli("register", path, *track, "--amend", "--why", "a fresh start")
    assert res.exit_code == 0, res.output
    code, out, _ = s.run("fake-ft-v1", acc=0.6, base_price=20.0)
    assert code == 0 and amendments(out) == [], out
    assert "Protocol amended by hand at " in verdict_line(out)


def test_check_names_the_other_suite_that_registered_the_lineage(tmp_path, openai_server, fake_key):
    # The tutorial's suite after the quickstart: same test set, another suite's registration.
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    path = s.write("fake-ft-v1", name="another", base_price=20.0)
    res = s.cli("check", path, "--runs-dir", s.runs)
    fp = first["protocol"]["fingerprint"]
    assert (
        f"  ! protocol: amendment to the protocol {fp} registered by suite test-suite: price of "
        "zero-shot ($ per 1M in/out): 10/10 → 20/20"
    ) in res.output, res.output


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"lineage": ', "not JSON"),
        ('{"lineage": 3}', "not a protocol"),
        ("[1, 2]", "not a protocol"),
    ],
)
def test_an_unreadable_protocol_file_is_named_never_replaced_or_a_traceback(
    tmp_path, openai_server, fake_key, content, why
):
    # A torn or hand-broken runs/.protocol file read as "none registered": `register` said it
    # registered the lineage (writing nothing), `check` and `ledger` were silent, and a wrong
    # shape was a pydantic traceback — after the run's calls.
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    path = s.runs / ".protocol" / f"{first['lineage']}.json"
    path.write_text(content)
    suite = s.write("fake-ft-v2")
    calls = s.server.requests
    expected = (
        f"Error: {path}: {why} — the lineage's registered protocol cannot be read; restore the "
        "file (from a backup or version control), or move it aside to register the lineage "
        "afresh (the runs it registered then name the replaced protocol as an amendment)"
    )
    for args in (
        ["register", suite, "--runs-dir", s.runs],
        ["check", suite, "--runs-dir", s.runs],
        ["ledger", suite, "--runs-dir", s.runs, "--tracking-uri", s.tracking],
        ["run", suite, "--runs-dir", s.runs, "--tracking-uri", s.tracking],
    ):
        res = s.cli(*args)
        assert res.exit_code == 2, (args[0], res.output, res.exception)
        assert expected in res.output.splitlines(), (args[0], res.output)
        assert path.read_text() == content
    assert s.server.requests == calls  # the run stopped before any call
    assert len(list((s.runs / "test-suite").glob("*/summary.json"))) == 1


def test_check_and_register_name_another_suites_registration(tmp_path, openai_server, fake_key):
    # Two suites on one test set share a lineage: the second suite's "amendments" are to the
    # first suite's registration, which `run` said and `check` / `register` did not.
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    fp, lineage = first["protocol"]["fingerprint"], first["lineage"]
    path = s.write("fake-ft-v1", name="other-suite", margin=0.05)
    res = s.cli("check", path, "--runs-dir", s.runs)
    assert (
        f"  ! protocol: amendment to the protocol {fp} registered by suite test-suite: "
        "hypothesis ft margin: 0.03 → 0.05 — a pass under it is flagged until "
        '`harness register SUITE.yaml --amend --why "…"` accepts it'
    ) in res.output.splitlines(), res.output
    res = s.cli("register", path, "--runs-dir", s.runs)
    assert res.output.splitlines()[0] == (
        f"lineage {lineage}: 1 amendment(s) to the registered protocol {fp} (registered by "
        "suite test-suite):"
    )


def test_check_names_a_deleted_protocol_file_before_any_call(tmp_path, openai_server, fake_key):
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    path = s.runs / ".protocol" / f"{first['lineage']}.json"
    path.unlink()
    res = s.cli("check", s.write("fake-ft-v1"), "--runs-dir", s.runs)
    assert (
        f"  ! protocol: amendment to the registered protocol {first['protocol']['fingerprint']} "
        f"(registered in run {first['run_id']}): missing from {path} — the next run registers "
        "afresh and its pass is flagged; restore the file to continue the registered protocol"
    ) in res.output.splitlines(), res.output


def test_concurrent_saves_of_one_protocol_never_crash(tmp_path):
    # Two runs after `harness register` both give the registration its baseline scores (a plain
    # save): with one shared temp name, the slower one's rename found its file gone.
    from concurrent.futures import ThreadPoolExecutor

    from harness.decide.protocol import build, load, save
    from harness.suite import load_suite

    suite = load_suite(write_suite(tmp_path, "http://127.0.0.1:9/v1", n=5))
    drafts = [build(suite, "lin", ["e"], None, f"run-{i}") for i in range(200)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: save(tmp_path / "runs", p), drafts))
    assert load(tmp_path / "runs", "lin").run_id.startswith("run-")
    assert sorted(p.name for p in (tmp_path / "runs" / ".protocol").iterdir()) == ["lin.json"]


def test_register_over_a_deleted_protocol_file(tmp_path, openai_server, fake_key):
    # The same protocol registered again is the same protocol (same fingerprint): later runs
    # read clean. Another one in its place is an amendment the runs' records name, which
    # `--amend` accepts openly (restoring the file is the other way out).
    s = Story(tmp_path, openai_server)
    _, _, first = s.run("fake-ft-v1")
    path = s.runs / ".protocol" / f"{first['lineage']}.json"
    path.unlink()
    res = s.cli("register", s.write("fake-ft-v1"), "--runs-dir", s.runs)
    assert res.exit_code == 0, res.output
    code, out, again = s.run("fake-ft-v2", acc=0.6)
    assert again["protocol"]["fingerprint"] == first["protocol"]["fingerprint"]
    assert amendments(out) == [] and code == 0, out
    path.unlink()
    res = s.cli("register", s.write("fake-ft-v2", margin=0.05), "--runs-dir", s.runs)
    assert res.exit_code == 1, res.output
    assert (
        f"amendment: protocol: {first['protocol']['fingerprint']} (recorded by run "
        f"{first['run_id']}) → replaced by "
    ) in res.output, res.output
    res = s.cli(
        "register",
        s.write("fake-ft-v2", margin=0.05),
        "--runs-dir",
        s.runs,
        "--amend",
        "--why",
        "file lost, margin widened on purpose",
    )
    assert res.exit_code == 0, res.output
