import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.feature_extraction.text import TfidfVectorizer

from harness._util.text import fold
from harness.cli import main
from harness.data.dataset import Example, load_dataset
from harness.errors import SuiteError
from harness.prompt.templates import (
    FewShotSelector,
    render_messages,
    response_format_for,
    validate_templates,
)
from harness.suite import FewShot, load_suite

TRAIN = [
    ("where is my card", "card_arrival"),
    ("my card has not arrived yet", "card_arrival"),
    ("when will the card be delivered", "card_arrival"),
    ("what is the exchange rate today", "exchange_rate"),
    ("which exchange rate do you use", "exchange_rate"),
    ("is the euro exchange rate fair", "exchange_rate"),
    ("my pin is blocked", "pin_blocked"),
    ("how do i unblock my pin", "pin_blocked"),
    ("pin blocked after three tries", "pin_blocked"),
    ("What is the exchange rate today?", "exchange_rate"),  # duplicate of a test input
]
TEST = [
    ("What is the  EXCHANGE rate today?", "exchange_rate"),
    ("Literal {{ 7*7 }} and {% if true %}x{% endif %}", "card_arrival"),
]


def write_suite(tmp_path, variants: str, defaults: str = 'user: "Q: {{ text }}"', extra: str = ""):
    (tmp_path / "train.jsonl").write_text(
        "\n".join(json.dumps({"text": t, "category": c}) for t, c in TRAIN)
    )
    (tmp_path / "test.jsonl").write_text(
        "\n".join(json.dumps({"text": t, "category": c}) for t, c in TEST)
    )
    p = tmp_path / "suite.yaml"
    p.write_text(
        f"""name: t
task: classification
data: {{test: test.jsonl, train: train.jsonl, input: text, target: category}}
labels: from-data
metrics: [accuracy]
{extra}defaults:
  model: openai/gpt-4o-mini
  {defaults}
variants:
{variants}
"""
    )
    return p


def load(tmp_path, variants="  - name: a", **kw):
    suite = load_suite(write_suite(tmp_path, variants, **kw))
    return suite, load_dataset(suite)


def ex(i: int, text: str, target=None, **inputs) -> Example:
    return Example(id=f"id{i}", inputs={"text": text, **inputs}, target=target)


# ---------------------------------------------------------------- rendering


def test_renders_system_and_user_messages(tmp_path):
    suite, ds = load(
        tmp_path, defaults='system: "Route {{ text | length }} chars."\n  user: "Q: {{ text }}"'
    )
    msgs = render_messages(suite.variants[0], ds.test[0])
    assert msgs == [
        {"role": "system", "content": "Route 33 chars."},
        {"role": "user", "content": "Q: What is the  EXCHANGE rate today?"},
    ]


def test_no_system_message_without_a_system_template(tmp_path):
    suite, ds = load(tmp_path)
    assert [m["role"] for m in render_messages(suite.variants[0], ds.test[0])] == ["user"]


def test_template_syntax_in_data_is_never_rendered(tmp_path):
    suite, ds = load(tmp_path)
    msgs = render_messages(suite.variants[0], ds.test[1])
    assert msgs[0]["content"] == "Q: Literal {{ 7*7 }} and {% if true %}x{% endif %}"
    # Also inside few-shot examples and RAG context.
    shot = ex(9, "shot {{ 7*7 }}", "t {{ 1+1 }}")
    variant = suite.variants[0].model_copy(
        update={
            "user": "{% for e in examples %}{{ e.text }}={{ e.target }};{% endfor %}{{ context[0].text }}"
        }
    )
    out = render_messages(
        variant,
        ds.test[0],
        examples=[shot],
        context=[{"text": "{{ 3*3 }}", "source": "s", "id": "c", "score": 1.0}],
    )
    assert out[0]["content"] == "shot {{ 7*7 }}=t {{ 1+1 }};{{ 3*3 }}"


def test_undefined_variable_names_variant_key_and_variable(tmp_path):
    suite, ds = load(tmp_path, variants='  - name: a\n  - name: b\n    user: "Q: {{ question }}"')
    with pytest.raises(SuiteError) as err:
        render_messages(suite.variants[1], ds.test[0])
    assert str(err.value) == (
        "variants[1].user: variant 'b': 'question' is undefined — template variables are "
        "examples, text; fix the template, or add the field to `data.input`"
    )


def test_target_of_the_asked_example_is_not_a_variable(tmp_path):
    suite, ds = load(tmp_path, variants='  - name: a\n    user: "{{ text }} -> {{ category }}"')
    with pytest.raises(SuiteError, match="'category' is undefined"):
        render_messages(suite.variants[0], ds.test[0])


