"""The training backends behind `finetune: {provider: ...}` and what they report.

A backend registers itself with its own options model (`@backend("openai", options=...)`): the
suite's `finetune:` block carries the common keys (provider, base_model, data, epochs, seed,
validation), and the backend's model validates the rest, with the file:line of the block. The
protocol a backend implements:

- `estimate_usd(spec, train_tokens) -> float | None`: the training cost before any upload;
- `submit(spec, train_path, val_path, metadata) -> job_id`: returns as soon as the job exists;
- `poll(job_id) -> JobState`: status, model id, trained tokens, cost, new events, checkpoints;
- `cancel(job_id) -> JobState`;
- optionally `find(metadata) -> job_id | None`: a job the provider already has for this metadata
  (a command killed before it recorded the id adopts it instead of creating a second one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ValidationError

from harness.suite import Suite, Variant

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class JobState:
    status: Status
    model_id: str | None = None  # a litellm model id ("openai/ft:...") once succeeded
    trained_tokens: int | None = None
    cost_usd: float | None = None  # from trained_tokens; the cost so far on failure
    wall_s: float | None = None  # a self-hosted job's measured wall-clock (its cost's basis)
    events: list[dict[str, Any]] = field(default_factory=list)  # new since the last poll
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # {id, step, model_id, metrics}
    error: str | None = None
    # A self-hosted job's hardware and precisions: "cuda (NVIDIA H100 ×8)", wall × GPUs,
    # what it trained in, what serves it.
    device: str | None = None
    gpu_hours: float | None = None
    precision: str | None = None
    served_precision: str | None = None
    # A self-hosted job's self-check: of verify_total prompts, how many the served model
    # answered as the trained weights did at training time.
    verify_matched: int | None = None
    verify_total: int | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "events"}


@dataclass(frozen=True)
class FinetuneSpec:
    """A variant's `finetune:` block, resolved: common keys plus the backend's options."""

    variant: str
    provider: str
    base_model: str
    teacher: str | None  # `data: {distill: NAME}`; None trains on the train split
    epochs: int | None
    seed: int
    validation: float
    options: Any  # the backend's options model
    api_base: str | None = None  # the variant's, for backends that serve where they train

    def settings(self) -> dict[str, Any]:
        """What defines the training, for the job record (a changed setting is a new job)."""
        return {
            "provider": self.provider,
            "base_model": self.base_model,
            "data": {"distill": self.teacher} if self.teacher else "train",
            "epochs": self.epochs,
            "seed": self.seed,
            "validation": self.validation,
            "options": self.options.model_dump(mode="json"),
        }


class Backend(Protocol):
    def estimate_usd(self, spec: FinetuneSpec, train_tokens: int) -> float | None: ...

    def submit(
        self,
        spec: FinetuneSpec,
        train_path: Path,
        val_path: Path | None,
        metadata: dict[str, str],
        max_cost_usd: float | None = None,
    ) -> str:
        """Start the job; a self-hosted backend stops it once it has cost `max_cost_usd` (the
        budget left), a provider's is priced before it starts."""
        ...

    def poll(self, job_id: str) -> JobState: ...

    def cancel(self, job_id: str) -> JobState: ...


@dataclass(frozen=True)
class Registered:
    name: str
    options: type[BaseModel]
    factory: Any  # (FinetuneSpec) -> Backend
    # Trains on hardware paid by the hour (the report's self-hosted rows), not per token.
    self_hosted: bool = False


BACKENDS: dict[str, Registered] = {}


def backend(name: str, *, options: type[BaseModel], self_hosted: bool = False):
    """Register a backend class under `name`; it is built as `cls(spec)`."""

    def register(cls):
        BACKENDS[name] = Registered(name, options, cls, self_hosted)
        return cls

    return register


def finetune_spec(suite: Suite, variant: Variant) -> FinetuneSpec:
    """The variant's resolved `finetune:` block; SuiteError with its file:line when a key is wrong."""
    ft = variant.finetune
    where = ("variants", variant.index, "finetune")
    if ft is None:
        raise suite.fail(
            f"{variant.name} has no `finetune:` block — add one to train it with harness finetune",
            ("variants", variant.index),
        )
    if ft.provider not in BACKENDS:
        raise suite.fail(
            f"unknown provider {ft.provider!r} — choose one of {sorted(BACKENDS)}",
            (*where, "provider"),
        )
    registered = BACKENDS[ft.provider]
    try:
        options = registered.options.model_validate(ft.model_extra or {})
    except ValidationError as e:
        err = e.errors()[0]
        key = (*where, *err["loc"])
        raise suite.fail(f"{err['msg']} (provider {ft.provider})", key) from None
    teacher = ft.data.distill if not isinstance(ft.data, str) else None
    if teacher is not None:
        names = [v.name for v in suite.variants]
        if teacher not in names or teacher == variant.name:
            raise suite.fail(
                f"unknown teacher {teacher!r} — choose another variant of {names}",
                (*where, "data", "distill"),
            )
    return FinetuneSpec(
        variant=variant.name,
        provider=ft.provider,
        base_model=variant.base_model or "",
        teacher=teacher,
        epochs=ft.epochs,
        seed=ft.seed,
        validation=ft.validation,
        options=options,
        api_base=variant.api_base,
    )


def make_backend(spec: FinetuneSpec) -> Backend:
    return BACKENDS[spec.provider].factory(spec)
