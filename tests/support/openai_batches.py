"""The OpenAI Batch API on the test server (tests/support/openai_server.py), for
`harness run --batch`: POST /v1/batches, GET /v1/batches/{id}, POST /v1/batches/{id}/cancel.
Input and output files live in the server's one files API (`openai_server.Files`, shared with
fine-tuning).

A batch answers each line with the server's chat answer (the same scripted `answer` and usage
as /v1/chat/completions) after `batch_delay` seconds; a line whose prompt holds one of
`statuses`' keys gets that error status in the output, as OpenAI reports a failed request.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time

from aiohttp import web


class BatchAPI:
    def __init__(self, server, files, *, batch_delay: float = 0.3):
        self.server = server
        self.files = files  # openai_server.Files
        self.batch_delay = batch_delay
        self.batches: dict[str, dict] = {}
        self.created = 0  # batches submitted (a resumed run must not submit again)
        self.fail_after_create = 0  # the next n creates make the batch, then answer 500
        # {substring of the prompt: the output line written instead, "{line}" standing for the
        # real one}: a corrupt line ("{line"), a duplicate ("{line}\n{line}")
        self.output_lines: dict[str, str] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches", self._list)
        app.router.add_get("/v1/batches/{id}", self._retrieve)
        app.router.add_post("/v1/batches/{id}/cancel", self._cancel)

    def _file(self, content: bytes, purpose: str) -> dict:
        """An output file, stored where the files API serves it."""
        file_id = "file-batch-" + secrets.token_hex(6)
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": f"{file_id}.jsonl",
            "purpose": purpose,
            "status": "processed",
        }
        self.files.content[file_id] = content
        self.files.objects[file_id] = obj
        return obj

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("input_file_id") not in self.files.content:
            return web.json_response({"error": {"message": "no such input file"}}, status=400)
        self.created += 1
        batch_id = "batch_" + secrets.token_hex(6)
        lines = self.files.content[body["input_file_id"]].decode().splitlines()
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body.get("endpoint"),
            "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window", "24h"),
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(time.time()),
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        self.batches[batch_id] = batch
        asyncio.get_running_loop().create_task(self._process(batch, lines))
        if self.fail_after_create > 0:
            self.fail_after_create -= 1
            return web.json_response({"error": {"message": "server error"}}, status=500)
        return web.json_response(batch)

    async def _list(self, request: web.Request) -> web.Response:
        data = list(reversed(self.batches.values()))
        return web.json_response({"object": "list", "data": data, "has_more": False})

    async def _process(self, batch: dict, lines: list[str]) -> None:
        await asyncio.sleep(self.batch_delay / 3)
        batch["status"] = "in_progress"
        out, errors = [], []
        for i, line in enumerate(lines):
            req = json.loads(line)
            messages = req["body"].get("messages") or []
            prompt = "\n".join(str(m.get("content") or "") for m in messages)
            with self.server._lock:
                self.server.prompts[prompt] += 1
            status = next((s for k, s in self.server.statuses.items() if k in prompt), None)
            if status is not None:
                response = {
                    "status_code": status,
                    "body": {"error": {"message": f"forced {status}"}},
                }
                errors.append({"id": f"r{i}", "custom_id": req["custom_id"], "response": response})
                batch["request_counts"]["failed"] += 1
                continue
            text = self.server._reply_text(messages, req["body"])
            tin, tout = max(1, len(prompt.split())), max(1, len(text.split()))
            response = {
                "status_code": 200,
                "body": {
                    "id": f"chatcmpl-b{i}",
                    "object": "chat.completion",
                    "model": req["body"].get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": tin,
                        "completion_tokens": tout,
                        "total_tokens": tin + tout,
                    },
                },
            }
            template = next((t for k, t in self.output_lines.items() if k in prompt), None)
            out.append(
                {"id": f"r{i}", "custom_id": req["custom_id"], "response": response}
                | ({"_template": template} if template else {})
            )
            batch["request_counts"]["completed"] += 1
            if i % 5 == 4:
                await asyncio.sleep(self.batch_delay / max(1, len(lines)))
        await asyncio.sleep(self.batch_delay / 3)
        if batch["status"] == "cancelling":
            batch["status"] = "cancelled"
            return

        def jsonl(rows):
            lines = []
            for r in rows:
                template = r.pop("_template", "{line}")
                lines.append(template.replace("{line}", json.dumps(r)))
            return "".join(line + "\n" for line in lines).encode()

        batch["output_file_id"] = self._file(jsonl(out), "batch_output")["id"] if out else None
        batch["error_file_id"] = self._file(jsonl(errors), "batch_output")["id"] if errors else None
        batch["status"] = "completed"

    async def _retrieve(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return web.json_response({"error": {"message": "no such batch"}}, status=404)
        return web.json_response(batch)

    async def _cancel(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return web.json_response({"error": {"message": "no such batch"}}, status=404)
        batch["status"] = "cancelling"
        return web.json_response(batch)
