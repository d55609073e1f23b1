"""OpenAI fine-tuning through the official SDK (files, jobs with `method`, metadata, events and
checkpoints — what litellm's wrappers lack). Any OpenAI-compatible server works via `api_base`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import ProviderError, SuiteError
from harness.finetune.backends import FinetuneSpec, JobState, backend

STATUS = {"validating_files": "queued", "queued": "queued", "running": "running"}


class OpenAIOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    price_per_1m: Annotated[float, Field(ge=0)] = Field(
        description="Training price per 1M trained tokens (the cost is computed from the job's trained_tokens)."
    )
    suffix: str | None = Field(None, max_length=64)
    method: Literal["supervised"] = "supervised"
    batch_size: Annotated[int, Field(ge=1)] | None = None
    learning_rate_multiplier: Annotated[float, Field(gt=0)] | None = None
    api_base: str | None = Field(None, description="Default: the variant's api_base.")


def _api_model(model: str) -> str:
    return model.split("/", 1)[1] if model.startswith("openai/") else model


@backend("openai", options=OpenAIOptions)
class OpenAIBackend:
    def __init__(self, spec: FinetuneSpec):
        self.spec = spec
        self.options: OpenAIOptions = spec.options
        self._seen: set[str] = set()
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import openai

            key = os.environ.get("OPENAI_API_KEY")
            if not key:
                raise SuiteError(
                    f"{self.spec.variant}: fine-tuning needs OPENAI_API_KEY — set it in the environment"
                )
            self._client = openai.OpenAI(
                api_key=key, base_url=self.options.api_base or self.spec.api_base, max_retries=3
            )
        return self._client

    def _call(self, what: str, fn, *args, **kwargs):
        import openai

        try:
            return fn(*args, **kwargs)
        except openai.APIStatusError as e:
            raise ProviderError(f"OpenAI {what}: HTTP {e.status_code}: {_message(e)}") from None
        except openai.APIError as e:
            raise ProviderError(f"OpenAI {what}: {e.__class__.__name__}: {e}") from None

    def estimate_usd(self, spec: FinetuneSpec, train_tokens: int) -> float | None:
        epochs = spec.epochs or 1
        return train_tokens * epochs * self.options.price_per_1m / 1e6

    def submit(
        self, spec, train_path: Path, val_path: Path | None, metadata, max_cost_usd=None
    ) -> str:
        # max_cost_usd: unused — the job is priced from its tokens before it is created.
        files = self.client.files
        with open(train_path, "rb") as f:
            train = self._call("upload", files.create, file=f, purpose="fine-tune")
        val = None
        if val_path is not None:
            with open(val_path, "rb") as f:
                val = self._call("upload", files.create, file=f, purpose="fine-tune")
        hyper = {
            k: v
            for k, v in {
                "n_epochs": spec.epochs,
                "batch_size": self.options.batch_size,
                "learning_rate_multiplier": self.options.learning_rate_multiplier,
            }.items()
            if v is not None
        }
        kwargs = {
            "model": _api_model(spec.base_model),
            "training_file": train.id,
            "seed": spec.seed,
            "metadata": metadata,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
        }
        if val is not None:
            kwargs["validation_file"] = val.id
        if self.options.suffix:
            kwargs["suffix"] = self.options.suffix
        job = self._call("create job", self.client.fine_tuning.jobs.create, **kwargs)
        return job.id

    def find(self, metadata: dict[str, str]) -> str | None:
        """A live or succeeded job created with exactly this metadata (a lost record's job)."""
        jobs = self.client.fine_tuning.jobs
        page = self._call(
            "list jobs",
            jobs.list,
            metadata={"harness_inputs": metadata["harness_inputs"]},
            limit=20,
        )
        for job in page.data:
            if (job.metadata or {}) == metadata and job.status not in ("failed", "cancelled"):
                return job.id
        return None

    def poll(self, job_id: str) -> JobState:
        jobs = self.client.fine_tuning.jobs
        job = self._call("retrieve job", jobs.retrieve, job_id)
        page = self._call("list events", jobs.list_events, job_id, limit=100)
        events = []
        for e in reversed(page.data):  # newest first on the wire
            if e.id in self._seen:
                continue
            self._seen.add(e.id)
            events.append(
                {"at": e.created_at, "level": e.level, "message": e.message, "data": e.data}
            )
        status = STATUS.get(job.status, job.status)
        checkpoints = []
        if status in ("running", "succeeded"):
            cps = self._call("list checkpoints", jobs.checkpoints.list, job_id, limit=100)
            checkpoints = sorted(
                (
                    {
                        "id": c.id,
                        "step": c.step_number,
                        "model_id": "openai/" + c.fine_tuned_model_checkpoint,
                        "metrics": c.metrics.model_dump(exclude_none=True) if c.metrics else {},
                    }
                    for c in cps.data
                ),
                key=lambda c: c["step"],
            )
        tokens = job.trained_tokens
        return JobState(
            status=status,
            model_id="openai/" + job.fine_tuned_model if job.fine_tuned_model else None,
            trained_tokens=tokens,
            cost_usd=None if tokens is None else tokens * self.options.price_per_1m / 1e6,
            events=events,
            checkpoints=checkpoints,
            error=_job_error(job.error) if status == "failed" else None,
        )

    def cancel(self, job_id: str) -> JobState:
        self._call("cancel job", self.client.fine_tuning.jobs.cancel, job_id)
        return self.poll(job_id)


def _job_error(error) -> str:
    if error is None:
        return "failed (the provider gave no reason)"
    parts = [p for p in (error.code, error.message) if p]
    text = ": ".join(parts) or "failed"
    return f"{text} (param {error.param})" if error.param else text


def _message(e) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    return str(body.get("message") or e.message)