def test_sandbox_blocks_unsafe_attribute_access(tmp_path):
    suite, ds = load(
        tmp_path,
        variants='  - name: a\n    user: "{{ text.__class__.__mro__[1].__subclasses__() }}"',
    )
    with pytest.raises(SuiteError, match="variants\\[0\\].user: variant 'a'"):
        render_messages(suite.variants[0], ds.test[0])


def test_templates_cannot_mutate_data(tmp_path):
    suite, ds = load(
        tmp_path,
        variants='  - name: a\n    user: "{{ context.append(1) }}{{ context[0].update(text=2) }}"',
    )
    chunk = {"text": "t", "source": "s", "id": "c", "score": 1.0}
    with pytest.raises(SuiteError, match="unsafe"):
        render_messages(suite.variants[0], ds.test[0], context=[chunk])
    assert chunk["text"] == "t"


def test_few_shot_examples_carry_inputs_and_target(tmp_path):
    suite, ds = load(tmp_path)
    variant = suite.variants[0].model_copy(
        update={
            "user": "{% for e in examples %}{{ e.text }} => {{ e.target }}\n{% endfor %}{{ text }}"
        }
    )
    out = render_messages(variant, ds.test[0], examples=ds.train[:2])
    assert (
        out[0]["content"]
        == "where is my card => card_arrival\nmy card has not arrived yet => card_arrival\nWhat is the  EXCHANGE rate today?"
    )


# ---------------------------------------------------------------- validation (harness check)


def test_validate_reports_syntax_and_unknown_variables_with_lines(tmp_path):
    variants = "\n".join(
        [
            "  - name: a",
            "  - name: b",
            '    user: "{% for e in examples %}{{ e.text }}"',
            "  - name: c",
            '    system: "{{ category }}"',
            "  - name: d",
            "    extends: c",
            '    user: "{{ context }}"',
        ]
    )
    path = write_suite(tmp_path, variants)
    suite = load_suite(path)
    with pytest.raises(SuiteError) as err:
        validate_templates(suite)
    lines = str(err.value).splitlines()
    assert lines[0] == (
        f"{path}:12:11: variants[1].user: template syntax error on template line 1: Unexpected end of "
        "template. Jinja was looking for the following tags: 'endfor' or 'else'. The innermost block "
        "that needs to be closed is 'for'. (line: '{% for e in examples %}{{ e.text }}') — fix the Jinja2 syntax"
    )
    assert lines[1].startswith(
        f"{path}:14:13: variants[2].system: variant 'c': 'category' is the target"
    )
    # d inherits c's system template: reported once, at c. Its own user template is its own error.
    assert lines[2] == (
        f"{path}:17:11: variants[3].user: variant 'd': 'context' is only set for `kind: rag` variants "
        "— template variables are examples, text"
    )
    assert len(lines) == 3


def test_harness_check_exits_2_on_a_template_error(tmp_path):
    path = write_suite(tmp_path, "  - name: a", defaults='user: "{{ txt }}"')
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 2
    assert "defaults.user: variant 'a': 'txt' is undefined" in result.output
    assert "Traceback" not in result.output


def test_valid_templates_pass(tmp_path):
    suite, _ = load(
        tmp_path,
        defaults='user: "{% for e in examples %}{{ e.target }}{% endfor %}{{ text | upper }}"',
    )
    validate_templates(suite)  # no error


# ---------------------------------------------------------------- few-shot


def train_examples():
    return [ex(i, t, c) for i, (t, c) in enumerate(TRAIN)]


def test_random_is_deterministic_per_example_and_seed():
    train = train_examples()
    q1 = ex(100, "card please")
    a = FewShotSelector(train, FewShot(k=4, select="random", seed=3), ["text"])
    b = FewShotSelector(list(train), FewShot(k=4, select="random", seed=3), ["text"])
    assert [e.id for e in a.select(q1)] == [e.id for e in b.select(q1)]
    assert len(a.select(q1)) == 4 and len({e.id for e in a.select(q1)}) == 4
    # Different examples and seeds draw differently (checked over several ids).
    draws = {tuple(e.id for e in a.select(ex(i, f"q{i}"))) for i in range(200, 210)}
    assert len(draws) > 1
    c = FewShotSelector(train, FewShot(k=4, select="random", seed=4), ["text"])
    assert any(
        [e.id for e in a.select(ex(i, "q"))] != [e.id for e in c.select(ex(i, "q"))]
        for i in range(200, 210)
    )


