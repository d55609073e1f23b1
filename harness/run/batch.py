"""`harness run --batch`: the cache misses sent as provider batches instead of live calls.

One batch per endpoint (api_base). The batch ids go into `batch.json` in the run directory
before the first poll, so a run killed while the provider works (hours, for OpenAI) resumes with
`--resume` by polling the same batch, never paying for a second one. Results join the same
records as live calls (scored, appended, cached) through the run's RecordSink.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from harness._util.jsonl import write_json_atomic
from harness.calls import batch as api
from harness.run.execute import Sent, cache_hits
from harness.run.plan import Job

STATE = "batch.json"


def custom_id(job: Job) -> str:
    # OpenAI limits custom_id to 64 characters; variant names and ids can be longer.
    raw = json.dumps([job.variant, job.example.id, job.repeat])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _read_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"batches": []}


def send_batch(jobs, hits, cache, sink, run_dir: Path, *, poll_s: float, log=None) -> Sent:
    """Record the cache hits, then each endpoint's misses as one batch (or the batch a killed
    run left running); every answer goes through `sink` and the cache (as paid by this run)."""
    log = log or (lambda m: print(m, file=sys.stderr))
    sent = Sent(cache_hits=cache_hits(jobs, hits))
    for j in jobs:
        if j.key in hits:
            sink.finish(j, hits[j.key])
    misses = [j for j in jobs if j.key not in hits]
    groups: dict[str | None, list[Job]] = {}
    for j in misses:
        groups.setdefault(j.spec.api_base, []).append(j)
    state_path = run_dir / STATE
    state = _read_state(state_path)
    for api_base, group in groups.items():
        by_id = {custom_id(j): j for j in group}
        client = api.client_for(group[0].spec)
        pending = next(
            (b for b in state["batches"] if b["api_base"] == api_base and not b.get("joined")),
            None,
        )
        if pending is None:
            submitted = api.submit(client, [api.request_line(c, j.spec) for c, j in by_id.items()])
            pending = {
                "api_base": api_base,
                "batch_id": submitted.batch_id,
                "input_file_id": submitted.input_file_id,
                "n_requests": submitted.n_requests,
                "joined": False,
            }
            state["batches"].append(pending)
            # Paid duplicates a retried create left (cancelled): on record, never joined twice.
            for dup in submitted.duplicates:
                state.setdefault("duplicates", []).append(
                    {"api_base": api_base, "batch_id": dup, "duplicate_of": submitted.batch_id}
                )
                log(
                    f"batch {dup}: a duplicate of {submitted.batch_id} (created by a retried "
                    f"request), cancelled; recorded in {state_path}"
                )
            write_json_atomic(state_path, state)  # before the wait: a kill resumes this batch
            sent.requests += submitted.n_requests
            log(f"batch {submitted.batch_id}: {submitted.n_requests} requests submitted")
        else:
            log(f"batch {pending['batch_id']}: resumed (submitted by an earlier invocation)")
        shown: list = [None]

        def progress(b, shown=shown) -> None:
            counts = b.request_counts
            line = (
                f"batch {b.id}: {b.status}, {counts.completed + counts.failed}/{counts.total} done"
                if counts is not None
                else f"batch {b.id}: {b.status}"
            )
            if line != shown[0]:
                shown[0] = line
                log(line)

        done = api.wait(client, pending["batch_id"], poll_s=poll_s, on_status=progress)
        for cid, result in api.results(client, done, {c: j.spec for c, j in by_id.items()}).items():
            job = by_id[cid]
            if cache is not None:
                cache.put(job.key, result, job.spec.model, run_dir.name)  # answers only
            sink.finish(job, result)
        pending["joined"] = True
        write_json_atomic(state_path, state)
    return sent
