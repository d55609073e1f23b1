"""Every bad input a clear exit 2 before the first call; runs that cannot be judged exit 3 and
say why; resumes never mix two configurations. Each case is one a hostile test pass found."""

from __future__ import annotations

import json
import os
import time

import pytest
import yaml
from click.testing import CliRunner
from conftest import FAKE_KEY, intent_answer, write_suite

from harness.cli import main


@pytest.fixture(autouse=True)
def _isolated(isolated_cwd):
    """MLflow store and any relative output stay in the test's tmp_path."""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def run(suite, tmp_path, *extra):
    return invoke("run", suite, "--runs-dir", tmp_path / "runs", *extra)


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


# ---------------------------------------------------------------- resume


def test_resume_after_the_suite_was_edited_refuses_naming_the_changes(
    openai_server, fake_key, tmp_path
):
    server = openai_server(intent_answer)
    other = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=4)
    first = json.loads(run(suite, tmp_path, "--json").stdout)
    edit(suite, 'user: "Question: {{ text }}"', 'user: "Q: {{ text }}"')
    edit(suite, server.url, other.url)
    result = run(suite, tmp_path, "--resume", first["run_id"])
    assert result.exit_code == 2
    assert result.output == (
        f"Error: --resume: the suite changed since run {first['run_id']} started "
        f"(variants.few-shot.api_base ({suite}:12): '{server.url}' → '{other.url}'; "
        f"variants.zero-shot.api_base ({suite}:12): '{server.url}' → '{other.url}'; "
        f"variants.zero-shot.user ({suite}:16): 'Question: {{{{ text }}}}' → 'Q: {{{{ text }}}}') "
        "— undo the change to finish that run, or start a new run without --resume\n"
    )
    assert other.requests == 0


# ---------------------------------------------------------------- error rate


def test_errors_above_max_error_rate_exit_3_without_a_guard_with_the_reasons(
    openai_server, fake_key, tmp_path
):
    server = openai_server(intent_answer, statuses={"lost my card": 400})
    suite = write_suite(tmp_path, server.url, n=6, variants="\n  - name: zero-shot\n")
    result = run(suite, tmp_path)
    assert result.exit_code == 3
    assert (
        "zero-shot: 2 of 6 calls failed (33.3% > max_error_rate 2%): bad_request ×2; the "
        "provider said: “OpenAIException - forced status 400” ×2 — the run "
        "cannot be judged; fix the provider, then retry the failed calls with --resume"
    ) in result.output
    summary = json.loads(
        next((tmp_path / "runs" / "test-suite").glob("*/summary.json")).read_text()
    )
    assert summary["exit_code"] == 3


def test_a_variant_subset_leaving_the_guarded_variant_out_still_exits_3(
    openai_server, fake_key, tmp_path
):
    server = openai_server(intent_answer, statuses={"lost my card": 400})
    guard = """
  - name: ft
    kind: fine-tuned
    base_model: openai/fake-model
guard: {metric: accuracy, margin: 0.05}
"""
    variants = "\n  - name: zero-shot" + guard
    suite = write_suite(tmp_path, server.url, n=6, variants=variants)
    result = run(suite, tmp_path, "--variant", "zero-shot")
    assert result.exit_code == 3
    assert "zero-shot: 2 of 6 calls failed (33.3% > max_error_rate 2%): bad_request ×2" in (
        result.output
    )


def test_a_hang_ends_with_the_timeout_reason_printed(
    openai_server, fake_key, tmp_path, monkeypatch
):
    server = openai_server(intent_answer, rate_timeout=1.0, hang_seconds=2)
    suite = write_suite(tmp_path, server.url, n=1, variants="\n  - name: zero-shot\n")
    edit(suite, "timeout: 5", "timeout: 0.3")
    from harness.calls import engine

    monkeypatch.setattr(engine, "DEFAULT_MAX_ATTEMPTS", 2)
    result = run(suite, tmp_path)
    assert result.exit_code == 3
    assert "zero-shot: 1 of 1 calls failed (100.0% > max_error_rate 2%): timeout ×1" in (
        result.output
    )


# ---------------------------------------------------------------- data


def _jsonl_suite(tmp_path, url, rows, extra=""):
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"""name: s
task: classification
data: {{test: data/test.jsonl, input: text, target: label{extra}}}
labels: from-data
metrics: [accuracy]
defaults: {{model: openai/fake-model, api_base: {url}, user: "Message: {{{{ text }}}}"}}
variants:
  - name: zero-shot
"""
    )
    return suite


def test_every_data_row_is_checked_not_the_first_1000(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer)
    rows = [{"text": f"q{i}", "label": "a"} for i in range(1000)] + [{"label": "a"}]
    suite = _jsonl_suite(tmp_path, server.url, rows)
    result = run(suite, tmp_path)
    assert result.exit_code == 2
    assert result.output == (
        f"Error: {suite}:3:38: data.input: test.jsonl record 1001 has no 'text' — fill it or "
        "drop the record\n"
    )
    assert invoke("check", suite).exit_code == 2
    assert server.requests == 0


