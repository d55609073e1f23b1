"""The suite: strict pydantic models of the YAML file, loading with line numbers, and resolution.

Loading has two steps. `SuiteFile` validates the YAML as written (unknown keys are errors and
every error points at the YAML line). `resolve` then applies `defaults` and `extends`, makes paths
absolute, and checks what only the whole suite can tell (baseline exists, names are unique...).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import SuiteError, SuiteErrors


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


PositiveInt = Annotated[int, Field(ge=1)]
NonNegFloat = Annotated[float, Field(ge=0)]


class Sample(Strict):
    """Deterministic subset of the test split."""

    n: PositiveInt = Field(description="Number of test examples to keep.")
    seed: int = Field(0, description="Seed of the draw; the same seed gives the same examples.")
    stratify: bool = Field(False, description="Keep the class proportions of the full test set.")


class DataSpec(Strict):
    test: str = Field(
        description="Test split (csv, jsonl, json list of records, parquet), relative to the suite file."
    )
    train: str | None = Field(
        None,
        description="Train split: few-shot pool, readiness checks, fine-tune export. Never scored.",
    )
    input: str | list[str] = Field(description="Field(s) of each record available to templates.")
    target: str | None = Field(
        None,
        description="Field holding the expected answer (label, JSON record or reference text).",
    )
    id: str | None = Field(
        None, description="Field holding a stable example id (default: a hash of the record)."
    )
    gold: str | None = Field(
        None, description="Field naming the gold passage id(s) for retrieval metrics (RAG)."
    )
    sample: Sample | None = None

    @property
    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class FewShot(Strict):
    k: PositiveInt = Field(description="Number of examples shown in the prompt (as `examples`).")
    select: Literal["random", "stratified", "similar"] = Field(
        "random",
        description="random; stratified (one per class in turn); similar (tf-idf nearest to the input).",
    )
    seed: int = 0


class Chunking(Strict):
    size: PositiveInt = 800
    overlap: Annotated[int, Field(ge=0)] = 100
    unit: Literal["chars", "tokens"] = "chars"


class CorpusColumn(Strict):
    path: str = Field(description="Data file (csv, jsonl, json, parquet) holding the passages.")
    text: str = Field(description="Column with the passage text.")
    id: str | None = Field(
        None, description="Column with the passage id (matched against data.gold)."
    )


class Retrieval(Strict):
    corpus: str | list[str] | CorpusColumn | None = Field(
        None,
        description="Files/globs (md, txt) or a data file column. Not used with `retriever:` (your function searches).",
    )
    chunk: Chunking = Field(default_factory=Chunking)
    method: Literal["bm25", "tfidf", "embedding"] = "bm25"
    embedding_model: str | None = Field(
        None, description="litellm embedding model, for method: embedding."
    )
    k: PositiveInt = Field(
        4, description="Chunks per query (also the k passed to your `retriever`)."
    )
    query: str | None = Field(
        None,
        description="Jinja2 template of the search query (default: the input fields, one per line).",
    )


class Training(Strict):
    cost_usd: NonNegFloat | None = None
    tokens: NonNegFloat | None = None
    price_per_1m: NonNegFloat | None = None
    epochs: PositiveInt = 1

    def total_usd(self) -> float:
        if self.cost_usd is not None:
            return self.cost_usd
        if self.tokens is not None and self.price_per_1m is not None:
            return self.tokens * self.price_per_1m / 1e6 * self.epochs
        return 0.0


class Pricing(Strict):
    input_per_1m: NonNegFloat
    output_per_1m: NonNegFloat


class RateLimit(Strict):
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None


ResponseFormat = Literal["output_schema", "json_object"] | dict[str, Any]

# Settings a variant may set itself or inherit from `defaults` / `extends`.
_INHERITED = (
    "model",
    "system",
    "user",
    "params",
    "api_base",
    "response_format",
    "repeats",
    "rate_limit",
    "pricing",
    "few_shot",
    "timeout",
)


class Defaults(Strict):
    model: str | None = None
    system: str | None = Field(None, description="Jinja2 system template.")
    user: str | None = Field(
        None, description="Jinja2 user template; example input fields are variables."
    )
    params: dict[str, Any] | None = Field(
        None, description="litellm completion params (temperature, max_tokens, ...)."
    )
    api_base: str | None = None
    response_format: ResponseFormat | None = Field(
        None,
        description="'output_schema' (structured output with the suite's output_schema), 'json_object', or an inline JSON Schema.",
    )
    repeats: PositiveInt | None = Field(
        None, description="Samples per example (>= 2 enables consistency)."
    )
    rate_limit: RateLimit | None = None
    pricing: Pricing | None = None
    few_shot: FewShot | None = None
    timeout: Annotated[float, Field(gt=0)] | None = Field(
        None, description="Seconds per call before it is retried."
    )


class VariantSpec(Defaults):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        description="Unique name (also the lineage in the ledger).",
    )
    kind: Literal["prompt", "rag", "fine-tuned"] = "prompt"
    extends: str | None = Field(
        None, description="Name of a variant whose settings this one starts from."
    )
    retrieval: Retrieval | None = None
    retriever: str | None = Field(
        None,
        pattern=r"^[\w.]+:[\w]+$",
        description="'package.module:function' of your own retriever.",
    )
    base_model: str | None = None
    training: Training | None = None


class Guard(Strict):
    metric: str
    test: Literal["superiority", "non-inferiority"] = "superiority"
    margin: NonNegFloat = Field(
        description="Absolute, in metric units (0.05 = 5 points of a rate)."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1)
    applies_to: list[str] | None = Field(
        None, description="Guarded variants (default: every fine-tuned variant)."
    )
    max_iterations: PositiveInt | None = None
    budget_usd: NonNegFloat | None = None
    max_error_rate: float = Field(0.02, ge=0, le=1)


class Volume(Strict):
    monthly_requests: Annotated[float, Field(gt=0)]


MetricEntry = str | dict[str, dict[str, Any] | str]


class SuiteFile(Strict):
    """The suite YAML as written."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    description: str | None = None
    task: Literal["classification", "extraction", "generation"]
    data: DataSpec
    labels: Literal["from-data"] | list[str] | None = None
    output_schema: str | None = Field(
        None, description="JSON Schema file; enables format_compliance."
    )
    metrics: list[MetricEntry] = Field(min_length=1)
    defaults: Defaults = Field(default_factory=Defaults)
    variants: list[VariantSpec] = Field(min_length=1)
    baseline: str | None = None
    guard: Guard | None = None
    volume: Volume | None = None

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, v):
        if isinstance(v, list):
            if not v:
                raise ValueError("empty label list — list the labels, or write `labels: from-data`")
            dupes = sorted({x for x in v if v.count(x) > 1})
            if dupes:
                raise ValueError(f"duplicate labels {dupes}")
        return v


