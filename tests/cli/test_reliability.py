"""Reliability and security through the CLI: one redaction of everything harness prints or writes,
batch output read line by line, storage failures as exit 4, provider numbers validated, bad
settings refused before any call, terminal control sequences stripped, malformed replies retried
once, truncated answers warned about, `harness ui` stopped by SIGTERM, artifacts beside a copied
store."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import intent_answer, write_suite

from harness.cli import main

CANARY_ENV = "sk-canaryENV0123456789abcdef"
CANARY_HEADER = "hdrCANARY-5f3a9c1e77"
CANARY_QUERY = "qryCANARY-88d1c0ffee"
CANARIES = (CANARY_ENV, CANARY_HEADER, CANARY_QUERY)


@pytest.fixture(autouse=True)
def _isolated(isolated_cwd):
    """MLflow store and runs/ stay in the test's tmp_path."""


def _cli(*args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


def _no_canary(text: str, where: str) -> None:
    for c in CANARIES:
        assert c not in text, f"{c} leaked into {where}"


def _grep_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for c in CANARIES:
                assert c.encode() not in data, f"{c} leaked into {path}"


# ---------------------------------------------------------------- 2. one redaction


def test_finetune_never_prints_a_key_a_401_echoes(openai_server, tmp_path, monkeypatch):
    from finetune.test_finetune import answer
    from finetune.test_finetune import write_suite as ft_suite

    monkeypatch.setenv("OPENAI_API_KEY", CANARY_ENV)
    server = openai_server(answer, echo_auth=True)
    suite = ft_suite(tmp_path, server.url)
    result = _cli("finetune", suite, "--poll-interval", "0")
    assert result.exit_code == 3, result.output
    assert "Incorrect API key provided: Bearer ***" in result.output
    _no_canary(result.output, "the terminal")
    _grep_tree(tmp_path)


def test_a_canary_key_reaches_no_output_and_no_file(openai_server, tmp_path, monkeypatch):
    """Literal header values, a key in api_base's query and an environment key, through a
    good run, failing runs (live and --batch), check, doctor, ledger and report."""
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_ENV)
    server = openai_server(intent_answer, batch_delay=0.05)
    variants = f"""
  - name: zero-shot
    params:
      temperature: 0
      max_tokens: 16
      extra_headers: {{Ocp-Apim-Subscription-Key: {CANARY_HEADER}, X-Auth: {CANARY_HEADER}x}}
  - name: keyed
    api_base: {server.url}?key={CANARY_QUERY}
"""
    suite = write_suite(tmp_path, server.url, n=6, variants=variants)
    outputs = []
    comment, junit = tmp_path / "comment.md", tmp_path / "junit.xml"
    good = _cli("run", suite, "--variant", "zero-shot", "--pr-comment", comment, "--junit", junit)
    assert good.exit_code == 0, good.output
    assert comment.read_text() and junit.read_text()
    outputs.append(good.output)
    # check names the literal credentials (they are redacted wherever they are written).
    check = _cli("check", suite)
    assert check.exit_code == 0, check.output
    assert "variants[0].params.extra_headers.Ocp-Apim-Subscription-Key" in check.output
    assert "variants[1].api_base" in check.output
    outputs.append(check.output)
    server.echo_auth = True
    for args in (
        ("run", suite, "--variant", "zero-shot", "--no-cache"),
        ("run", suite, "--variant", "keyed", "--no-cache"),
        ("run", suite, "--variant", "zero-shot", "--no-cache", "--batch", "--batch-poll", "0.01"),
        ("doctor", suite),
        ("ledger", suite),
    ):
        result = _cli(*args)
        assert "Traceback" not in result.output
        outputs.append(result.output)
    for run_dir in (tmp_path / "runs").glob("*/*"):
        outputs.append(_cli("report", run_dir).output)
    for i, text in enumerate(outputs):
        _no_canary(text, f"command output #{i}")
    suite_yaml = next((tmp_path / "runs").glob("*/*/suite.yaml")).read_text()
    assert "Ocp-Apim-Subscription-Key: '***'" in suite_yaml
    assert "?key=***" in suite_yaml
    _grep_tree(tmp_path / "runs")
    _grep_tree(tmp_path / "mlruns")  # the SQLite store (params, tags) and every artifact
    db = os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")
    _grep_tree(Path(db).parent)
    _no_canary(comment.read_text() + junit.read_text(), "the CI outputs")


# ---------------------------------------------------------------- 3. batch output line by line


