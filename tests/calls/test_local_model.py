import asyncio
import importlib.util
import json
import os

import pytest

from harness.calls import local_model
from harness.errors import SuiteError

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
    assert str(err.value) == "local/smollm2 needs the local extra: pip install -e '.[local]'"
    assert err.value.exit_code == 2


def test_missing_model_package_gives_the_install_hint(monkeypatch):
    monkeypatch.setattr(local_model, "GGUF_DISTRIBUTION", "no-such-distribution-harness-test")
    with pytest.raises(
        SuiteError, match=r"^local/smollm2 needs the local extra: pip install -e '\.\[local\]'$"
    ):
        local_model.model_path()


def test_response_format_becomes_a_grammar_only_for_json():
    pytest.importorskip("llama_cpp")
    assert local_model._grammar_for(None) is None
    assert local_model._grammar_for({"type": "text"}) is None
    g = local_model._grammar_for(RESPONSE_FORMAT)
    assert all(f'\\"{label}\\"' in g._grammar for label in LABELS)
    # Cached: the same schema compiles once.
    assert local_model._grammar_for({"type": "json_object", "schema": SCHEMA}) is g
    assert local_model._grammar_for({"type": "json_object"}) is not None


def test_is_local():
    from harness.calls.engine import needs_local_provider

    assert needs_local_provider(local_model.MODEL_ID)
    assert needs_local_provider("local/smollm2")
    assert not needs_local_provider("openai/gpt-4o-mini")


@pytest.mark.local_model
def test_gguf_is_found_in_the_installed_package():
    pytest.importorskip("llama_cpp")
    path = local_model.model_path()
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


def test_thread_count_leaves_a_core_to_the_event_loop(monkeypatch):
    monkeypatch.delenv(local_model.THREADS_ENV, raising=False)
    monkeypatch.setattr(local_model.os, "sched_getaffinity", lambda pid: {0, 1})
    assert local_model.n_threads() == 1
    monkeypatch.setattr(local_model.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert local_model.n_threads() == 2
    monkeypatch.setenv(local_model.THREADS_ENV, "3")
    assert local_model.n_threads() == 3
    monkeypatch.setenv(local_model.THREADS_ENV, "0")
    with pytest.raises(SuiteError, match=r"HARNESS_LOCAL_THREADS='0' is not a positive integer"):
        local_model.n_threads()


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

    assert asyncio.run(overlap()) == local_model.MAX_PARALLEL


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