# ---------------------------------------------------------------- resolved suite


class Variant(BaseModel):
    """A variant with defaults and `extends` applied; what runners consume."""

    model_config = ConfigDict(frozen=False)

    name: str
    kind: str
    model: str
    system: str | None
    user: str
    params: dict[str, Any]
    api_base: str | None
    response_format: dict[str, Any] | str | None
    repeats: int
    rate_limit: RateLimit | None
    pricing: Pricing | None
    few_shot: FewShot | None
    timeout: float
    retrieval: Retrieval | None
    retriever: str | None
    base_model: str | None
    training: Training | None
    index: int  # position in the YAML `variants` list, for error locations


class Suite(BaseModel):
    """A loaded, resolved suite: paths absolute, variants complete."""

    path: Path
    display_path: str
    raw: dict[str, Any]
    spec: SuiteFile
    variants: list[Variant]
    output_schema: dict[str, Any] | None
    locations: dict[tuple, tuple[int, int]]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def baseline(self) -> str:
        return self.spec.baseline or self.variants[0].name

    @property
    def root(self) -> Path:
        return self.path.parent

    def resolve_path(self, rel: str) -> Path:
        p = Path(rel).expanduser()
        return p if p.is_absolute() else (self.root / p)

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise SuiteError(
            f"unknown variant {name!r} — choose one of {[v.name for v in self.variants]}"
        )

    def guarded(self) -> list[str]:
        g = self.spec.guard
        if g is None:
            return []
        if g.applies_to is not None:
            return list(g.applies_to)
        return [v.name for v in self.variants if v.kind == "fine-tuned" and v.name != self.baseline]

    def hypothesis(self) -> dict[str, Any] | None:
        g = self.spec.guard
        if g is None:
            return None
        return {"metric": g.metric, "test": g.test, "margin": g.margin, "confidence": g.confidence}

    def fail(self, message: str, key: tuple = ()) -> SuiteError:
        line, col = self.locate(key)
        return SuiteError(
            message, file=self.display_path, key=format_key(key) or None, line=line, column=col
        )

    def locate(self, key: tuple) -> tuple[int | None, int | None]:
        return _locate(self.locations, key)


