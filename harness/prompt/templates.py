"""Prompt templates: sandboxed Jinja2 rendering of chat messages, few-shot selection, response formats.

Templates see the example's input fields, `examples` (few-shot: input fields plus `target`) and
`context` (RAG chunks). Data values are plain values: Jinja2 never re-renders a variable's value,
so a `{{` inside a record stays text. The asked example's target is never a variable.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Sequence
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from harness._util.text import fold, inputs_text
from harness.data.dataset import Example
from harness.errors import SuiteError, SuiteErrors
from harness.suite import FewShot, Suite, Variant
from harness.suite.kinds import KINDS

TEMPLATE_FIELDS = ("system", "user")


@functools.lru_cache(maxsize=1)
def _env() -> ImmutableSandboxedEnvironment:
    # No autoescape: prompts are text, not HTML. keep_trailing_newline: a template means what it says.
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )


@functools.lru_cache(maxsize=256)
def _compile(source: str):
    # Compiled once per distinct template text; rendering thousands of examples reuses it.
    return _env().from_string(source)


def _key(variant: Variant, field: str) -> str:
    return f"variants[{variant.index}].{field}"


def _template_vars(
    example: Example, examples: Sequence[Example], context: list[dict] | None
) -> dict:
    variables = dict(example.inputs)
    # A data field may itself be called `examples`/`context`; it wins unless the variant supplies one.
    if examples or "examples" not in variables:
        variables["examples"] = [{**ex.inputs, "target": ex.target} for ex in examples]
    if context is not None:
        variables["context"] = list(context)
    return variables


def render_messages(
    variant: Variant,
    example: Example,
    *,
    examples: Sequence[Example] = (),
    context: list[dict] | None = None,
) -> list[dict]:
    """OpenAI chat messages for one example: a system message if the variant has one, then user."""
    variables = _template_vars(example, examples, context)
    messages = []
    for field in TEMPLATE_FIELDS:
        source = getattr(variant, field)
        if source is None:
            continue
        messages.append({"role": field, "content": _render(variant, field, source, variables)})
    return messages


def _render(variant: Variant, field: str, source: str, variables: dict) -> str:
    try:
        return _compile(source).render(variables)
    except TemplateSyntaxError as e:
        raise SuiteError(
            f"template syntax error on template line {e.lineno}: {e.message} — fix the Jinja2 syntax",
            key=_key(variant, field),
        ) from None
    except UndefinedError as e:
        available = ", ".join(sorted(variables)) or "(none)"
        raise SuiteError(
            f"variant {variant.name!r}: {e.message} — template variables are {available}; "
            "fix the template, or add the field to `data.input`",
            key=_key(variant, field),
        ) from None
    except TemplateError as e:  # includes the sandbox's SecurityError
        raise SuiteError(
            f"variant {variant.name!r}: template failed: {e}", key=_key(variant, field)
        ) from None


# ---------------------------------------------------------------- validation (harness check)


def _source_key(suite: Suite, variant: Variant, field: str) -> tuple:
    """Where the variant's template is written: on the variant, an `extends` ancestor, or defaults."""
    specs = suite.spec.variants
    by_name = {v.name: (i, v) for i, v in enumerate(specs)}
    i, spec = variant.index, specs[variant.index]
    seen = set()
    while spec is not None and spec.name not in seen:
        seen.add(spec.name)
        if getattr(spec, field) is not None:
            return ("variants", i, field)
        i, spec = by_name.get(spec.extends, (None, None)) if spec.extends else (None, None)
    return ("defaults", field)


def validate_templates(suite: Suite) -> None:
    """Compile every variant's templates; report syntax errors and unknown variables together."""
    env = _env()
    inputs = set(suite.spec.data.inputs)
    target = suite.spec.data.target
    problems: list[SuiteError] = []
    reported: set[tuple] = set()
    for variant in suite.variants:
        known = inputs | {"examples"} | ({"context"} if KINDS[variant.kind].retrieves else set())
        for field in TEMPLATE_FIELDS:
            source = getattr(variant, field)
            if source is None:
                continue
            key = _source_key(suite, variant, field)
            try:
                ast = env.parse(source)
            except TemplateSyntaxError as e:
                if key not in reported:
                    reported.add(key)
                    problems.append(
                        suite.fail(
                            f"template syntax error on template line {e.lineno}: {e.message} "
                            f"(line: {_line(source, e.lineno)!r}) — fix the Jinja2 syntax",
                            key,
                        )
                    )
                continue
            unknown = sorted(meta.find_undeclared_variables(ast) - known - set(env.globals))
            for name in unknown:
                if (key, name) in reported:
                    continue
                reported.add((key, name))
                names = ", ".join(sorted(known))
                if name == target:
                    msg = (
                        f"{name!r} is the target — the asked example's answer is never a template "
                        f"variable; remove it (few-shot answers are `ex.target` inside `examples`)"
                    )
                elif name == "context":
                    msg = f"'context' is only set for `kind: rag` variants — template variables are {names}"
                else:
                    msg = (
                        f"{name!r} is undefined — template variables are {names}; "
                        "fix the template, or add the field to `data.input`"
                    )
                problems.append(
                    suite.fail(
                        f"variant {variant.name!r}: {msg}",
                        key,
                    )
                )
    if problems:
        raise SuiteErrors(problems)


def _line(source: str, lineno: int | None) -> str:
    lines = source.splitlines()
    if lineno and 1 <= lineno <= len(lines):
        return lines[lineno - 1].strip()
    return ""


