"""Pydantic validation errors rewritten as suite errors: file:line:col, key path, how to fix."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.errors import SuiteError, SuiteErrors
from harness.suite._yaml import format_key, locate
from harness.suite.model import EXAMPLES, SuiteFile

_LITELLM_PARAMS = {
    "temperature",
    "max_tokens",
    "top_p",
    "seed",
    "stop",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
}

_FRIENDLY = {
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "list_type": "expected a list",
    "dict_type": "expected a mapping (key: value)",
    "model_type": "expected a mapping (key: value)",
    "model_attributes_type": "expected a mapping (key: value)",
    "string_pattern_mismatch": "use letters, digits, '-', '_' and '.' only (no spaces)",
    "string_too_long": "at most {max_length} characters (it names files and directories) — shorten it",
}
_TEMPLATES = ("system", "user", "query")


def _describe(err: dict[str, Any], loc: tuple, raw: Any) -> str:
    etype = err["type"]
    if etype == "extra_forbidden":
        parent = loc[:-1]
        field_name = str(loc[-1])
        allowed = _allowed_keys(parent)
        known_params = difflib.get_close_matches(
            field_name, sorted(_LITELLM_PARAMS), n=1, cutoff=0.75
        )
        if known_params and "params" in allowed:
            return f"unknown key — model parameters go under params: {{{known_params[0]}: ...}}"
        hint = difflib.get_close_matches(field_name, allowed, n=1, cutoff=0.6)
        fix = (
            f"did you mean {hint[0]!r}?" if hint else f"allowed keys: {', '.join(sorted(allowed))}"
        )
        return f"unknown key — {fix}"
    if etype == "missing":
        example = EXAMPLES.get(str(loc[-1]))
        return "required" + (f" — {example}" if example else "")
    got = err.get("input")
    shown = f" (got {got!r})" if not isinstance(got, (dict, list)) else ""
    if etype == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"expected one of {expected}{shown}"
    if etype == "string_type" and isinstance(got, bool):
        return (
            f"expected text (got {got!r}: YAML reads yes/no/on/off/true/false as booleans) — "
            "quote it, e.g. 'yes'"
        )
    if etype == "string_type" and isinstance(got, dict) and loc and loc[-1] in _TEMPLATES:
        return 'expected text (YAML read a mapping) — quote the template, e.g. user: "{{ text }}"'
    if etype == "string_too_long":
        return _FRIENDLY[etype].format(**err.get("ctx", {}))
    if etype in _FRIENDLY:
        return _FRIENDLY[etype] + shown
    if etype in ("greater_than_equal", "greater_than", "less_than", "less_than_equal", "too_short"):
        return err["msg"].replace("Input should", "must").replace("List should", "must") + shown
    msg = err["msg"]
    return msg[len("Value error, ") :] if msg.startswith("Value error, ") else msg + shown


def _model_for(parent: tuple) -> type[BaseModel] | None:
    names = [p for p in parent if isinstance(p, str)]
    model: type[BaseModel] | None = SuiteFile
    for name in names:
        if model is None:
            return None
        field = model.model_fields.get(name)
        if field is None:
            return None
        model = _first_model(field.annotation)
    return model


def _first_model(annotation) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        m = _first_model(arg)
        if m is not None:
            return m
    return None


def _allowed_keys(parent: tuple) -> list[str]:
    model = _model_for(parent)
    return list(model.model_fields) if model else []


def _clean_loc(loc: tuple, raw: Any) -> tuple:
    """Drop pydantic's union-branch markers (e.g. 'str', 'list[str]', 'CorpusColumn').

    A part that is a key (or index) of the YAML at that point is the user's, whatever it looks
    like (an unknown key `Foo` or `str` stays); only the others can be branch markers.
    """
    out = []
    node = raw
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            out.append(part)
            node = node[part]
            continue
        if isinstance(part, str) and (
            part in ("str", "int", "float", "bool", "dict[str,any]")
            or "[" in part
            or part[:1].isupper()
            or part.startswith("literal")
            or part.startswith("function-")
        ):
            continue
        out.append(part)
        node = None
    return tuple(out)


def validation_errors(exc: ValidationError, path: Path, raw: Any, locations) -> SuiteErrors:
    errors: list[SuiteError] = []
    seen: set[tuple] = set()
    for err in exc.errors(include_url=False):
        loc = _clean_loc(tuple(err["loc"]), raw)
        # A union reports one error per branch; the first is the most useful.
        if loc in seen:
            continue
        seen.add(loc)
        key_for_line = loc + ("__key__",) if err["type"] == "extra_forbidden" else loc
        line, col = locate(locations, key_for_line)
        errors.append(
            SuiteError(
                _describe(err, loc, raw), file=str(path), key=format_key(loc), line=line, column=col
            )
        )
    errors.sort(key=lambda e: (e.line or 0, e.column or 0))
    return SuiteErrors(errors)