def test_empty_train_targets_and_a_few_shot_k_beyond_the_pool_are_errors(
    openai_server, fake_key, tmp_path
):
    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=6)
    train = tmp_path / "data" / "train.csv"
    train.write_text(train.read_text().replace(",card_arrival", ",", 1))
    for cmd in (["run", suite, "--runs-dir", tmp_path / "runs"], ["check", suite]):
        result = invoke(*cmd)
        assert result.exit_code == 2
        assert "1 train record(s) have an empty 'category'" in result.output
    write_suite(tmp_path, server.url, n=6)
    edit(suite, "k: 2,", "k: 500,")
    for cmd in (["run", suite, "--runs-dir", tmp_path / "runs"], ["check", suite]):
        result = invoke(*cmd)
        assert result.exit_code == 2
        assert (
            f"{suite}:20:19: variants[1].few_shot.k: few_shot.k is 500 but the train split has "
            "6 records — lower k or add train data"
        ) in result.output
    assert server.requests == 0


# ---------------------------------------------------------------- malformed replies


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (
            {
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": None},
                        "finish_reason": "stop",
                    }
                ]
            },
            "malformed_reply: the provider's reply has no content (finish_reason: stop)",
        ),
        ({"choices": []}, "malformed_reply: the provider's reply has no choices (`choices: []`)"),
    ],
)
def test_a_reply_without_an_answer_is_an_error_record_and_never_cached(
    openai_server, fake_key, tmp_path, body, why
):
    server = openai_server(intent_answer, bodies={"(#1)": body})
    suite = write_suite(tmp_path, server.url, n=3, variants="\n  - name: zero-shot\n")
    run(suite, tmp_path)
    records = [
        json.loads(line)
        for line in next((tmp_path / "runs").glob("test-suite/*/results/zero-shot.jsonl"))
        .read_text()
        .splitlines()
    ]
    bad = [r for r in records if r["error"]]
    assert [(r["output"], r["error"]) for r in bad] == [(None, why)]
    server.reset_counts()
    run(suite, tmp_path)
    assert server.requests == 1  # the two answers came from the cache, the malformed one not


# ---------------------------------------------------------------- validated before any call


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "temperature: 0,",
            "temperature: hot,",
            "{suite}:13:11: defaults.params: params.temperature must be a number, e.g. "
            "temperature: 0 (got 'hot')",
        ),
        (
            "api_base: http://",
            "api_base: ",
            "{suite}:12:13: defaults.api_base: api_base needs a scheme and a host, e.g. "
            "http://localhost:8000/v1 (got no http:// or https://)",
        ),
        (
            "model: openai/fake-model",
            "model: fake-model",
            "zero-shot: model 'fake-model' names no provider litellm knows — write "
            "provider/model, e.g. openai/fake-model (also for an OpenAI-compatible api_base)",
        ),
        (
            "variants:",
            "guard: {metric: accuracy, margin: 1.5, applies_to: [few-shot]}\nvariants:",
            "{suite}:17:35: guard.margin: 1.5 is more than accuracy can move: it is a fraction "
            "0–1 (0.05 = 5 points) — for 1.5 points write margin: 0.015",
        ),
        (
            "  - name: zero-shot",
            "  - name: " + "v" * 300,
            "{suite}:18:11: variants[0].name: at most 64 characters (it names files and "
            "directories) — shorten it",
        ),
        (
            "labels: from-data",
            "labels: [yes, no]",
            "{suite}:8:15: labels[1]: expected text (got False: YAML reads yes/no/on/off/true/"
            "false as booleans) — quote it, e.g. 'yes'",
        ),
        (
            'user: "Question: {{ text }}"',
            "user: {{ text }}",
            "{suite}:16:10: invalid YAML: found a mapping where text was expected; a template "
            'starting with {{ must be quoted — user: "{{ text }}"',
        ),
    ],
)
def test_bad_settings_exit_2_before_the_first_call(
    openai_server, fake_key, tmp_path, old, new, message
):
    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=3)
    edit(suite, old, new.replace("http://", "") if new == "api_base: " else new)
    result = run(suite, tmp_path)
    assert result.exit_code == 2, result.output
    assert message.replace("{suite}", str(suite)) in result.output
    assert server.requests == 0 and not (tmp_path / "runs" / "test-suite").exists()


def test_a_bad_tracking_uri_is_found_before_the_calls(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=3)
    result = run(suite, tmp_path, "--tracking-uri", "mlfow.db")
    assert result.exit_code == 2
    assert "--tracking-uri: tracking URI 'mlfow.db': MLflow's file store is deprecated" in (
        result.output
    )
    result = run(suite, tmp_path, "--tracking-uri", "sqlite:mlflow.db")
    assert result.output == (
        "Error: --tracking-uri 'sqlite:mlflow.db': a SQLite store is sqlite:/// followed by "
        "the file's path\n"
    )
    assert server.requests == 0