# ---------------------------------------------------------------- few-shot selection


def _class_key(target: Any) -> str:
    return json.dumps(target, sort_keys=True, default=str)


class FewShotSelector:
    """Picks `spec.k` train examples for each test example; built once per variant.

    Deterministic: the same seed and example id give the same examples in the same order.
    A train example whose normalised input equals the asked example's is never shown (it would
    leak the answer). `similar` returns the nearest first.
    """

    def __init__(self, train: Sequence[Example], spec: FewShot, input_fields: Sequence[str]):
        if not train:
            raise SuiteError("few_shot needs a non-empty train split — add records to `data.train`")
        self.train = list(train)
        self.spec = spec
        self.fields = list(input_fields)
        self._by_norm: dict[str, list[int]] = {}
        for i, e in enumerate(self.train):
            self._by_norm.setdefault(fold(inputs_text(e.inputs, self.fields)), []).append(i)
        self._classes: dict[str, list[int]] = {}
        for i, e in enumerate(self.train):
            self._classes.setdefault(_class_key(e.target), []).append(i)
        self._vectorizer = self._matrix = None
        if spec.select == "similar":
            from sklearn.feature_extraction.text import TfidfVectorizer

            self._vectorizer = TfidfVectorizer(sublinear_tf=True)
            self._matrix = self._vectorizer.fit_transform(
                [inputs_text(e.inputs, self.fields) for e in self.train]
            )

    def _rng(self, example: Example) -> random.Random:
        # str seeds are hashed with SHA-512 by `random`, so this is stable across processes.
        return random.Random(f"{self.spec.seed}:{example.id}")

    def _excluded(self, example: Example) -> set[int]:
        """Train examples whose normalised input is the asked one's (showing them leaks the answer)."""
        return set(self._by_norm.get(fold(inputs_text(example.inputs, self.fields)), ()))

    def select(self, example: Example) -> list[Example]:
        excluded = self._excluded(example)
        k = min(self.spec.k, len(self.train) - len(excluded))
        if self.spec.select == "random":
            pool = range(len(self.train))
            if excluded:
                pool = [i for i in pool if i not in excluded]
            picked = self._rng(example).sample(pool, k)
        elif self.spec.select == "stratified":
            picked = self._stratified(example, excluded, k)
        else:
            picked = self._similar(example, excluded, k)
        return [self.train[i] for i in picked]

    def _stratified(self, example: Example, excluded: set[int], k: int) -> list[int]:
        rng = self._rng(example)
        queues = []
        for key in sorted(self._classes):
            members = [i for i in self._classes[key] if i not in excluded]
            # k from one class is the most round-robin can take; sampling k avoids a full shuffle.
            drawn = rng.sample(members, min(k, len(members)))
            if drawn:
                queues.append(drawn)
        rng.shuffle(queues)  # which classes come first varies by example when k < classes
        picked: list[int] = []
        while len(picked) < k:
            for q in queues:
                if q and len(picked) < k:
                    picked.append(q.pop())
        return picked

    def _similar(self, example: Example, excluded: set[int], k: int) -> list[int]:
        import numpy as np

        query = self._vectorizer.transform([inputs_text(example.inputs, self.fields)])
        # Rows are L2-normalised, so the dot product is the cosine similarity.
        sims = (self._matrix @ query.T).toarray().ravel()
        if excluded:
            sims[list(excluded)] = -np.inf
        # Stable sort: equally similar examples come in train-file order.
        return np.argsort(-sims, kind="stable")[:k].tolist()


# ---------------------------------------------------------------- structured output

_RESPONSE_FORMAT_TYPES = ("json_schema", "json_object", "text")


def response_format_for(variant: Variant, output_schema: dict | None) -> dict | None:
    """litellm's `response_format` param for the variant's setting (None: free text)."""
    rf = variant.response_format
    if rf is None:
        return None
    if rf == "json_object":
        return {"type": "json_object"}
    if rf == "output_schema":
        if output_schema is None:
            raise SuiteError(
                "response_format: output_schema needs a top-level `output_schema:` file",
                key=_key(variant, "response_format"),
            )
        return _json_schema_format(output_schema)
    if isinstance(rf, dict):
        if rf.get("type") in _RESPONSE_FORMAT_TYPES:
            return rf  # already a provider response_format, passed through as written
        return _json_schema_format(rf)
    raise SuiteError(
        f"unknown response_format {rf!r} — use output_schema, json_object or an inline JSON Schema",
        key=_key(variant, "response_format"),
    )


def _json_schema_format(schema: dict) -> dict:
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", str(schema.get("title") or "output"))[:64] or "output"
    # OpenAI's strict mode rejects schemas with optional properties or open objects; only ask for
    # it when the schema qualifies, so a valid schema never turns into a 400 on every call.
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": schema, "strict": _strict_ok(schema)},
    }


def _strict_ok(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return True
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    if schema.get("type") == "object" or props:
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required", [])) != set(props):
            return False
    children = list(props.values())
    for key in ("items", "prefixItems", "anyOf", "allOf", "oneOf"):
        sub = schema.get(key)
        children += sub if isinstance(sub, list) else [sub]
    for key in ("$defs", "definitions"):
        children += list((schema.get(key) or {}).values())
    return all(_strict_ok(c) for c in children)


__all__ = [
    "FewShotSelector",
    "render_messages",
    "response_format_for",
    "validate_templates",
]
