"""Per-example scoring of one model output: the parsed answer, per-record scores and reasons.

`make_scorer(suite, dataset)` does the per-suite work once (label lookup table, schema
validator, regex patterns); `scorer.score(example, output, error)` is then pure and cheap, so the
engine calls it once per call and stores the result in results/<variant>.jsonl.

Score keys (all floats, summed or averaged by harness.score.registry):
- every task: `format_ok` (1/0; only when it is defined: a schema, a label set or extraction);
- classification: `correct`;
- extraction: `field_tp`, `field_fp`, `field_fn`, `exact_record`;
- any task with a reference, when the metric is declared: `exact_match`, `contains`, `regex`.
An error record (no output after retries) scores 0 on every quality score (errors count as wrong)
and carries the error as its reason.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness._util.text import QUOTES, TRAILING, normalize_label, normalize_text
from harness.score.registry import entry_name

_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?```$", re.S)


def _strip_fence(text: str) -> tuple[str, bool]:
    m = _FENCE.match(text.strip())
    return (m.group(1).strip(), True) if m else (text, False)


def parse_json_lenient(text: str) -> tuple[Any, list[str]]:
    """JSON value in `text`, tolerating a code fence or prose around one object.

    Returns (value or None, steps). None means no JSON was found (a plain answer)."""
    steps: list[str] = []
    body, fenced = _strip_fence(text)
    if fenced:
        steps.append("removed code fence")
    try:
        return json.loads(body), steps
    except (json.JSONDecodeError, RecursionError):
        pass
    start, end = body.find("{"), body.rfind("}")
    if 0 <= start < end:
        try:
            value = json.loads(body[start : end + 1])
            return value, [*steps, "extracted JSON object from surrounding text"]
        except (json.JSONDecodeError, RecursionError):
            pass
    return None, steps


@dataclass(frozen=True)
class Seen:
    """One answered call as a per-record score sees it."""

    output: str  # the raw text
    answer: str  # what is compared: the parsed answer (the whole text for generation)
    target: Any  # the reference (None without one)


# Per-record scores, keyed by the metric that reads them: `fn(seen, **options) -> float | None`
# (None: not scored, e.g. no reference). A metric registers its own with `@record_score(name)`.
RECORD_SCORES: dict[str, Callable[..., float | None]] = {}


def record_score(name: str):
    def register(fn):
        RECORD_SCORES[name] = fn
        return fn

    return register


@record_score("exact_match")
def _exact_match(seen: Seen) -> float | None:
    if seen.target is None:
        return None
    return float(normalize_text(seen.answer) == normalize_text(_text(seen.target)))


@record_score("contains")
def _contains(seen: Seen) -> float | None:
    if seen.target is None:
        return None
    return float(normalize_text(_text(seen.target)) in normalize_text(seen.output))


@record_score("regex")
def _regex(seen: Seen, pattern: str) -> float:
    return float(_compiled(pattern).search(seen.output) is not None)


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


@dataclass
class Scorer:
    """Scores outputs of one suite. Build with `make_scorer`; `score` is pure."""

    task: str
    schema: dict | None = None
    labels: list[str] | None = None
    answer_field: str | None = None  # see answer_field()
    # Declared metrics with a per-record score (`@record_score`), and their options.
    wanted: dict[str, dict] = field(default_factory=dict)
    _label_of: dict[str, str | None] = field(default_factory=dict, repr=False)
    _exact: frozenset[str] = frozenset()
    _validator: Any = field(default=None, repr=False)

    # ------------------------------------------------------------------ public

    def score(self, example: Any, output: str | None, error: str | None = None) -> dict[str, Any]:
        """{"parsed": ..., "scores": {...}, "reasons": {...}} for one call's output."""
        if error is not None or output is None:
            return self._error_result(example, error or "no output")
        if self.task == "classification":
            result = self._classification(example, output)
        elif self.task == "extraction":
            result = self._extraction(example, output)
        else:
            result = {"parsed": output, "scores": {}, "reasons": {}}
        if self.schema is not None:
            ok, why = self.check_format(output)
            result["scores"]["format_ok"] = float(ok)
            result["reasons"]["format_ok"] = why
        self._reference_scores(example, output, result)
        return result

    def check_format(self, output: str) -> tuple[bool, str]:
        """Does the raw output parse as JSON and validate against the output schema?"""
        try:
            value = json.loads(output)
        except json.JSONDecodeError as e:
            return False, f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
        except RecursionError:
            return False, "invalid JSON: nested too deeply"
        from jsonschema.exceptions import best_match

        err = best_match(self._validator.iter_errors(value))
        if err is None:
            return True, "valid"
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        return False, f"schema: {where}: {err.message}"

    def map_label(self, text: Any) -> str | None:
        """The label `text` denotes after normalisation, or None."""
        if self.labels is None:
            return None
        if isinstance(text, str) and text.strip() in self._exact:  # exact spelling first
            return text.strip()
        return self._label_of.get(normalize_label(text))

    # ------------------------------------------------------------------ tasks

    def _classification(self, example, output: str) -> dict:
        steps: list[str] = []
        value, json_steps = parse_json_lenient(output)
        steps += json_steps
        answer: Any = output
        if isinstance(value, dict):
            answer, how = self._answer_from_object(value)
            steps.append(how)
        elif isinstance(value, str):
            answer = value
            steps.append("parsed JSON string")
        elif value is not None and not isinstance(value, (list, dict)):
            answer = str(value)
            steps.append("parsed JSON scalar")
        if answer is not None and not isinstance(answer, str):
            answer = json.dumps(answer, ensure_ascii=False)
        label = None
        if answer is not None:
            stripped = answer.strip()
            bare = normalize_text(stripped)
            if stripped[:1] in QUOTES and stripped[-1:] in QUOTES:
                steps.append("stripped quotes")
            if stripped.rstrip(TRAILING) != stripped:
                steps.append("stripped trailing punctuation")
            label = self.map_label(answer)
            if label is not None and label != answer.strip():
                steps.append(f"normalised {bare!r} to label {label!r}")
        target = None if example is None else example.target
        scores = {"correct": float(label is not None and label == _as_label(target))}
        reasons = {"parsed": "; ".join(steps) or "as is"}
        if label is None:
            shown = answer if answer is None else answer[:80]
            reasons["correct"] = f"not one of the labels: {shown!r}"
        if self.schema is None and self.labels is not None:
            scores["format_ok"] = float(label is not None)
            reasons["format_ok"] = (
                "one of the labels after normalisation"
                if label is not None
                else f"not one of the labels after normalisation: {answer!r}"[:200]
            )
        return {"parsed": label, "scores": scores, "reasons": reasons}

    def _answer_from_object(self, obj: dict) -> tuple[Any, str]:
        if self.answer_field and self.answer_field in obj:
            return obj[self.answer_field], f"parsed JSON field {self.answer_field}"
        strings = [(k, v) for k, v in obj.items() if isinstance(v, str)]
        if len(strings) == 1:
            return strings[0][1], f"parsed JSON field {strings[0][0]}"
        return None, f"JSON object without a single answer field (keys: {', '.join(map(str, obj))})"

    def _extraction(self, example, output: str) -> dict:
        value, steps = parse_json_lenient(output)
        gold = _as_record(None if example is None else example.target)
        reasons: dict[str, str] = {}
        if not isinstance(value, dict):
            value = {}
            reasons["parsed"] = "no JSON object in the output"
        else:
            reasons["parsed"] = "; ".join(["parsed JSON object", *steps])
        tp, fp, fn = field_counts(value, gold)
        scores = {
            "field_tp": float(tp),
            "field_fp": float(fp),
            "field_fn": float(fn),
            "exact_record": float(fp == 0 and fn == 0),
        }
        if self.schema is None:
            scores["format_ok"] = float("no JSON" not in reasons["parsed"])
            reasons["format_ok"] = "a JSON object" if scores["format_ok"] else reasons["parsed"]
        return {"parsed": value, "scores": scores, "reasons": reasons}

    def _reference_scores(self, example, output: str, result: dict) -> None:
        target = None if example is None else example.target
        # Classification/extraction compare the parsed answer; generation the whole text.
        answer = output if self.task == "generation" else result["parsed"]
        seen = Seen(output, "" if answer is None else _text(answer), target)
        for name, fn in RECORD_SCORES.items():
            if name in self.wanted:
                value = fn(seen, **self.wanted[name])
                if value is not None:
                    result["scores"][name] = value

    def _error_result(self, example, error: str) -> dict:
        reason = f"error: {error}"
        scores: dict[str, float] = {}
        if self.task == "classification":
            scores["correct"] = 0.0
        if self.task == "extraction":
            gold = _as_record(None if example is None else example.target)
            scores.update(field_tp=0.0, field_fp=0.0, field_fn=float(len(_present(gold))))
            scores["exact_record"] = 0.0
        if self.schema is not None or self.labels is not None or self.task == "extraction":
            scores["format_ok"] = 0.0
        for name in RECORD_SCORES:  # an error is a wrong answer for every per-record score
            if name in self.wanted:
                scores[name] = 0.0
        return {"parsed": None, "scores": scores, "reasons": dict.fromkeys(scores, reason)}