DEFAULT_TIMEOUT_S = 60.0

EXAMPLES = {
    "model": "e.g. openai/gpt-4o-mini, or local/smollm2 (no API key)",
    "user": 'e.g. user: "Question: {{ text }}"',
}


def format_key(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


# ---------------------------------------------------------------- YAML with positions


def _positions(node: yaml.Node, prefix: tuple = ()) -> dict[tuple, tuple[int, int]]:
    """Map each key path to the 1-based (line, column) where its value (or key) starts."""
    out = {prefix: (node.start_mark.line + 1, node.start_mark.column + 1)}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
            sub = prefix + (key,)
            out.update(_positions(v, sub))
            # Point unknown-key errors at the key itself, not its value.
            out[sub + ("__key__",)] = (k.start_mark.line + 1, k.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(_positions(item, prefix + (i,)))
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for k, _ in node.value:
        key = loader.construct_object(k, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key]})", k.start_mark
            )
        seen[key] = k.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> tuple[Any, dict[tuple, tuple[int, int]]]:
    if not path.exists():
        raise SuiteError(f"suite file not found: {path} — check the path")
    if path.is_dir():
        raise SuiteError(f"{path} is a directory — pass the suite's .yaml file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise SuiteError(
            f"not UTF-8 (byte {e.start}) — save the file as UTF-8", file=str(path), line=line
        ) from None
    try:
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        context = getattr(e, "context", None)
        msg = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
        fix = (
            " — keep one of them"
            if problem.startswith("duplicate key")
            else " — fix the syntax (indentation, quotes, colons)"
        )
        raise SuiteError(
            msg + fix,
            file=str(path),
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    if data is None:
        raise SuiteError("the suite is empty — start from suites/quickstart.yaml", file=str(path))
    if not isinstance(data, dict):
        raise SuiteError(
            "a suite is a YAML mapping (name:, task:, data:, ...)", file=str(path), line=1
        )
    return data, _positions(node) if node is not None else {}


# ---------------------------------------------------------------- validation errors


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
}


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


def _validation_errors(exc: ValidationError, path: Path, raw: Any, locations) -> SuiteErrors:
    errors: list[SuiteError] = []
    seen: set[tuple] = set()
    for err in exc.errors(include_url=False):
        loc = _clean_loc(tuple(err["loc"]), raw)
        # A union reports one error per branch; the first is the most useful.
        if loc in seen:
            continue
        seen.add(loc)
        key_for_line = loc + ("__key__",) if err["type"] == "extra_forbidden" else loc
        line, col = _locate(locations, key_for_line)
        errors.append(
            SuiteError(
                _describe(err, loc, raw), file=str(path), key=format_key(loc), line=line, column=col
            )
        )
    errors.sort(key=lambda e: (e.line or 0, e.column or 0))
    return SuiteErrors(errors)


def _locate(locations, key):
    k = tuple(key)
    while k and k not in locations:
        k = k[:-1]
    return locations.get(k, (None, None))


# ---------------------------------------------------------------- loading and resolution


def load_suite(path: str | Path) -> Suite:
    """Read, validate and resolve a suite file. Raises SuiteError with file:line: key: message."""
    path = Path(path)
    raw, locations = read_yaml(path)
    try:
        spec = SuiteFile.model_validate(raw)
    except ValidationError as e:
        raise _validation_errors(e, path, raw, locations) from None
    return resolve(path, raw, spec, locations)