def test_a_bad_or_duplicated_batch_line_is_that_examples_error(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer, batch_delay=0.05)
    server.batch_api.output_lines = {"(#2)": '{"custom_id": "torn', "(#4)": "{line}\n{line}"}
    suite = write_suite(tmp_path, server.url, n=6)
    args = ("run", suite, "--variant", "zero-shot", "--batch", "--batch-poll", "0.01")
    first = _cli(*args)
    assert first.exit_code == 3, first.output  # 2 of 6 failed: above max_error_rate
    assert "Traceback" not in first.output
    records = _records(tmp_path, "zero-shot")
    errors = {r["id"]: r["error"] for r in records if r["error"]}
    assert len(records) == 6 and len(errors) == 2
    assert sum("duplicated custom_id" in e for e in errors.values()) == 1
    assert sum("no answer in batch" in e or "not valid JSON" in e for e in errors.values()) == 1
    server.batch_api.output_lines = {}
    resumed = _cli(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert server.batch_api.created == 2  # the two failed examples, in a batch of their own


# ---------------------------------------------------------------- 4. storage failures: exit 4


def test_an_unwritable_junit_or_pr_comment_path_is_exit_4(
    openai_server, fake_key, tmp_path, monkeypatch
):
    import harness.run.conclude as conclude

    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=3)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for flag in ("--junit", "--pr-comment"):
        # A path that can never be written is refused before any call.
        result = _cli("run", suite, "--variant", "zero-shot", flag, blocker / "out.xml")
        assert result.exit_code == 2, result.output
        assert f"{blocker} is a file, not a directory" in result.output
    assert server.requests == 0

    def denied(summary, path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(conclude, "write_junit", denied)
    monkeypatch.setattr(conclude, "write_pr_comment", denied)
    for flag in ("--junit", "--pr-comment"):
        out = tmp_path / f"out{flag}.txt"
        result = _cli("run", suite, "--variant", "zero-shot", flag, out)
        assert result.exit_code == 4, result.output
        assert f"Error: could not write {flag} {out}: Permission denied" in result.output
        assert "nothing paid is lost" in result.output and "--resume" in result.output
    assert server.requests == 3  # the second run's answers came from the cache


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_disk_full_or_read_only_after_the_calls_is_exit_4(
    openai_server, fake_key, tmp_path, monkeypatch, code
):
    import harness.run.conclude as conclude

    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=3)
    real = conclude.write_json_atomic

    def full(path, *a, **k):
        if Path(path).name == "summary.json":
            raise OSError(code, os.strerror(code), str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(conclude, "write_json_atomic", full)
    result = _cli("run", suite, "--variant", "zero-shot")
    assert result.exit_code == 4, result.output
    assert "Error: could not write results" in result.output
    assert os.strerror(code) in result.output and "--resume" in result.output
    assert server.requests == 3
    monkeypatch.setattr(conclude, "write_json_atomic", real)  # space freed
    again = _cli("run", suite, "--variant", "zero-shot", "--resume")
    assert again.exit_code == 0, again.output
    assert server.requests == 3  # nothing paid twice


# ---------------------------------------------------------------- 5. provider numbers


def test_negative_or_absurd_usage_is_unknown_never_a_refund(openai_server, fake_key, tmp_path):
    bad = {"prompt_tokens": -1000000, "completion_tokens": 5, "total_tokens": 0}
    server = openai_server(
        intent_answer,
        bodies={"(#1)": {"usage": bad}, "(#2)": {"usage": {**bad, "prompt_tokens": 10**13}}},
    )
    priced = "\n  - name: zero-shot\n    pricing: {input_per_1m: 1.0, output_per_1m: 2.0}\n"
    suite = write_suite(tmp_path, server.url, n=3, variants=priced)
    result = _cli("run", suite, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    v = summary["variants"]["zero-shot"]
    assert v["cost_usd"] is None or v["cost_usd"] >= 0
    records = _records(tmp_path, "zero-shot")
    costs = {r["id"]: r["cost_usd"] for r in records}
    assert sorted(c is None for c in costs.values()) == [False, True, True]
    assert all(c is None or c >= 0 for c in costs.values())
    assert "implausible token usage" in " ".join(v["notes"])


def _records(root: Path, variant: str) -> list[dict]:
    path = next((root / "runs").glob(f"*/*/results/{variant}.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_negative_trained_tokens_cost_unknown_not_negative(openai_server, fake_key, tmp_path):
    from finetune.test_finetune import answer
    from finetune.test_finetune import write_suite as ft_suite

    server = openai_server(answer)
    suite = ft_suite(tmp_path, server.url)
    real_tick = server.fine_tuning._tick

    def tick(job_id):
        real_tick(job_id)
        job = server.fine_tuning.jobs[job_id]
        if job["status"] == "succeeded":
            job["trained_tokens"] = -1e9

    server.fine_tuning._tick = tick
    result = _cli("finetune", suite, "--poll-interval", "0")
    assert result.exit_code == 0, result.output
    assert "training cost unknown" in result.output
    assert "$-" not in result.output and "-$" not in result.output
    again = _cli("run", suite, "--json")
    assert again.exit_code in (0, 1), again.output
    assert "Traceback" not in again.output


# ---------------------------------------------------------------- 6. refused before any call

BAD_SETTINGS = {
    "inf price": (
        "\n  - name: zero-shot\n    pricing: {input_per_1m: .inf, output_per_1m: 1}\n",
        "",
        "variants[0].pricing.input_per_1m",
    ),
    "absurd price": (
        "\n  - name: zero-shot\n    pricing: {input_per_1m: 1e308, output_per_1m: 1}\n",
        "",
        "variants[0].pricing.input_per_1m",
    ),
    "inf error cost": (
        None,
        "volume: {monthly_requests: 1000}\nvalue: {error_cost_usd: .inf}\n",
        "value.error_cost_usd",
    ),
    "bad env name": (
        "\n  - name: zero-shot\n    params: {api_key: '${env:bad-name}'}\n",
        "",
        "variants[0].params.api_key",
    ),
    "empty env ref": (
        "\n  - name: zero-shot\n    params: {api_key: '${env:}'}\n",
        "",
        "variants[0].params.api_key",
    ),
    "empty guard list": (None, "guard: []\n", "guard"),
    "duplicate hypotheses": (
        None,
        "guard:\n  - {metric: accuracy, margin: 0.1, candidate: few-shot}\n"
        "  - {metric: accuracy, margin: 0.1, candidate: few-shot}\n",
        "guard",
    ),
    "huge integer": (
        "\n  - name: zero-shot\n    repeats: " + "9" * 400 + "\n",
        "",
        "integer",
    ),
    "deep yaml": (None, "description: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_bad_settings_are_refused_before_any_call(openai_server, fake_key, tmp_path, case):
    variants, extra, expected = BAD_SETTINGS[case]
    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=3, variants=variants, extra="\n" + extra)
    for command in ("check", "run"):
        result = _cli(command, suite)
        assert result.exit_code == 2, (command, result.output)
        assert result.output.startswith("Error: ") and expected in result.output, result.output
    assert server.requests == 0


def test_an_unset_or_empty_env_reference_stops_run_and_warns_in_check(
    openai_server, fake_key, tmp_path, monkeypatch
):
    monkeypatch.setenv("HARNESS_EMPTY_KEY", "")
    server = openai_server(intent_answer)
    variants = "\n  - name: zero-shot\n    params: {api_key: '${env:HARNESS_EMPTY_KEY}'}\n"
    suite = write_suite(tmp_path, server.url, n=3, variants=variants)
    run = _cli("run", suite)
    assert run.exit_code == 2
    assert "${env:HARNESS_EMPTY_KEY} is not set" in run.output or "is empty" in run.output
    check = _cli("check", suite)
    assert "HARNESS_EMPTY_KEY" in check.output
    assert server.requests == 0


def test_a_special_file_as_data_is_refused(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=3)
    test = tmp_path / "data" / "test.csv"
    test.unlink()
    test.symlink_to("/dev/zero")
    for command in ("check", "run"):
        result = _cli(command, suite)
        assert result.exit_code == 2, result.output
        assert "is not a regular file" in result.output
    assert server.requests == 0


# ---------------------------------------------------------------- 7. terminal control sequences

OSC_TITLE = "\x1b]0;pwned-title\x07"
OSC_CLIPBOARD = "\x1b]52;c;ZWNobyBwd25lZA==\x1b\\"


def test_provider_text_is_printed_without_control_sequences(openai_server, fake_key, tmp_path):
    from finetune.test_finetune import answer
    from finetune.test_finetune import write_suite as ft_suite

    server = openai_server(answer, finetune_lives=["failed"])
    suite = ft_suite(tmp_path, server.url)
    real_event = server.fine_tuning._event

    def event(job_id, level, message, data=None):
        real_event(job_id, level, f"{OSC_TITLE}{message}{OSC_CLIPBOARD}\x9b31m\x07", data)

    server.fine_tuning._event = event
    result = _cli("finetune", suite, "--poll-interval", "0")
    assert result.exit_code == 3, result.output
    assert "Fine-tuning job started" in result.output
    assert "\x1b" not in result.output and "\x9b" not in result.output
    assert "\x07" not in result.output and "pwned" not in result.output


# ---------------------------------------------------------------- 8. retries, truncation, ui


def test_a_malformed_200_is_retried_at_most_once(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer, rate_malformed=1.0)
    suite = write_suite(tmp_path, server.url, n=4)
    result = _cli("run", suite, "--variant", "zero-shot")
    assert result.exit_code == 3, result.output
    assert server.requests <= 8  # 4 examples, one retry each at most


def test_truncated_answers_are_counted_and_warned(openai_server, fake_key, tmp_path):
    server = openai_server(
        intent_answer,
        bodies={
            "(#": {
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": '{"intent": "card'},
                        "finish_reason": "length",
                    }
                ]
            }
        },
    )
    suite = write_suite(tmp_path, server.url, n=3)
    result = _cli("run", suite, "--variant", "zero-shot")
    assert "3 answer(s) were cut at max_tokens (finish_reason: length)" in result.output


def test_ui_stops_its_children_on_sigterm(tmp_path):
    fake = tmp_path / "fake-mlflow"
    # A stand-in `mlflow ui` that starts a worker of its own, as uvicorn does.
    fake.write_text("#!/bin/sh\nsleep 300 &\necho $! > " + str(tmp_path / "child.pid") + "\nwait\n")
    fake.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = (
        "import sys, harness.track.store as s, harness.cli.ui as u;"
        f"u.ui_command = lambda *a: [{str(fake)!r}];"
        "u._wait_ready = lambda server, proc: proc.wait() or False;"
        "from harness.cli import main; sys.argv=['harness','ui','--no-browser','--port','1'];"
        "main()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env)
    pid_file = tmp_path / "child.pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    child = int(pid_file.read_text())
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, "the UI's worker outlived SIGTERM"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by whoever adopted it, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_a_copied_store_writes_artifacts_beside_itself(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer)
    original = tmp_path / "original"
    original.mkdir()
    suite = write_suite(original, server.url, n=3)
    uri = f"sqlite:///{original / 'mlruns' / 'mlflow.db'}"
    assert _cli("run", suite, "--variant", "zero-shot", "--tracking-uri", uri).exit_code == 0
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    shutil.rmtree(original / "mlruns" / "test-suite", ignore_errors=True)
    before = sorted(p for p in (original / "mlruns").rglob("*") if p.is_file())
    copied_uri = f"sqlite:///{copy / 'mlruns' / 'mlflow.db'}"
    result = _cli(
        "run",
        copy / "suite.yaml",
        "--variant",
        "zero-shot",
        "--no-cache",
        "--tracking-uri",
        copied_uri,
    )
    assert result.exit_code == 0, result.output
    after = sorted(p for p in (original / "mlruns").rglob("*") if p.is_file())
    assert after == before  # nothing written into the original project
    with sqlite3.connect(copy / "mlruns" / "mlflow.db") as con:
        locations = [r[0] for r in con.execute("SELECT artifact_location FROM experiments")]
        uris = [r[0] for r in con.execute("SELECT artifact_uri FROM runs")]
    assert all(str(original) not in x for x in locations + uris), locations + uris


def test_doctor_is_not_ready_for_a_tracking_uri_run_would_refuse(tmp_path):
    result = _cli("doctor", "--tracking-uri", "foo://bar")
    assert "not ready" in result.output
    assert "--tracking-uri 'foo://bar': unknown store 'foo'" in result.output


def test_the_registered_protocol_keeps_no_literal_credential(openai_server, tmp_path, monkeypatch):
    """The baseline's definition in runs/.protocol/*.json, `register --amend`'s lines and the
    amendment's MLflow tags hold header values and keys masked (a rotated key is no amendment)."""
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_ENV)
    server = openai_server(intent_answer)
    variants = f"""
  - name: zero-shot
    params:
      temperature: 0
      max_tokens: 16
      api_key: {CANARY_ENV}
      extra_headers: {{X-Auth: {CANARY_HEADER}}}
"""
    suite = write_suite(tmp_path, server.url, n=3, variants=variants)
    outputs = [_cli("register", suite)]
    assert outputs[0].exit_code == 0, outputs[0].output
    suite.write_text(suite.read_text().replace("max_tokens: 16", "max_tokens: 17"))
    outputs.append(_cli("run", suite))
    amended = _cli("register", suite, "--amend", "--why", "longer answers")
    assert amended.exit_code == 0, amended.output
    assert "baseline params" in amended.output
    outputs += [amended, _cli("run", suite), _cli("ledger", suite)]
    for i, result in enumerate(outputs):
        assert "Traceback" not in result.output
        _no_canary(result.output, f"command output #{i}")
    protocol = json.loads(next((tmp_path / "runs" / ".protocol").glob("*.json")).read_text())
    assert protocol["baseline"]["params"]["extra_headers"] == {"X-Auth": "***"}
    assert protocol["baseline"]["params"]["api_key"] == "***"
    _grep_tree(tmp_path / "runs")
    db = os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")
    _grep_tree(Path(db).parent)


def test_storage_failures_of_register_and_diagnose_are_exit_4_without_a_resume_flag(
    openai_server, fake_key, tmp_path
):
    """runs/.protocol taken by a file, diagnosis.json taken by a directory: exit 4, and the fix
    names a rerun, not a --resume these commands do not have."""
    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=3)
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / ".protocol").write_text("x")
    registered = _cli("register", suite)
    assert registered.exit_code == 4, registered.output
    assert "Error: could not write results (runs/.protocol): File exists" in registered.output
    assert "then run the same command again" in registered.output
    assert "--resume" not in registered.output
    (runs / ".protocol").unlink()
    assert _cli("run", suite, "--variant", "zero-shot").exit_code == 0
    run_dir = next(runs.glob("test-suite/*"))
    (run_dir / "diagnosis.json").mkdir()
    diagnosed = _cli("diagnose", run_dir)
    assert diagnosed.exit_code == 4, diagnosed.output
    assert f"({run_dir / 'diagnosis.json'}): Is a directory" in diagnosed.output
    assert "then run the same command again" in diagnosed.output
    assert "--resume" not in diagnosed.output
    assert "4  could not write" in _cli("diagnose", "--help").output


def test_register_and_diagnose_print_no_control_sequence(openai_server, fake_key, tmp_path):
    """A model name carrying OSC 0/52 (written in the suite, echoed from a data-driven config)
    reaches `register`'s protocol lines and `diagnose`'s table stripped."""
    server = openai_server(intent_answer)
    model = "openai/fake\\e]0;pwned-title\\a\\e]52;c;ZWNobyBwd25lZA==\\e\\\\"
    suite = write_suite(tmp_path, server.url, n=3)
    suite.write_text(suite.read_text().replace("model: openai/fake-model", f'model: "{model}"'))
    registered = _cli("register", suite)
    assert registered.exit_code == 0, registered.output
    assert "baseline zero-shot: openai/fake at " in registered.output
    assert _cli("run", suite).exit_code == 0
    run_dir = next((tmp_path / "runs").glob("test-suite/*"))
    diagnosed = _cli("diagnose", run_dir)
    assert diagnosed.exit_code == 0, diagnosed.output
    for result in (registered, diagnosed):
        assert "\x1b" not in result.output and "\x07" not in result.output


def test_a_probe_never_sends_a_masked_credential(openai_server, fake_key, tmp_path):
    """runs/…/suite.yaml keeps a literal header masked; a probe derived from it must not send
    `***` as the credential (the provider answers 401 for every paid-for probe call)."""
    from diagnose.test_cli_diagnose import wrong_zero_shot

    server = openai_server(wrong_zero_shot)
    suite = write_suite(tmp_path, server.url, n=6)
    suite.write_text(
        suite.read_text().replace(
            "params: {temperature: 0, max_tokens: 16}",
            f"params: {{temperature: 0, max_tokens: 16, extra_headers: {{X-Auth: {CANARY_HEADER}}}}}",
        )
    )
    assert _cli("run", suite).exit_code == 0
    run_dir = next((tmp_path / "runs").glob("test-suite/*"))
    server.headers.clear()
    probed = _cli("diagnose", run_dir, "--probe", "repeats", "--yes")
    assert "Traceback" not in probed.output
    sent = [{k.lower(): v for k, v in h.items()}.get("x-auth") for h in server.headers]
    assert "***" not in sent, "*** sent as X-Auth"
    # Refused before pricing, naming the masked credential and the fix.
    assert sent == [] and probed.exit_code == 2, probed.output
    assert (
        f"Error: {run_dir / 'suite.yaml'}: zero-shot: params.extra_headers.X-Auth was written "
        "literally and the run keeps it masked (***): a probe would send *** as the credential"
    ) in probed.output
    _no_canary(probed.output, "diagnose's output")
