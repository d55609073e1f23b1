"""OpenAI-style Batch API calls (`harness run --batch`): one JSONL file of requests, uploaded,
submitted as a batch, polled until it ends, its output joined back as CallResults.

OpenAI bills batch requests at half the list price, so results carry `price_factor`
(BATCH_PRICE_FACTOR) and every cost of theirs is priced with it. Only OpenAI-compatible
endpoints speak this API (the official one, or any `api_base` that implements /v1/files and
/v1/batches); the openai SDK does the HTTP, with its own retries switched off like litellm's.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from harness.calls._litellm import missing_credentials
from harness.calls.engine import call_cost
from harness.errors import ProviderError, SuiteError
from harness.suite.secrets import redact_text as redact
from harness.types import CallResult, CallSpec

BATCH_PRICE_FACTOR = 0.5  # OpenAI's Batch API: 50% of the synchronous price
DONE = ("completed", "failed", "expired", "cancelled")


def check_batchable(variant) -> None:
    """Exit 2 before anything is sent for a variant whose provider has no batch API we speak."""
    model = variant.model
    if not (model.startswith("openai/") or ("/" not in model and variant.api_base)):
        raise SuiteError(
            f"--batch: variant {variant.name!r} uses {model}, and harness speaks only the "
            "OpenAI Batch API (openai/... models, or an OpenAI-compatible api_base) — run "
            "without --batch, or with --variant for the OpenAI variants"
        )


def request_line(custom_id: str, spec: CallSpec) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": spec.model.split("/", 1)[1] if spec.model.startswith("openai/") else spec.model,
        "messages": spec.messages,
        **spec.params,
    }
    if spec.response_format is not None:
        body["response_format"] = spec.response_format
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def client_for(spec: CallSpec):
    """An openai client for the spec's endpoint; the key stays in memory, never on disk."""
    from openai import OpenAI

    key = os.environ.get("OPENAI_API_KEY")
    if not key and spec.api_base and missing_credentials(spec.model, None):
        key = "no-key"  # a self-hosted server needs none, the SDK insists on one
    return OpenAI(api_key=key, base_url=spec.api_base or None, max_retries=0, timeout=120)


@dataclass
class BatchJob:
    """A submitted batch: what a killed run needs to find it again (no secrets)."""

    batch_id: str
    input_file_id: str
    n_requests: int


def submit(client, lines: list[dict]) -> BatchJob:
    data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    try:
        uploaded = client.files.create(file=("batch.jsonl", data), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
        )
    except Exception as e:
        raise ProviderError(f"--batch: submitting the batch failed: {redact(str(e))}") from None
    return BatchJob(batch_id=batch.id, input_file_id=uploaded.id, n_requests=len(lines))


def wait(client, batch_id: str, *, poll_s: float, on_status=None) -> Any:
    """Poll until the batch ends; `on_status(batch)` after each poll (progress)."""
    while True:
        try:
            batch = client.batches.retrieve(batch_id)
        except Exception as e:
            raise ProviderError(
                f"--batch: polling batch {batch_id} failed: {redact(str(e))} — the batch keeps "
                "running at the provider; `--resume` polls it again"
            ) from None
        if on_status is not None:
            on_status(batch)
        if batch.status in DONE:
            return batch
        time.sleep(poll_s)


def results(client, batch, specs: dict[str, CallSpec]) -> dict[str, CallResult]:
    """CallResults by custom_id from the batch's output and error files; a request the batch
    never answered (expired, cancelled) becomes an error result, so it is counted, not lost."""
    rows: list[dict] = []
    for file_id in (batch.output_file_id, batch.error_file_id):
        if file_id:
            text = client.files.content(file_id).text
            rows += [json.loads(line) for line in text.splitlines() if line.strip()]
    out: dict[str, CallResult] = {}
    for row in rows:
        cid = row.get("custom_id")
        if cid not in specs:
            continue
        out[cid] = _result(specs[cid], row)
    for cid in specs:
        if cid not in out:
            out[cid] = CallResult(
                output=None,
                latency_ms=None,
                error=f"batch_{batch.status}: no answer in batch {batch.id}",
                attempts=1,
            )
    return out


def _result(spec: CallSpec, row: dict) -> CallResult:
    response = row.get("response") or {}
    body = response.get("body") or {}
    status = response.get("status_code")
    if row.get("error") or status != 200:
        message = (body.get("error") or row.get("error") or {}).get("message") or f"status {status}"
        kind = "rate_limit" if status == 429 else "bad_request" if status in (400, 422) else "batch"
        return CallResult(
            output=None, latency_ms=None, error=redact(f"{kind}: {message}"), attempts=1
        )
    try:
        output = body["choices"][0]["message"].get("content") or ""
    except (KeyError, IndexError, TypeError):
        return CallResult(
            output=None, latency_ms=None, error="other: malformed batch output line", attempts=1
        )
    usage = body.get("usage") or {}
    tokens_in, tokens_out = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not tokens_in:
        tokens_in = tokens_out = None
    cost, note = call_cost(spec, tokens_in, tokens_out)
    return CallResult(
        output=output,
        latency_ms=None,  # a batch has no per-request latency
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=None if cost is None else cost * BATCH_PRICE_FACTOR,
        note=note,
        attempts=1,
        price_factor=BATCH_PRICE_FACTOR,
    )