def test_an_alias_bomb_is_refused_in_a_second(tmp_path):
    bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        bomb.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    suite = tmp_path / "bomb.yaml"
    suite.write_text("\n".join(bomb) + "\n")
    start = time.process_time()
    result = invoke("check", suite)
    assert time.process_time() - start < 1.0
    assert result.exit_code == 2
    assert result.output == (
        f"Error: {suite}: the YAML expands to more than 100,000 values through aliases (*name) "
        "— a suite needs no nested aliases; write the values out\n"
    )


def test_a_symlink_loop_is_reported_as_such(openai_server, fake_key, tmp_path):
    suite = write_suite(tmp_path, "http://127.0.0.1:9/v1", n=3)
    (tmp_path / "data" / "test.csv").unlink()
    os.symlink(tmp_path / "data" / "loop.csv", tmp_path / "data" / "test.csv")
    os.symlink(tmp_path / "data" / "test.csv", tmp_path / "data" / "loop.csv")
    result = invoke("check", suite)
    assert result.exit_code == 2
    assert "data/test.csv is a symlink loop (a link that leads back to itself) — fix the link" in (
        result.output
    )


def test_retriever_import_errors_say_which_module_is_missing(tmp_path):
    suite = write_suite(
        tmp_path,
        "http://127.0.0.1:9/v1",
        n=3,
        variants="\n  - name: zero-shot\n  - name: rag\n    kind: rag\n    retriever: myret:search\n",
    )
    (tmp_path / "myret.py").write_text(
        "import not_installed_pkg_xyz\n\ndef search(q, k):\n    return []\n"
    )
    result = invoke("check", suite)
    assert result.exit_code == 2
    assert "'myret' imports 'not_installed_pkg_xyz', which is not installed — install it" in (
        result.output
    )
    (tmp_path / "myret.py").unlink()
    result = invoke("check", suite)
    assert "put myret.py next to the suite file (no 'myret' there)" in result.output


# ---------------------------------------------------------------- secrets


def test_credentials_are_redacted_everywhere_and_env_references_work(
    openai_server, fake_key, tmp_path, monkeypatch
):
    monkeypatch.setenv("PROXY_CRED", "s3cret-proxy-value")
    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=3, variants="\n  - name: zero-shot\n")
    edit(
        suite,
        "params: {temperature: 0, max_tokens: 16}",
        "params: {temperature: 0, max_tokens: 16, api_key: sk-literal-LEAK-42, "
        'extra_headers: {X-Proxy-Token: "${env:PROXY_CRED}", Authorization: "Bearer tok-LEAK-7"}}',
    )
    result = run(suite, tmp_path, "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}")
    assert result.exit_code == 0, result.output
    # The calls carried the real values...
    assert {k.lower(): v for k, v in server.headers[0].items()}[
        "x-proxy-token"
    ] == "s3cret-proxy-value"
    assert {k.lower(): v for k, v in server.headers[0].items()}[
        "authorization"
    ] == "Bearer tok-LEAK-7"
    # ...and the user is told to move the literal ones to the environment.
    assert (
        "defaults.params.api_key is a credential written in the suite (redacted in runs/ and "
        "MLflow) — keep it in the environment: `${env:NAME}`"
    ) in result.output
    stored = yaml.safe_load(next((tmp_path / "runs").glob("test-suite/*/suite.yaml")).read_text())
    assert stored["variants"][0]["params"]["api_key"] == "***"
    assert stored["variants"][0]["params"]["extra_headers"] == {
        "X-Proxy-Token": "${env:PROXY_CRED}",
        "Authorization": "***",
    }
    leaks = ("sk-literal-LEAK-42", "tok-LEAK-7", "s3cret-proxy-value", FAKE_KEY)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != suite:  # runs/, the cache, MLflow's db and artifacts
            data = path.read_bytes()
            assert not any(s.encode() in data for s in leaks), path


def test_a_basic_auth_api_base_is_rejected_without_echoing_the_password(tmp_path):
    suite = write_suite(tmp_path, "http://user:pw-LEAK@127.0.0.1:9/v1", n=3)
    result = run(suite, tmp_path)
    assert result.exit_code == 2
    assert "pw-LEAK" not in result.output
    assert (
        "defaults.api_base: credentials in api_base (user:password@host) are not sent by the "
        "OpenAI client — remove them and pass the key as `params: {api_key: ${env:NAME}}`"
    ) in result.output


def test_an_unset_env_reference_exits_2_before_the_calls(openai_server, fake_key, tmp_path):
    server = openai_server(intent_answer)
    suite = write_suite(tmp_path, server.url, n=3, variants="\n  - name: zero-shot\n")
    edit(suite, "max_tokens: 16}", 'max_tokens: 16, api_key: "${env:NOPE_UNSET_KEY}"}')
    result = run(suite, tmp_path)
    assert result.exit_code == 2
    assert result.output == (
        "Error: zero-shot: ${env:NOPE_UNSET_KEY} is not set — export NOPE_UNSET_KEY before the run\n"
    )
    assert server.requests == 0