# ---------------------------------------------------------------- helpers


def _text(value: Any) -> str:
    return (
        value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    )


def _as_label(target: Any) -> str | None:
    return None if target is None else str(target)


def _as_record(target: Any) -> dict:
    if isinstance(target, str):
        try:
            target = json.loads(target)
        except json.JSONDecodeError:
            return {}
    return target if isinstance(target, dict) else {}


def _present(record: dict) -> dict[str, str]:
    """Fields with a value, in comparison form (null and "" mean the field is absent)."""
    out = {}
    for k, v in record.items():
        if v is None or (isinstance(v, str) and not v.strip()) or v == [] or v == {}:
            continue
        out[str(k)] = normalize_text(_text(v))
    return out


def field_counts(predicted: dict, gold: dict) -> tuple[int, int, int]:
    """Field-level (tp, fp, fn): a field is right when its normalised value equals the gold one;
    a wrong value counts as a false positive and a false negative (the usual slot-F1 convention)."""
    p, g = _present(predicted), _present(gold)
    tp = sum(1 for k, v in p.items() if g.get(k) == v)
    return tp, len(p) - tp, len(g) - tp


def answer_field(schema: Any) -> str | None:
    """The one field of an answer object ({"intent": ...}): the schema's single required
    property, else its single property. Export writes targets the same way."""
    if not isinstance(schema, dict):
        return None
    required = schema.get("required")
    if isinstance(required, list) and len(required) == 1:
        return required[0]
    props = schema.get("properties")
    if isinstance(props, dict) and len(props) == 1:
        return next(iter(props))
    return None


def make_scorer(suite: Any, dataset: Any) -> Scorer:
    """The scorer of a loaded suite and dataset (label table, schema validator, regex)."""
    schema = suite.output_schema
    validator = None
    if schema is not None:
        import jsonschema

        validator = jsonschema.validators.validator_for(schema)(schema)
    field = answer_field(schema)
    entries = [entry_name(e) for e in suite.spec.metrics]
    wanted = {name: args for name, args in entries if name in RECORD_SCORES}
    labels = list(dataset.labels) if dataset.labels is not None else None
    scorer = Scorer(
        task=suite.task,
        schema=schema,
        labels=labels,
        answer_field=field,
        wanted=wanted,
        _validator=validator,
    )
    scorer._label_of = _label_table(labels or [])
    scorer._exact = frozenset(labels or [])
    return scorer


def _label_table(labels: list[str]) -> dict[str, str | None]:
    """Normalised spelling -> label. Two labels normalising alike map to None (exact-only)."""
    table: dict[str, str | None] = {}
    clashes: set[str] = set()
    for label in labels:
        key = normalize_label(label)
        if key in table and table[key] != label:
            clashes.add(key)
        table[key] = label
    for key in clashes:
        table[key] = None
    return table
