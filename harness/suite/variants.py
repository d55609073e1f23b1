"""A variant as written (`VariantSpec`, with `defaults`) and resolved (`Variant`): model, prompts,
params, retrieval, training and fine-tuning, the forgetting check."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from harness.suite.base import NAME, NonNegFloat, PositiveInt, Strict, TokenPrice, one_of
from harness.suite.kinds import KINDS, RETRIEVAL_METHODS


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
        return one_of(v, RETRIEVAL_METHODS)


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
        return one_of(v, list(KINDS))


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


DEFAULT_TIMEOUT_S = 60.0

EXAMPLES = {
    "model": "e.g. openai/gpt-4o-mini, or local/smollm2 (no API key)",
    "user": 'e.g. user: "Question: {{ text }}"',
}
