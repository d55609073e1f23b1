"""The suite's models: `SuiteFile` is the YAML as written (strict: unknown keys are errors),
`Suite` the resolved suite with complete `Variant`s (harness.suite.resolve builds it)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from harness.errors import SuiteError
from harness.suite._yaml import format_key, locate
from harness.suite.kinds import KINDS, RETRIEVAL_METHODS


def _one_of(value: str, names: list[str]) -> str:
    """`value` when it is one of the registered `names` (kinds, retrieval methods)."""
    if value not in names:
        shown = [repr(n) for n in names]
        raise ValueError(f"expected one of {', '.join(shown[:-1])} or {shown[-1]} (got {value!r})")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


PositiveInt = Annotated[int, Field(ge=1)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
# Per 1M tokens: the dearest model costs a few hundred dollars; more is a typo (1e308, .inf)
# that would turn every cost the run reports into nonsense after it has paid for the calls.
TokenPrice = Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)]
# Dollars a person types (a wrong answer's cost, a budget): finite and below a trillion.
Dollars = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]


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
    method: str = Field("bm25", json_schema_extra=lambda s: s.update(enum=list(RETRIEVAL_METHODS)))
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

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        return _one_of(v, RETRIEVAL_METHODS)


class TrainingJob(Strict):
    """Where a `finetune:` variant's model came from: its job in the job store, as
    harness.finetune.resolve reads it (never written in a suite)."""

    job_id: str
    provider: str
    self_hosted: bool  # trained on a machine you pay by the hour, not by a provider per token
    method: str | None = None
    trained_tokens: int | None = None
    cost_usd: float | None = None  # this job's own (the variant's training adds failed jobs)
    wall_s: float | None = None
    price_per_hour: float | None = None
    price_per_1m: float | None = None
    device: str | None = None  # self-hosted: where it trained ("cuda (NVIDIA H100 ×8)")
    gpu_hours: float | None = None
    precision: str | None = None  # what it trained in
    served_precision: str | None = None


class Training(Strict):
    cost_usd: NonNegFloat | None = None
    tokens: NonNegFloat | None = None
    price_per_1m: NonNegFloat | None = None
    epochs: PositiveInt = 1
    job: SkipJsonSchema[TrainingJob | None] = None

    def total_usd(self) -> float | None:
        """The training cost; None when nothing prices it (unknown is never $0)."""
        if self.cost_usd is not None:
            return self.cost_usd
        if self.tokens is not None and self.price_per_1m is not None:
            return self.tokens * self.price_per_1m / 1e6 * self.epochs
        return None


class Distill(Strict):
    distill: str = Field(
        description="Teacher variant run over the train split; its correct, in-format answers are the training data."
    )


class Finetune(BaseModel):
    """How a fine-tuned variant is trained (`harness finetune`). The common keys are here; each
    backend (harness.finetune.backends) validates its own keys (e.g. openai's price_per_1m), so
    the extra keys are kept for it."""

    model_config = ConfigDict(extra="allow")
    provider: str = Field("openai", description="Training backend (openai, ...).")
    base_model: str | None = Field(
        None, description="Model to tune, e.g. openai/gpt-4o-mini-2024-07-18 (default: base_model)."
    )
    data: Literal["train"] | Distill = Field(
        "train", description="`train` (the train split's targets) or {distill: <teacher variant>}."
    )
    epochs: PositiveInt | None = Field(
        None, description="Training epochs (default: the provider's)."
    )
    seed: int = Field(0, description="Seed of the shuffle and of the provider's training.")
    validation: float = Field(
        0.0, ge=0, lt=0.5, description="Share of the training rows held out as the validation file."
    )


class Forgetting(Strict):
    """The seed's warning that tuning can degrade what the model did outside the task: the
    trained model and its base run on an out-of-domain suite, judged non-inferior by `margin`."""

    suite: str = Field(description="Out-of-domain suite file (relative to this one).")
    margin: NonNegFloat = Field(description="Largest acceptable drop, in metric units.")
    metric: str | None = Field(
        None, description="Metric of that suite (default: its guard metric, else its first)."
    )


class Pricing(Strict):
    input_per_1m: TokenPrice
    output_per_1m: TokenPrice


class RateLimit(Strict):
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None


ResponseFormat = Literal["output_schema", "json_object"] | dict[str, Any]

# Settings a variant may set itself or inherit from `defaults` / `extends`.
INHERITED = (
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


# Names become file and directory names (runs/<suite>/, results/<variant>.jsonl, MLflow).
MAX_NAME = 64
NAME = {"pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", "max_length": MAX_NAME}

# litellm params whose type is known: a wrong one is found here, not after a failed call each.
_NUMBER_PARAMS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_INTEGER_PARAMS = ("max_tokens", "max_completion_tokens", "seed", "n")


def _check_params(params: dict[str, Any] | None) -> dict[str, Any] | None:
    for key, value in (params or {}).items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key in _NUMBER_PARAMS and not number:
            raise ValueError(f"params.{key} must be a number, e.g. {key}: 0 (got {value!r})")
        if key in _INTEGER_PARAMS and not (number and float(value).is_integer()):
            raise ValueError(f"params.{key} must be a whole number (got {value!r})")
    return params


def _check_api_base(url: str | None) -> str | None:
    from urllib.parse import urlsplit

    if url is None or url.startswith("${env:"):
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            "api_base needs a scheme and a host, e.g. http://localhost:8000/v1 (got no http:// or https://)"
        )
    if "@" in parts.netloc:
        # The OpenAI client sends no basic auth from a URL (every call would fail with 401),
        # and a password there would be written wherever the suite is.
        raise ValueError(
            "credentials in api_base (user:password@host) are not sent by the OpenAI client — "
            "remove them and pass the key as `params: {api_key: ${env:NAME}}` (or a header: "
            '`params: {extra_headers: {Authorization: "Basic ${env:NAME}"}}`)'
        )
    return url


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

    @field_validator("params")
    @classmethod
    def _known_param_types(cls, v):
        return _check_params(v)

    @field_validator("api_base")
    @classmethod
    def _api_base_url(cls, v):
        return _check_api_base(v)


class VariantSpec(Defaults):
    name: str = Field(**NAME, description="Unique name (also the lineage in the ledger).")
    # The names of harness.suite.kinds.KINDS: a new kind is one entry there.
    kind: str = Field("prompt", json_schema_extra=lambda s: s.update(enum=list(KINDS)))
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
    finetune: Finetune | None = Field(
        None,
        description="Train the model with `harness finetune` instead of naming a model id; `harness run` uses the latest succeeded job's model and cost.",
    )

    forgetting: Forgetting | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        return _one_of(v, list(KINDS))


# The guard metric in dollars: (variant − baseline) of the monthly value `value:` defines.
NET_MONTHLY_VALUE = "net_monthly_value"


class Sequential(Strict):
    """Evaluate in stages and stop calling models once every hypothesis is decided."""

    looks: Annotated[int, Field(ge=2, le=20)] = Field(
        description="Number of looks (stages) the test set is split into; the last is the full set."
    )


# Above this share of failed calls a run cannot be judged (exit 3), guarded or not.
DEFAULT_MAX_ERROR_RATE = 0.02


class Guard(Strict):
    metric: str = Field(
        description="A declared quality metric, or net_monthly_value (needs `value:` and `volume:`)."
    )
    test: Literal["superiority", "non-inferiority"] = "superiority"
    margin: NonNegFloat = Field(
        description="Absolute, in metric units (0.05 = 5 points of a rate; dollars a month for net_monthly_value)."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1)
    candidate: str | None = Field(
        None, description="The one variant this hypothesis is about (instead of applies_to)."
    )
    baseline: str | None = Field(
        None, description="The variant it is compared with (default: the suite's baseline)."
    )
    applies_to: list[str] | None = Field(
        None, description="Guarded variants (default: every fine-tuned variant)."
    )
    max_iterations: PositiveInt | None = None
    budget_usd: Dollars | None = None
    max_error_rate: float = Field(DEFAULT_MAX_ERROR_RATE, ge=0, le=1)
    correction: Literal["holm", "none"] = Field(
        "holm",
        description="Family-wise error control across several hypotheses: holm (default) or none. Every entry must say the same.",
    )
    sequential: Sequential | None = Field(
        None,
        description="Group-sequential design: stop calling models once every hypothesis is decided. Every entry must say the same.",
    )


@dataclass(frozen=True)
class Hypothesis:
    """One pre-registered claim: `candidate` vs `baseline` on `metric`. A `guard:` entry with
    several guarded variants is one hypothesis per variant; `key` names it in summary.json's
    verdicts (the candidate's name where that is unique)."""

    key: str
    candidate: str
    baseline: str
    metric: str
    test: str
    margin: float
    confidence: float
    max_iterations: int | None
    budget_usd: float | None
    max_error_rate: float
    index: int | None  # position in the `guard:` list (None: a single mapping)

    @property
    def location(self) -> tuple:
        return ("guard",) if self.index is None else ("guard", self.index)

    def as_dict(self) -> dict[str, Any]:
        """The pre-registration: what the fingerprint and moved-goalposts check compare."""
        return {
            "metric": self.metric,
            "test": self.test,
            "margin": self.margin,
            "confidence": self.confidence,
        }


class Volume(Strict):
    monthly_requests: Annotated[float, Field(gt=0, le=1e15, allow_inf_nan=False)]


class Value(Strict):
    """What a wrong answer costs the business: the monthly cost of a variant is
    volume × (API cost per request + error rate × error cost) + training / amortise_months."""

    error_cost_usd: Dollars = Field(description="Cost of one wrong answer, in dollars.")
    per_class: dict[str, Dollars] | None = Field(
        None,
        description="Classification: the cost of a wrong answer by its true class (others cost error_cost_usd).",
    )
    amortise_months: Annotated[float, Field(gt=0, le=1200, allow_inf_nan=False)] = Field(
        12, description="Months over which a variant's training cost is spread."
    )


MetricEntry = str | dict[str, dict[str, Any] | str]


class DiagnoseSettings(Strict):
    """What `harness diagnose --probe stronger` asks (the suite's own choice of a bigger model)."""

    stronger: str | None = Field(
        None,
        description="A stronger model (litellm id) for `harness diagnose --probe stronger`, e.g. openai/gpt-4o.",
    )


class SuiteFile(Strict):
    """The suite YAML as written."""

    name: str = Field(**NAME)
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
    guard: Guard | list[Guard] | None = Field(
        None,
        description="The pre-registered hypothesis, or a list of them (Holm across the list unless `correction: none`).",
    )
    volume: Volume | None = None
    value: Value | None = None
    diagnose: DiagnoseSettings | None = None

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

    @field_validator("guard")
    @classmethod
    def _guard_list(cls, v):
        if isinstance(v, list):
            if not v:
                # An empty list would run every variant unguarded while the suite looks guarded.
                raise ValueError(
                    "empty guard list — write at least one hypothesis, or remove `guard:`"
                )
            dumped = [g.model_dump(exclude_unset=True) for g in v]
            for i, g in enumerate(dumped):
                if g in dumped[:i]:
                    raise ValueError(
                        f"guard[{i}] repeats guard[{dumped.index(g)}] word for word — a "
                        "duplicate hypothesis would be counted twice in the Holm correction; "
                        "remove one"
                    )
        return v


# ---------------------------------------------------------------- resolved suite


class Variant(BaseModel):
    """A variant with defaults and `extends` applied; what runners consume."""

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
    finetune: Finetune | None = None
    forgetting: Forgetting | None = None
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

    @property
    def guards(self) -> list[Guard]:
        """The `guard:` entries: a single mapping is a one-element list."""
        g = self.spec.guard
        if g is None:
            return []
        return list(g) if isinstance(g, list) else [g]

    @property
    def correction(self) -> str:
        return self.guards[0].correction if self.guards else "holm"

    @property
    def sequential(self) -> Sequential | None:
        return self.guards[0].sequential if self.guards else None

    def hypotheses(self) -> list[Hypothesis]:
        """Every guard entry expanded to one hypothesis per guarded variant, in suite order."""
        listed = isinstance(self.spec.guard, list)
        rows = []
        for i, g in enumerate(self.guards):
            baseline = g.baseline or self.baseline
            if g.candidate is not None:
                names = [g.candidate]
            elif g.applies_to is not None:
                names = list(g.applies_to)
            else:
                names = [
                    v.name for v in self.variants if KINDS[v.kind].trained and v.name != baseline
                ]
            rows += [(i if listed else None, g, n, baseline) for n in names]
        out = []
        for index, g, name, baseline in rows:
            key = name
            if sum(r[2] == name for r in rows) > 1:
                key = f"{name} vs {baseline}"
                if sum(r[2] == name and r[3] == baseline for r in rows) > 1:
                    key += f" ({g.metric})"
            out.append(
                Hypothesis(
                    key=key,
                    candidate=name,
                    baseline=baseline,
                    metric=g.metric,
                    test=g.test,
                    margin=g.margin,
                    confidence=g.confidence,
                    max_iterations=g.max_iterations,
                    budget_usd=g.budget_usd,
                    max_error_rate=g.max_error_rate,
                    index=index,
                )
            )
        return out

    def guarded(self) -> list[str]:
        """The variants some hypothesis is about (each a lineage in the ledger), in order."""
        return list(dict.fromkeys(h.candidate for h in self.hypotheses()))

    def max_error_rate(self, name: str) -> float:
        """The provider-error level a variant must stay under to be judged or valued: the
        strictest of the hypotheses naming it, else of any hypothesis, else the default."""
        hyps = self.hypotheses()
        rates = [h.max_error_rate for h in hyps if name in (h.candidate, h.baseline)] or [
            h.max_error_rate for h in hyps
        ]
        return min(rates, default=DEFAULT_MAX_ERROR_RATE)

    def hypothesis(self) -> dict[str, Any] | None:
        """summary.json's `hypothesis`: the guard's (metric, test, margin, confidence) for a
        single `guard:` mapping as before; for a list, one entry per hypothesis with its key,
        candidate and baseline."""
        hyps = self.hypotheses()
        if not self.guards:
            return None
        if not isinstance(self.spec.guard, list):
            return self.guards[0].model_dump(include={"metric", "test", "margin", "confidence"})
        return {
            "hypotheses": [
                {"key": h.key, "candidate": h.candidate, "baseline": h.baseline, **h.as_dict()}
                for h in hyps
            ],
            "correction": self.correction,
        }

    def fail(self, message: str, key: tuple = ()) -> SuiteError:
        line, col = self.locate(key)
        return SuiteError(
            message, file=self.display_path, key=format_key(key) or None, line=line, column=col
        )

    def locate(self, key: tuple) -> tuple[int | None, int | None]:
        return locate(self.locations, key)


DEFAULT_TIMEOUT_S = 60.0

EXAMPLES = {
    "model": "e.g. openai/gpt-4o-mini, or local/smollm2 (no API key)",
    "user": 'e.g. user: "Question: {{ text }}"',
}


def suite_hash(suite: Suite) -> str:
    canonical = json.dumps(suite.raw, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def json_schema() -> dict[str, Any]:
    """JSON Schema of the suite file, for editors (`# yaml-language-server: $schema=...`)."""
    schema = SuiteFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "harness suite"
    return schema