def test_stratified_covers_every_class_round_robin():
    train = train_examples()
    sel = FewShotSelector(train, FewShot(k=3, select="stratified", seed=1), ["text"])
    for i in range(20):
        picked = sel.select(ex(300 + i, f"question {i}"))
        assert sorted(e.target for e in picked) == ["card_arrival", "exchange_rate", "pin_blocked"]
    six = FewShotSelector(train, FewShot(k=6, select="stratified", seed=1), ["text"]).select(
        ex(1, "q")
    )
    assert sorted(e.target for e in six) == sorted(
        ["card_arrival", "exchange_rate", "pin_blocked"] * 2
    )
    assert [e.id for e in six] == [
        e.id
        for e in FewShotSelector(train, FewShot(k=6, select="stratified", seed=1), ["text"]).select(
            ex(1, "q")
        )
    ]


def test_similar_matches_scikit_learn_cosine_ranking():
    train = train_examples()
    sel = FewShotSelector(train, FewShot(k=3, select="similar"), ["text"])
    query = ex(400, "my pin got blocked")
    picked = sel.select(query)
    vec = TfidfVectorizer(sublinear_tf=True).fit([e.inputs["text"] for e in train])
    sims = (
        (vec.transform([e.inputs["text"] for e in train]) @ vec.transform([query.inputs["text"]]).T)
        .toarray()
        .ravel()
    )
    expected = [train[i].id for i in np.argsort(-sims, kind="stable")[:3]]
    assert [e.id for e in picked] == expected
    assert {e.target for e in picked} == {"pin_blocked"}


def test_never_returns_the_asked_input_even_when_train_contains_it(tmp_path):
    # The asked "What is the  EXCHANGE rate today?" is in train twice: with other case/spaces
    # and without the "?". Both are the same example to `harness check` (harness._util.text.fold),
    # so neither is shown.
    suite, ds = load(tmp_path)
    question = ds.test[0]
    twins = {e.id for e in ds.train if fold(e.inputs["text"]) == fold(question.inputs["text"])}
    assert len(twins) == 2
    for select in ("random", "stratified", "similar"):
        sel = FewShotSelector(ds.train, FewShot(k=9, select=select, seed=0), ["text"])
        picked = sel.select(question)
        assert not {e.id for e in picked} & twins, select
        assert len(picked) == 8  # 10 train examples minus the two twins
        assert {e.id for e in picked} <= {e.id for e in ds.train}
        assert not {e.id for e in picked} & {e.id for e in ds.test}
    sim = FewShotSelector(ds.train, FewShot(k=1, select="similar"), ["text"]).select(question)
    assert "exchange rate" in sim[0].inputs["text"] and sim[0].id not in twins


def test_k_larger_than_pool_returns_the_pool():
    train = train_examples()[:2]
    assert len(FewShotSelector(train, FewShot(k=5), ["text"]).select(ex(9, "x"))) == 2


def test_multiple_input_fields_are_all_used_for_similarity():
    train = [
        Example(id="a", inputs={"q": "x", "ctx": "apples"}, target=1),
        Example(id="b", inputs={"q": "x", "ctx": "pears"}, target=2),
    ]
    sel = FewShotSelector(train, FewShot(k=1, select="similar"), ["q", "ctx"])
    assert sel.select(Example(id="t", inputs={"q": "y", "ctx": "pears"}))[0].id == "b"


# ---------------------------------------------------------------- response_format

SCHEMA = {
    "type": "object",
    "properties": {"intent": {"type": "string", "enum": ["a", "b"]}},
    "required": ["intent"],
    "additionalProperties": False,
}


def test_response_format_output_schema(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps(SCHEMA))
    suite, _ = load(
        tmp_path,
        extra="output_schema: s.json\n",
        variants="  - name: a\n    response_format: output_schema",
    )
    assert response_format_for(suite.variants[0], suite.output_schema) == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": SCHEMA, "strict": True},
    }


def test_response_format_json_object_inline_and_none(tmp_path):
    variants = "\n".join(
        [
            "  - name: a",
            "  - name: b",
            "    response_format: json_object",
            "  - name: c",
            "    response_format: {title: My Intent!, type: object, properties: {x: {type: string}}}",
        ]
    )
    suite, _ = load(tmp_path, variants=variants)
    a, b, c = suite.variants
    assert response_format_for(a, None) is None
    assert response_format_for(b, None) == {"type": "json_object"}
    rf = response_format_for(c, None)
    # Optional properties / open objects are not valid under OpenAI strict mode: strict is off.
    assert rf == {
        "type": "json_schema",
        "json_schema": {"name": "My_Intent_", "schema": c.response_format, "strict": False},
    }