def resolve(path: Path, raw: dict, spec: SuiteFile, locations) -> Suite:
    """Apply defaults/extends and whole-suite checks. `path` is shown in errors as the user gave it."""
    problems: list[SuiteError] = []

    def fail(msg: str, key: tuple):
        line, col = _locate(locations, key)
        problems.append(SuiteError(msg, file=str(path), key=format_key(key), line=line, column=col))

    names: dict[str, int] = {}
    for i, v in enumerate(spec.variants):
        if v.name in names:
            fail(
                f"duplicate variant name {v.name!r} (also variants[{names[v.name]}]) — names must be unique",
                ("variants", i, "name"),
            )
        else:
            names[v.name] = i

    by_name = {v.name: v for v in spec.variants}
    resolved: list[Variant] = []
    for i, v in enumerate(spec.variants):
        chain = _extends_chain(v, by_name, i, fail)
        if chain is None:
            continue
        merged: dict[str, Any] = {}
        for source in [spec.defaults, *reversed(chain)]:
            for key in _INHERITED:
                val = getattr(source, key, None)
                if val is None:
                    continue
                if key == "params" and merged.get("params"):
                    merged["params"] = {**merged["params"], **val}
                else:
                    merged[key] = val
        # Kind-specific settings come only from the variant chain, never from defaults.
        for key in ("retrieval", "retriever", "base_model", "training"):
            for source in reversed(chain):
                val = getattr(source, key)
                if val is not None:
                    merged[key] = val
        kind = (
            v.kind
            if "kind" in v.model_fields_set
            else next((c.kind for c in chain if "kind" in c.model_fields_set), "prompt")
        )
        if not merged.get("model"):
            fail(
                "required — " + EXAMPLES["model"] + " (set it on the variant or in defaults)",
                ("variants", i, "model"),
            )
            continue
        if not merged.get("user"):
            fail(
                "required — " + EXAMPLES["user"] + " (set it on the variant or in defaults)",
                ("variants", i, "user"),
            )
            continue
        if kind == "rag" and not (merged.get("retrieval") or merged.get("retriever")):
            fail(
                "a rag variant needs `retrieval:` or `retriever: package.module:function`",
                ("variants", i),
            )
        if kind != "rag" and (merged.get("retrieval") or merged.get("retriever")):
            fail("retrieval settings need `kind: rag`", ("variants", i, "kind"))
        # With `retriever:`, `retrieval:` may only tune k and query; the corpus is the function's.
        rspec = merged.get("retrieval")
        if merged.get("retriever") and rspec is not None and rspec.corpus is not None:
            fail(
                "`retrieval.corpus` is for built-in retrieval — with `retriever:` your function searches; "
                "keep only k/query under `retrieval:`",
                ("variants", i, "retrieval", "corpus"),
            )
        elif (
            kind == "rag"
            and not merged.get("retriever")
            and rspec is not None
            and rspec.corpus is None
        ):
            fail(
                "required — files/globs (e.g. docs/*.md) or {path, text, id} of a data file; "
                "or set `retriever: package.module:function`",
                ("variants", i, "retrieval", "corpus"),
            )
        if kind == "fine-tuned" and not merged.get("base_model"):
            fail(
                "required for a fine-tuned variant — the model it was tuned from, e.g. openai/gpt-4o-mini",
                ("variants", i, "base_model"),
            )
        if kind != "fine-tuned" and (merged.get("training") or merged.get("base_model")):
            fail(
                "`training`/`base_model` belong to `kind: fine-tuned` variants",
                ("variants", i, "kind"),
            )
        if merged.get("few_shot") and not spec.data.train:
            fail(
                "few_shot draws from the train split — add `data.train:` (never from test)",
                ("variants", i, "few_shot"),
            )
        rf = merged.get("response_format")
        if rf == "output_schema" and not spec.output_schema:
            fail(
                "response_format: output_schema needs a top-level `output_schema:` file",
                ("variants", i, "response_format"),
            )
        resolved.append(
            Variant(
                name=v.name,
                kind=kind,
                model=merged["model"],
                system=merged.get("system"),
                user=merged["user"],
                params=dict(merged.get("params") or {}),
                api_base=merged.get("api_base"),
                response_format=rf,
                repeats=merged.get("repeats") or 1,
                rate_limit=merged.get("rate_limit"),
                pricing=merged.get("pricing"),
                few_shot=merged.get("few_shot"),
                timeout=merged.get("timeout") or DEFAULT_TIMEOUT_S,
                retrieval=merged.get("retrieval"),
                retriever=merged.get("retriever"),
                base_model=merged.get("base_model"),
                training=merged.get("training"),
                index=i,
            )
        )

    if spec.baseline is not None and spec.baseline not in names:
        fail(f"unknown variant {spec.baseline!r} — choose one of {list(names)}", ("baseline",))
    if spec.task == "classification" and spec.labels is None:
        fail("required for classification — `labels: from-data` or a list of labels", ("labels",))
    if spec.task != "generation" and not spec.data.target:
        fail(
            f"required for task {spec.task} — the field holding the expected answer",
            ("data", "target"),
        )
    if spec.guard:
        for j, name in enumerate(spec.guard.applies_to or []):
            if name not in names:
                fail(
                    f"unknown variant {name!r} — choose one of {list(names)}",
                    ("guard", "applies_to", j),
                )
            elif name == (spec.baseline or spec.variants[0].name):
                fail("the baseline cannot be guarded against itself", ("guard", "applies_to", j))

    from harness.metrics import validate_metrics  # light: numpy only, no sklearn

    validate_metrics(spec, fail)
    if spec.guard is not None:
        _validate_guard_metric(spec, fail)

    output_schema = None
    if spec.output_schema:
        output_schema = _load_json_schema(path, spec.output_schema, locations, fail)

    if problems:
        raise SuiteErrors(problems)
    return Suite(
        path=path.resolve(),
        display_path=str(path),
        raw=raw,
        spec=spec,
        variants=resolved,
        output_schema=output_schema,
        locations=locations,
    )


