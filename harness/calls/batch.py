"""OpenAI-style Batch API calls (`harness run --batch`): one JSONL file of requests, uploaded,
submitted as a batch, polled until it ends, its output joined back as CallResults.

OpenAI bills batch requests at half the list price, so results carry `price_factor`
(BATCH_PRICE_FACTOR) and every cost of theirs is priced with it. Only OpenAI-compatible
endpoints speak this API (the official one, or any `api_base` that implements /v1/files and
/v1/batches); the openai SDK does the HTTP, with its own retries switched off like litellm's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from harness._util.text import strip_controls
from harness.calls._litellm import missing_credentials
from harness.calls.create import create_once
from harness.calls.engine import call_cost, usage_tokens
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
    # Batches a retried create turned up besides this one (cancelled, recorded by the caller).
    duplicates: list[str] = field(default_factory=list)


def _describe(e: BaseException) -> str:
    return redact(str(e))


def submit(client, lines: list[dict]) -> BatchJob:
    """Upload the requests and create the batch, each once (harness.calls.create): the file is
    named, and the batch tagged, by the requests' digest, so a retry adopts what a failed
    answer hid instead of paying for a second batch."""
    data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    digest = hashlib.sha256(data).hexdigest()[:32]
    name = f"harness-batch-{digest}.jsonl"
    metadata = {"harness_batch": digest}
    what = "--batch: submitting the batch failed"

    def read(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise ProviderError(f"{what}: {_describe(e)}") from None

    def find_file() -> list[str]:
        page = read(client.files.list, purpose="batch")
        return [f.id for f in page.data if f.filename == name and f.bytes == len(data)]

    file_id, _ = create_once(
        what,
        lambda: client.files.create(file=(name, data), purpose="batch").id,
        find_file,
        describe=_describe,
    )

    def find_batch() -> list[str]:
        page = read(client.batches.list, limit=100)
        found = [
            b
            for b in page.data
            if (b.metadata or {}) == metadata and b.status not in ("failed", "cancelled")
        ]
        return [b.id for b in sorted(found, key=lambda b: b.created_at or 0)]

    batch_id, duplicates = create_once(
        what,
        lambda: (
            client.batches.create(
                input_file_id=file_id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata=metadata,
            ).id
        ),
        find_batch,
        describe=_describe,
    )
    for dup in duplicates:
        # Recorded by the caller either way; a failed cancel leaves it to the provider's window.
        with contextlib.suppress(Exception):
            client.batches.cancel(dup)
    return BatchJob(batch_id, file_id, len(lines), duplicates)


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
    """CallResults by custom_id from the batch's output and error files, read line by line: a
    line that is not JSON, or a request answered twice, is that request's error record (the
    other answers are kept, paid as they are); a request the batch never answered (expired,
    cancelled) becomes an error result too, so it is counted, not lost."""
    seen: dict[str, list[CallResult]] = {}
    for file_id in (batch.output_file_id, batch.error_file_id):
        if not file_id:
            continue
        try:
            text = client.files.content(file_id).text
        except Exception as e:
            raise ProviderError(
                f"--batch: reading the output of batch {batch.id} failed: {redact(str(e))} — "
                "the answers stay at the provider; `--resume` reads them again"
            ) from None
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                cid = row.get("custom_id") if isinstance(row, dict) else None
            except ValueError:
                row, cid = None, None
            if row is None or not isinstance(row, dict):
                m = _CUSTOM_ID.search(line)  # a torn line may still say whose answer it was
                cid = m.group(1) if m else None
                bad = CallResult(
                    output=None,
                    latency_ms=None,
                    error=f"other: batch {batch.id} output line {n} is not valid JSON",
                    attempts=1,
                )
                if cid in specs:
                    seen.setdefault(cid, []).append(bad)
                continue
            if cid in specs:
                seen.setdefault(cid, []).append(_result(specs[cid], row))
    out: dict[str, CallResult] = {}
    for cid, answers in seen.items():
        if len(answers) == 1:
            out[cid] = answers[0]
        else:
            costs = [a.cost_usd for a in answers]
            out[cid] = CallResult(
                output=None,
                latency_ms=None,
                # every answer was billed: the record carries what they cost together
                cost_usd=None if None in costs else sum(costs),
                error=f"other: batch {batch.id} answered this request {len(answers)} times "
                "(duplicated custom_id) — which answer counts is unknown",
                attempts=1,
                price_factor=BATCH_PRICE_FACTOR,
            )
    for cid in specs:
        if cid not in out:
            out[cid] = CallResult(
                output=None,
                latency_ms=None,
                error=f"batch_{batch.status}: no answer in batch {batch.id}",
                attempts=1,
            )
    return out


_CUSTOM_ID = re.compile(r'"custom_id"\s*:\s*"([^"\\]{1,64})"')


def _result(spec: CallSpec, row: dict) -> CallResult:
    response = row.get("response") or {}
    body = response.get("body") or {}
    status = response.get("status_code")
    if row.get("error") or status != 200:
        message = (body.get("error") or row.get("error") or {}).get("message") or f"status {status}"
        kind = "rate_limit" if status == 429 else "bad_request" if status in (400, 422) else "batch"
        return CallResult(
            output=None,
            latency_ms=None,
            error=strip_controls(redact(f"{kind}: {message}")),
            attempts=1,
        )
    try:
        output = body["choices"][0]["message"].get("content") or ""
    except (KeyError, IndexError, TypeError):
        return CallResult(
            output=None, latency_ms=None, error="other: malformed batch output line", attempts=1
        )
    tokens_in, tokens_out, bad = usage_tokens(body.get("usage"))
    cost, note = call_cost(spec, tokens_in, tokens_out)
    note = bad or note
    return CallResult(
        output=output,
        latency_ms=None,  # a batch has no per-request latency
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=None if cost is None else cost * BATCH_PRICE_FACTOR,
        note=note,
        attempts=1,
        price_factor=BATCH_PRICE_FACTOR,
        truncated=(body["choices"][0].get("finish_reason") == "length"),
    )
