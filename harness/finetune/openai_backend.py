"""OpenAI fine-tuning through the official SDK (files, jobs with `method`, metadata, events and
checkpoints — what litellm's wrappers lack). Any OpenAI-compatible server works via `api_base`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness._util.text import strip_controls
from harness.calls.create import create_once, no_retries
from harness.calls.engine import plausible_count
from harness.errors import ProviderError, SuiteError
from harness.finetune.backends import FinetuneSpec, JobState, backend
from harness.suite.secrets import redact_text

STATUS = {"validating_files": "queued", "queued": "queued", "running": "running"}


class OpenAIOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    price_per_1m: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] = Field(
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
        # Jobs a retried create turned up besides the adopted one (recorded by the caller).
        self.duplicates: list[str] = []

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
        except openai.APIError as e:
            raise ProviderError(f"OpenAI {what}: {_describe(e)}") from None

    def estimate_usd(self, spec: FinetuneSpec, train_tokens: int) -> float | None:
        epochs = spec.epochs or 1
        return train_tokens * epochs * self.options.price_per_1m / 1e6

    def submit(
        self, spec, train_path: Path, val_path: Path | None, metadata, max_cost_usd=None
    ) -> str:
        # max_cost_usd: unused — the job is priced from its tokens before it is created.
        tag = metadata["harness_inputs"]
        train = self._upload(train_path, f"harness-{tag}-train.jsonl")
        val = None
        if val_path is not None:
            val = self._upload(val_path, f"harness-{tag}-val.jsonl")
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
            "training_file": train,
            "seed": spec.seed,
            "metadata": metadata,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
        }
        if val is not None:
            kwargs["validation_file"] = val
        if self.options.suffix:
            kwargs["suffix"] = self.options.suffix
        jobs = no_retries(self.client).fine_tuning.jobs
        job_id, self.duplicates = create_once(
            "OpenAI create job",
            lambda: jobs.create(**kwargs).id,
            lambda: self.find_all(metadata),
            describe=_describe,
        )
        return job_id

    def _upload(self, path: Path, name: str) -> str:
        """The file's id: uploaded once under a name made of the inputs' digest, so a retry
        finds an upload the provider kept although it answered with an error."""
        data = path.read_bytes()
        files = no_retries(self.client).files

        def find() -> list[str]:
            page = self._call("list files", self.client.files.list, purpose="fine-tune")
            return [f.id for f in page.data if f.filename == name and f.bytes == len(data)]

        file_id, _ = create_once(
            "OpenAI upload",
            lambda: files.create(file=(name, data), purpose="fine-tune").id,
            find,
            describe=_describe,
        )
        return file_id

    def find(self, metadata: dict[str, str]) -> str | None:
        """A live or succeeded job created with exactly this metadata (a lost record's job)."""
        found = self.find_all(metadata)
        self.duplicates = found[1:]
        return found[0] if found else None

    def find_all(self, metadata: dict[str, str]) -> list[str]:
        """Every live or succeeded job created with exactly this metadata, oldest first."""
        jobs = self.client.fine_tuning.jobs
        page = self._call(
            "list jobs",
            jobs.list,
            metadata={"harness_inputs": metadata["harness_inputs"]},
            limit=20,
        )
        found = [
            job
            for job in page.data
            if (job.metadata or {}) == metadata and job.status not in ("failed", "cancelled")
        ]
        return [job.id for job in sorted(found, key=lambda j: j.created_at or 0)]

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
                {"at": e.created_at, "level": e.level, "message": _clean(e.message), "data": e.data}
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
        tokens = plausible_count(job.trained_tokens)
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
    return _clean(f"{text} (param {error.param})" if error.param else text)


def _clean(text) -> str:
    """Provider text as harness keeps and prints it: no credential, no terminal control."""
    return strip_controls(redact_text(str(text or "")))


def _message(e) -> str:
    body = e.body if isinstance(e.body, dict) else {}
    return str(body.get("message") or e.message)


def _describe(e: BaseException) -> str:
    import openai

    if isinstance(e, openai.APIStatusError):
        return _clean(f"HTTP {e.status_code}: {_message(e)}")
    return _clean(f"{e.__class__.__name__}: {e}")
