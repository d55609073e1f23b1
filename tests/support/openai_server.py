"""A real OpenAI-compatible HTTP server for tests and benchmarks (never the internet).

It speaks enough of the OpenAI API for litellm's real client path: POST /v1/chat/completions
(scripted answers chosen by prompt content, usage tokens, configurable latency, injected 429 with
Retry-After / 500 / timeouts / malformed JSON / dropped connections at seeded rates, and forced
statuses by prompt content), POST /v1/embeddings (deterministic vectors from a hash of the
text), the files API (`Files`) and the fine-tuning jobs API (`FineTuning`: scripted job lives on
a fast clock, one tick per retrieve). It runs on 127.0.0.1 on a free port in a background thread, or as a process:

    python tests/openai_server.py --latency 0.2     # prints the base URL, serves until killed
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable

from aiohttp import web

try:
    from openai_batches import BatchAPI
except ImportError:  # run as a script or imported by path: the module sits beside this one
    from tests.support.openai_batches import BatchAPI

Answer = str | dict[str, str] | Callable[[list[dict], dict], str]


def _prompt_text(messages: list[dict]) -> str:
    parts = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):  # content parts
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        parts.append(str(content or ""))
    return "\n".join(parts)


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


class FakeOpenAI:
    """Start with `.start()` (or as a context manager); `.url` is the api_base to put in suites.

    answer: a fixed string; a dict {substring of the prompt: answer} (first match wins, key ""
    is the fallback); or a function (messages, request body) -> answer text.
    statuses: {substring of the prompt: HTTP status} to force an error (e.g. 400) for some prompts;
        a (status, body text) pair sends that body instead of an OpenAI-style error.
    """

    def __init__(
        self,
        answer: Answer = '{"answer": "ok"}',
        *,
        latency: float = 0.0,
        body_delay: float = 0.0,
        redirect_to: str | None = None,
        rate_429: float = 0.0,
        rate_500: float = 0.0,
        rate_timeout: float = 0.0,
        rate_malformed: float = 0.0,
        rate_drop: float = 0.0,
        retry_after: float = 0.01,
        hang_seconds: float = 30.0,
        statuses: dict[str, int] | None = None,
        bodies: dict[str, dict] | None = None,
        no_usage: tuple[str, ...] = (),
        sequence: list[str] | None = None,
        seed: int = 0,
        port: int = 0,
        batch_delay: float = 0.3,
        finetune_lives: list[str] | None = None,
        fail_after_create: dict[str, int] | None = None,
        echo_auth: bool = False,
    ):
        self.answer = answer
        self.latency = latency
        # Headers at once, the body this many seconds later (a gateway that flushes its headers
        # before the model has answered).
        self.body_delay = body_delay
        # After `latency`, a 307 to this base URL (another server answers the same path).
        self.redirect_to = redirect_to
        self.rates = {
            "429": rate_429,
            "500": rate_500,
            "timeout": rate_timeout,
            "malformed": rate_malformed,
            "drop": rate_drop,
        }
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self.statuses = statuses or {}
        # {substring of the prompt: replacement for the reply's JSON fields}, answered with 200:
        # e.g. {"#3": {"choices": []}} or a message with "content": None.
        self.bodies = bodies or {}
        self.no_usage = no_usage  # prompt substrings answered without token usage (unpriceable)
        # Faults for the first requests, in order ("429", "500", "timeout", "malformed", "drop",
        # or "ok"), before the random rates apply: deterministic retry tests.
        self.sequence = list(sequence or [])
        self.inflight = 0
        self.max_inflight = 0
        self.rng = random.Random(seed)
        self.port = port
        self.requests = 0  # chat completion requests received (every attempt, retries included)
        self.outcomes: Counter[str] = Counter()  # "ok", "429", "500", "timeout", ...
        self.prompts: Counter[str] = Counter()  # prompt text -> number of requests
        self.headers: list[
            dict[str, str]
        ] = []  # request headers seen (auth included; tests check it stays out of runs/)
        # Each chat request as it arrived (path with query, headers as sent, body bytes): the
        # lean transport's equivalence test compares litellm's requests with its own.
        self.raw_requests: list[dict] = []
        # (time.monotonic() on arrival, model) per chat request: rate-limit tests count windows.
        self.arrivals: list[tuple[float, str]] = []
        self.embedding_requests = 0
        self.files = Files()
        self.fine_tuning = FineTuning(self.files, finetune_lives)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.batch_api = BatchAPI(self, self.files, batch_delay=batch_delay)
        # Every /v1 request answered 401 with its credentials echoed back, as some gateways do
        # ("Incorrect API key provided: Bearer sk-…"): nothing harness prints may repeat them.
        self.echo_auth = echo_auth
        # {"files" | "jobs" | "batches": n}: the next n creates make the object, then answer 500
        # (a provider failing after it did the work: a blind retry pays twice).
        fail = fail_after_create or {}
        self.files.fail_after_create = fail.get("files", 0)
        self.fine_tuning.fail_after_create = fail.get("jobs", 0)
        self.batch_api.fail_after_create = fail.get("batches", 0)

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("test server did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._runner:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset_counts(self) -> None:
        with self._lock:
            self.requests = 0
            self.outcomes.clear()
            self.prompts.clear()
            self.headers.clear()
            self.raw_requests.clear()
            self.arrivals.clear()

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start_site())
        ready.set()
        self._loop.run_forever()

    async def _start_site(self) -> None:
        app = web.Application(middlewares=[self._auth_echo])
        app.router.add_post("/v1/chat/completions", self._chat)
        # Azure's form of the same endpoint (litellm's azure/ provider; api-version in the query).
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._models)  # vLLM's health path: 200 once it serves
        self.files.routes(app)
        self.fine_tuning.routes(app)
        app.router.add_get("/stats", self._stats)  # request counts, for tests driving a subprocess
        self.batch_api.add_routes(app)  # /v1/batches (openai_batches.py), files above
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the free port the OS chose

    # ------------------------------------------------------------ handlers

    @web.middleware
    async def _auth_echo(self, request: web.Request, handler):
        if not self.echo_auth or not request.path.startswith("/v1"):
            return await handler(request)
        sent = [
            f"{k}: {v}"
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "api-key")
            or "key" in k.lower()
            or "auth" in k.lower()
        ]
        auth = request.headers.get("Authorization", "")
        return self._error(
            401, f"Incorrect API key provided: {auth} (headers {'; '.join(sent)}; {request.url})"
        )

    def _draw(self) -> str | None:
        with self._lock:
            if self.sequence:
                kind = self.sequence.pop(0)
                return None if kind == "ok" else kind
            u = self.rng.random()
        acc = 0.0
        for kind, rate in self.rates.items():
            acc += rate
            if u < acc:
                return kind
        return None

    def _reply_text(self, messages: list[dict], body: dict) -> str:
        a = self.answer
        if callable(a):
            return a(messages, body)
        if isinstance(a, dict):
            text = _prompt_text(messages)
            for key, value in a.items():
                if key and key in text:
                    return value
            return a.get("", '{"answer": "ok"}')
        return a

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        raw = await request.read()
        with self._lock:
            self.requests += 1
            self.headers.append(dict(request.headers))
            self.raw_requests.append(
                {"path": request.path_qs, "headers": list(request.raw_headers), "body": raw}
            )
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return web.json_response({"error": {"message": "invalid JSON body"}}, status=400)
        with self._lock:
            self.arrivals.append((arrived, str(body.get("model"))))
        messages = body.get("messages") or []
        prompt = _prompt_text(messages)
        with self._lock:
            self.prompts[prompt] += 1
        for key, status in self.statuses.items():
            if key in prompt:
                if isinstance(status, tuple):  # (status, the error body as sent)
                    self._count(str(status[0]))
                    return web.Response(status=status[0], text=status[1])
                return self._error(status, f"forced status {status}")
        fault = self._draw()
        with self._lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            return await self._answer(request, messages, body, prompt, fault)
        finally:
            with self._lock:
                self.inflight -= 1

    async def _answer(self, request, messages, body, prompt, fault) -> web.StreamResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.redirect_to:
            self._count("307")
            raise web.HTTPTemporaryRedirect(self.redirect_to.rstrip("/") + "/chat/completions")
        if fault == "429":
            return self._error(429, "Rate limit reached", {"Retry-After": f"{self.retry_after:g}"})
        if fault == "500":
            return self._error(500, "internal server error")
        if fault == "timeout":
            self._count("timeout")
            await asyncio.sleep(self.hang_seconds)
            return self._error(504, "gateway timeout")
        if fault == "drop":
            self._count("drop")
            request.transport.close()  # the client sees a dropped connection
            return web.Response(status=500)
        if fault == "malformed":
            self._count("malformed")
            return web.Response(
                status=200,
                text='{"id": "chatcmpl-x", "choices": [',
                content_type="application/json",
            )
        text = self._reply_text(messages, body)
        self._count("ok")
        tokens_in, tokens_out = _tokens(prompt), _tokens(text)
        usage = {
            "prompt_tokens": tokens_in,
            "completion_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
        }
        if any(s in prompt for s in self.no_usage):
            usage = None
        override = next((b for k, b in self.bodies.items() if k in prompt), {})
        reply = web.json_response(
            {
                "id": "chatcmpl-"
                + hashlib.sha1(f"{prompt}{time.time()}".encode()).hexdigest()[:12],
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                **({"usage": usage} if usage else {}),
                **override,
            }
        )
        if not self.body_delay:
            return reply
        stream = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await stream.prepare(request)  # the headers leave now
        await asyncio.sleep(self.body_delay)
        await stream.write(reply.body)
        await stream.write_eof()
        return stream

    def _count(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1

    def _error(
        self, status: int, message: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        self._count(str(status))
        kind = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}
        return web.json_response(
            {
                "error": {
                    "message": message,
                    "type": kind.get(status, "server_error"),
                    "code": str(status),
                }
            },
            status=status,
            headers=headers,
        )

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self.embedding_requests += 1
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        data = [
            {"object": "embedding", "index": i, "embedding": embed(str(t))}
            for i, t in enumerate(inputs)
        ]
        n = sum(_tokens(str(t)) for t in inputs)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", "fake-embedding"),
                "usage": {"prompt_tokens": n, "total_tokens": n},
            }
        )

    async def _stats(self, request: web.Request) -> web.Response:
        with self._lock:
            return web.json_response(
                {
                    "requests": self.requests,
                    "outcomes": dict(self.outcomes),
                    "uploads": len(self.files.uploads),
                    "jobs": len(self.fine_tuning.created),
                    # The last chat request's body, for tests driving a subprocess.
                    "last_body": (
                        json.loads(self.raw_requests[-1]["body"]) if self.raw_requests else None
                    ),
                }
            )

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})


class Files:
    """POST /v1/files (multipart upload), GET /v1/files/{id} and /v1/files/{id}/content.

    A store of its own so the fine-tuning and batch endpoints share one files API."""

    def __init__(self):
        self.content: dict[str, bytes] = {}
        self.objects: dict[str, dict] = {}
        self.uploads: list[dict] = []  # the file objects, in upload order
        self.fail_after_create = 0
        self._n = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self._create)
        app.router.add_get("/v1/files", self._list)
        app.router.add_get("/v1/files/{id}", self._retrieve)
        app.router.add_get("/v1/files/{id}/content", self._content)

    async def _create(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload, purpose = form.get("file"), form.get("purpose")
        if upload is None or not purpose:
            return _api_error(400, "file and purpose are required")
        self._n += 1
        file_id = f"file-{self._n:06d}"
        data = upload.file.read()
        self.content[file_id] = data
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": upload.filename,
            "purpose": purpose,
            "status": "processed",
        }
        self.objects[file_id] = obj
        self.uploads.append(obj)
        if self.fail_after_create > 0:
            self.fail_after_create -= 1
            return _api_error(500, "The server had an error while processing your request")
        return web.json_response(obj)

    async def _list(self, request: web.Request) -> web.Response:
        purpose = request.query.get("purpose")
        data = [o for o in reversed(self.objects.values()) if purpose in (None, o["purpose"])]
        return web.json_response({"object": "list", "data": data, "has_more": False})

    async def _retrieve(self, request: web.Request) -> web.Response:
        obj = self.objects.get(request.match_info["id"])
        return web.json_response(obj) if obj else _api_error(404, "No such File object")

    async def _content(self, request: web.Request) -> web.Response:
        data = self.content.get(request.match_info["id"])
        if data is None:
            return _api_error(404, "No such File object")
        return web.Response(body=data, content_type="application/octet-stream")


class FineTuning:
    """/v1/fine_tuning/jobs: create, list, retrieve, events, checkpoints, cancel.

    Each created job takes the next of `lives` ("succeeded", default; "failed"; "hang": runs
    until cancelled) and moves one tick per retrieve: validating_files → queued → running (one
    step per tick, a training-loss event each, a checkpoint at each epoch's end) → its end.
    Trained tokens are the training file's words × epochs."""

    STEPS_PER_EPOCH = 2

    def __init__(self, files: Files, lives: list[str] | None = None):
        self.files = files
        self.lives = list(lives or [])
        self.jobs: dict[str, dict] = {}
        self.created: list[dict] = []  # the create request bodies
        self.fail_after_create = 0
        self._events: dict[str, list[dict]] = {}
        self._checkpoints: dict[str, list[dict]] = {}
        self._state: dict[str, dict] = {}
        self._n = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/fine_tuning/jobs", self._create)
        app.router.add_get("/v1/fine_tuning/jobs", self._list)
        app.router.add_get("/v1/fine_tuning/jobs/{id}", self._retrieve)
        app.router.add_get("/v1/fine_tuning/jobs/{id}/events", self._list_events)
        app.router.add_get("/v1/fine_tuning/jobs/{id}/checkpoints", self._list_checkpoints)
        app.router.add_post("/v1/fine_tuning/jobs/{id}/cancel", self._cancel)

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        train = self.files.content.get(body.get("training_file", ""))
        if train is None:
            return _api_error(400, f"invalid training_file: {body.get('training_file')}")
        self.created.append(body)
        self._n += 1
        job_id = f"ftjob-{self._n:06d}"
        hyper = ((body.get("method") or {}).get("supervised") or {}).get("hyperparameters") or {}
        epochs = int(hyper.get("n_epochs") or 3)
        job = {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": int(time.time()),
            "model": body["model"],
            "status": "validating_files",
            "training_file": body["training_file"],
            "validation_file": body.get("validation_file"),
            "hyperparameters": {"n_epochs": epochs},
            "seed": body.get("seed", 0),
            "metadata": body.get("metadata"),
            "method": body.get("method"),
            "organization_id": "org-test",
            "result_files": [],
            "fine_tuned_model": None,
            "finished_at": None,
            "trained_tokens": None,
            "error": None,
        }
        self.jobs[job_id] = job
        self._events[job_id] = []
        self._checkpoints[job_id] = []
        self._state[job_id] = {
            "tick": 0,
            "life": self.lives.pop(0) if self.lives else "succeeded",
            "epochs": epochs,
            "tokens": len(train.split()) * epochs,
            "suffix": body.get("suffix") or "",
        }
        self._event(job_id, "info", f"Created fine-tuning job: {job_id}")
        if self.fail_after_create > 0:
            self.fail_after_create -= 1
            return _api_error(500, "The server had an error while processing your request")
        return web.json_response(job)

    def _event(self, job_id: str, level: str, message: str, data: dict | None = None) -> None:
        events = self._events[job_id]
        events.append(
            {
                "id": f"ftevent-{job_id[-6:]}-{len(events):04d}",
                "object": "fine_tuning.job.event",
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "data": data or {},
                "type": "metrics" if data else "message",
            }
        )

    def _tick(self, job_id: str) -> None:
        """One step of the job's scripted life (the fast clock)."""
        job, st = self.jobs[job_id], self._state[job_id]
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return
        st["tick"] += 1
        total = st["epochs"] * self.STEPS_PER_EPOCH
        if job["status"] == "validating_files":
            job["status"] = "queued"
            self._event(job_id, "info", "Files validated, moving job to queued state")
            return
        if job["status"] == "queued":
            job["status"] = "running"
            self._event(job_id, "info", "Fine-tuning job started")
            return
        step = st.setdefault("step", 0) + 1
        st["step"] = step
        if st["life"] == "failed" and step == 2:
            job.update(
                status="failed",
                finished_at=int(time.time()),
                error={
                    "code": "invalid_training_file",
                    "message": "The job failed due to an invalid training file.",
                    "param": "training_file",
                },
            )
            self._event(job_id, "error", "The job failed due to an invalid training file.")
            return
        if st["life"] == "hang":
            step = min(step, total - 1)
        loss = round(2.0 / (1 + step), 4)
        self._event(
            job_id,
            "info",
            f"Step {step}/{total}: training loss={loss}",
            {"step": step, "train_loss": loss, "total_steps": total},
        )
        model = f"ft:{job['model']}:harness-test:{st['suffix']}:{job_id[-6:]}"
        if step % self.STEPS_PER_EPOCH == 0 and step < total:
            self._checkpoints[job_id].append(
                {
                    "id": f"ftckpt-{job_id[-6:]}-{step}",
                    "object": "fine_tuning.job.checkpoint",
                    "created_at": int(time.time()),
                    "fine_tuned_model_checkpoint": f"{model}:ckpt-step-{step}",
                    "fine_tuning_job_id": job_id,
                    "step_number": step,
                    "metrics": {"step": step, "train_loss": loss},
                }
            )
        if step >= total and st["life"] == "succeeded":
            job.update(
                status="succeeded",
                fine_tuned_model=model,
                trained_tokens=st["tokens"],
                finished_at=int(time.time()),
            )
            self._event(job_id, "info", "The job has successfully completed")

    def _job(self, request: web.Request) -> dict | None:
        return self.jobs.get(request.match_info["id"])

    async def _retrieve(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return _api_error(404, "No such fine-tuning job")
        self._tick(job["id"])
        return web.json_response(job)

    async def _list(self, request: web.Request) -> web.Response:
        wanted = {k[9:-1]: v for k, v in request.query.items() if k.startswith("metadata[")}
        data = [
            j
            for j in reversed(self.jobs.values())
            if all((j.get("metadata") or {}).get(k) == v for k, v in wanted.items())
        ]
        return web.json_response({"object": "list", "data": data, "has_more": False})

    async def _list_events(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return _api_error(404, "No such fine-tuning job")
        limit = int(request.query.get("limit", 20))
        data = list(reversed(self._events[job["id"]]))[:limit]  # newest first, as OpenAI
        return web.json_response({"object": "list", "data": data, "has_more": False})

    async def _list_checkpoints(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return _api_error(404, "No such fine-tuning job")
        data = list(reversed(self._checkpoints[job["id"]]))
        return web.json_response({"object": "list", "data": data, "has_more": False})

    async def _cancel(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return _api_error(404, "No such fine-tuning job")
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return _api_error(400, f"Job {job['id']} has already {job['status']}")
        job.update(status="cancelled", finished_at=int(time.time()))
        self._event(job["id"], "info", "The job was cancelled")
        return web.json_response(job)


def _api_error(status: int, message: str) -> web.Response:
    return web.json_response(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
        status=status,
    )


def embed(text: str, dim: int = 32) -> list[float]:
    """Deterministic unit vector from the words of the text (shared words → similar vectors)."""
    vec = [0.0] * dim
    for word in text.lower().split():
        h = hashlib.sha256(word.encode()).digest()
        for i in range(dim):
            vec[i] += (h[i] / 255.0) - 0.5
    norm = sum(x * x for x in vec) ** 0.5 or 1.0
    return [x / norm for x in vec]


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--answer", default='{"answer": "ok"}')
    p.add_argument("--rate-429", type=float, default=0.0)
    p.add_argument("--rate-500", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    server = FakeOpenAI(
        args.answer,
        latency=args.latency,
        port=args.port,
        rate_429=args.rate_429,
        rate_500=args.rate_500,
        seed=args.seed,
    ).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