def _validate_guard_metric(spec: SuiteFile, fail) -> None:
    """The verdict needs a quality metric the run computes (declared in `metrics:`)."""
    from harness.metrics import entry_name, lookup

    g = spec.guard.metric
    declared = [entry_name(e)[0] for e in spec.metrics]
    if g not in declared:
        fail(
            f"{g!r} is not in `metrics:` — add it there so it is computed, or guard one of {declared}",
            ("guard", "metric"),
        )
        return
    m = lookup(g)
    if m is not None and not m.quality:
        fail(
            f"{g!r} is not a quality metric — guard a quality metric (e.g. accuracy, macro_f1, field_f1); cost shows as the cost ratio and break-even",
            ("guard", "metric"),
        )


def _extends_chain(
    v: VariantSpec, by_name: dict[str, VariantSpec], i: int, fail
) -> list[VariantSpec] | None:
    """The variant followed by its ancestors (nearest first)."""
    chain = [v]
    seen = {v.name}
    cur = v
    while cur.extends:
        parent = by_name.get(cur.extends)
        if parent is None:
            fail(
                f"unknown variant {cur.extends!r} — choose one of {list(by_name)}",
                ("variants", i, "extends"),
            )
            return None
        if parent.name in seen:
            fail(
                f"`extends` cycle: {' -> '.join([*[c.name for c in chain], parent.name])}",
                ("variants", i, "extends"),
            )
            return None
        chain.append(parent)
        seen.add(parent.name)
        cur = parent
    return chain


def _load_json_schema(path: Path, rel: str, locations, fail) -> dict | None:
    import jsonschema

    p = Path(rel) if Path(rel).is_absolute() else path.parent / rel
    if not p.exists():
        fail(
            f"file not found: {p} — check the path (relative to the suite file)", ("output_schema",)
        )
        return None
    try:
        schema = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        fail(f"{p} is not UTF-8 — save it as UTF-8", ("output_schema",))
        return None
    except json.JSONDecodeError as e:
        fail(f"{p}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}", ("output_schema",))
        return None
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        where = "/".join(str(x) for x in e.absolute_path) or "(root)"
        fail(f"{p}: not a valid JSON Schema at {where}: {e.message}", ("output_schema",))
        return None
    return schema


def suite_hash(suite: Suite) -> str:
    canonical = json.dumps(suite.raw, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def json_schema() -> dict[str, Any]:
    """JSON Schema of the suite file, for editors (`# yaml-language-server: $schema=...`)."""
    schema = SuiteFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "harness suite"
    return schema
