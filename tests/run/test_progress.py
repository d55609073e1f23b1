"""The terminal while `harness run` works: phase lines, bars with an overall ETA/spend line, and
retries shown live and counted in the summary (checked against the test server's request count)."""

from __future__ import annotations

import io
import re

import pytest
from conftest import write_suite
from rich.console import Console

from harness.run.pipeline import run_suite


def test_phases_overall_line_and_live_retries(openai_server, fake_key, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    server = openai_server(rate_500=0.3, seed=3)
    suite = write_suite(tmp_path, server.url)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    outcome = run_suite(
        suite, runs_dir=tmp_path / "runs", workers=0, console=console, show_progress=True
    )
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # cursor moves, not text
    lines = [x for x in text.splitlines() if x.startswith("harness: ")]
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert lines == [
        "harness: loading the data…",
        "harness: sending 24 calls (0 cached) — loading litellm before the first answer…",
        f"harness: writing report.md / report.html, then logging to MLflow ({uri})…",
    ]
    retries = sum(v["retries"] for v in outcome.summary["variants"].values())
    # Every attempt beyond a call's first reached the server: the count is not a guess.
    assert retries == server.requests - 24 > 0
    # The last frame of the overall line: all calls, their retries, spend and an ETA column.
    overall = [x for x in re.split(r"[\r\n]", text) if x.startswith("(all)")][-1]
    assert re.search(r"24/24 errors \d+ retries (\d+) \$0\.\d{4} \d:\d\d:\d\d ETA", overall)
    assert int(re.search(r"retries (\d+)", overall).group(1)) == retries
    per_variant = {
        name: int(
            re.search(
                r"retries (\d+)",
                [x for x in re.split(r"[\r\n]", text) if x.startswith(name + " ")][-1],
            ).group(1)
        )
        for name in ("zero-shot", "few-shot")
    }
    assert per_variant == {n: v["retries"] for n, v in outcome.summary["variants"].items()}


def test_no_progress_output_when_not_a_terminal(openai_server, fake_key, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    server = openai_server()
    out = io.StringIO()
    run_suite(
        write_suite(tmp_path, server.url),
        runs_dir=tmp_path / "runs",
        workers=0,
        console=Console(file=out, force_terminal=False),
    )
    assert out.getvalue() == ""  # CI logs get the summary only, not bar frames


def test_off_a_terminal_a_plain_line_now_and_then(openai_server, fake_key, tmp_path, monkeypatch):
    # A CI log or a file gets a plain line every HARNESS_PROGRESS_EVERY_S seconds (not bars);
    # 1e-9 s: after every call here, so each line is checked against the calls done so far.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    monkeypatch.setenv("HARNESS_PROGRESS_EVERY_S", "1e-9")
    server = openai_server()
    out = io.StringIO()
    run_suite(
        write_suite(tmp_path, server.url, n=6),
        runs_dir=tmp_path / "runs",
        workers=0,
        console=Console(file=out, force_terminal=False),
    )
    lines = out.getvalue().splitlines()
    pattern = re.compile(
        r"harness: (\d+)/12 calls \((\d+)%\), 0 errors, 0 retries, \$0\.0000 spent, \d+s elapsed"
    )
    done = [int(pattern.fullmatch(line).group(1)) for line in lines]
    assert done == list(range(1, 13)), lines
    # Off (0), or when the caller decides (show_progress=False): nothing.
    monkeypatch.setenv("HARNESS_PROGRESS_EVERY_S", "0")
    quiet = io.StringIO()
    run_suite(
        write_suite(tmp_path / "again", server.url, n=6),
        runs_dir=tmp_path / "runs2",
        workers=0,
        console=Console(file=quiet, force_terminal=False),
    )
    assert quiet.getvalue() == ""


def test_the_plain_line_counts_on_across_sequential_looks(
    openai_server, fake_key, tmp_path, monkeypatch
):
    # Each look sends its calls through a new progress: its line started again at 0/24 with
    # the earlier looks' calls done.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    monkeypatch.setenv("HARNESS_PROGRESS_EVERY_S", "1e-9")
    server = openai_server()
    out = io.StringIO()
    extra = (
        "baseline: zero-shot\n"
        "guard: {metric: accuracy, margin: 0.05, candidate: few-shot, sequential: {looks: 3}}\n"
    )
    outcome = run_suite(
        write_suite(tmp_path, server.url, n=12, extra=extra),
        runs_dir=tmp_path / "runs",
        workers=0,
        console=Console(file=out, force_terminal=False),
    )
    assert outcome.summary["sequential"]["look"] == 3  # every look was sent
    pattern = re.compile(r"harness: (\d+)/24 calls .*")
    done = [int(pattern.fullmatch(line).group(1)) for line in out.getvalue().splitlines()]
    assert done == list(range(1, 25)), done


@pytest.mark.parametrize(
    ("raw", "every"), [("nan", 60.0), ("abc", 60.0), ("", 60.0), ("-5", 0.0), ("30", 30.0)]
)
def test_a_bad_progress_interval_falls_back_to_the_default(monkeypatch, raw, every):
    # "nan" was kept: no time is ever >= nan, so the line never came (silently off).
    from harness.run.progress import plain_every

    monkeypatch.setenv("HARNESS_PROGRESS_EVERY_S", raw)
    assert plain_every() == every
