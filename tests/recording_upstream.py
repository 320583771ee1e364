"""A recording, echoing OpenAI-compatible upstream for the redaction tests (real sockets, aiohttp).

It keeps every request body it receives (`requests`), and answers with the user's own text: chat with
the last user message, completions with the prompt, responses with the input, embeddings with vectors.
Streams go out three characters per SSE event, and every other event is written in two pieces, so
placeholders arrive split across events and across network chunks, as a real model's tokens would.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class RecordingUpstream:
    def __init__(self, name: str) -> None:
        self.name = name
        self.requests: list[dict[str, Any]] = []
        self.fail_status: int | None = None
        self.error_detail = "simulated failure"
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/responses", self._responses)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def received(self) -> str:
        """Everything this upstream has been sent, as one string (to grep)."""
        return "\n".join(orjson.dumps(r).decode() for r in self.requests)

    async def _admit(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        body = orjson.loads(await request.read())
        self.requests.append(body)
        if self.fail_status is not None:
            err = {"error": {"message": self.error_detail, "type": "server_error", "param": None, "code": None}}
            return body, web.json_response(err, status=self.fail_status)
        return body, None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, fail = await self._admit(request)
        if fail is not None:
            return fail
        users = [m for m in body["messages"] if m.get("role") == "user"]
        text = _text(users[-1]["content"]) if users else ""
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if not body.get("stream"):
            return web.json_response({
                "id": "chatcmpl-rec", "object": "chat.completion", "created": 1, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": usage,
            }, dumps=lambda o: orjson.dumps(o).decode())
        events = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
        events += [{"choices": [{"index": 0, "delta": {"content": text[i:i + 3]}, "finish_reason": None}]}
                   for i in range(0, len(text), 3)]
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({"choices": [], "usage": usage})
        return await self._stream(request, events, "chat.completion.chunk", body["model"])

    async def _stream(self, request: web.Request, events: list[dict[str, Any]], obj: str,
                      model: str) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for n, ev in enumerate(events):
            data = b"data: " + orjson.dumps({"id": "rec", "object": obj, "created": 1, "model": model, **ev}) + b"\n\n"
            if n % 2:
                await resp.write(data[: len(data) // 2])
                await asyncio.sleep(0.001)
                await resp.write(data[len(data) // 2:])
            else:
                await resp.write(data)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body, fail = await self._admit(request)
        if fail is not None:
            return fail
        prompt = body.get("prompt")
        text = prompt if isinstance(prompt, str) else " ".join(p for p in prompt if isinstance(p, str))
        if not body.get("stream"):
            return web.json_response({
                "id": "cmpl-rec", "object": "text_completion", "created": 1, "model": body["model"],
                "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
            }, dumps=lambda o: orjson.dumps(o).decode())
        events = [{"choices": [{"index": 0, "text": text[i:i + 3], "finish_reason": None, "logprobs": None}]}
                  for i in range(0, len(text), 3)]
        return await self._stream(request, events, "text_completion", body["model"])

    async def _embeddings(self, request: web.Request) -> web.Response:
        body, fail = await self._admit(request)
        if fail is not None:
            return fail
        items = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(items))]
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": 3, "total_tokens": 3}})

    async def _responses(self, request: web.Request) -> web.Response:
        body, fail = await self._admit(request)
        if fail is not None:
            return fail
        inp = body["input"]
        text = inp if isinstance(inp, str) else " ".join(_text(i.get("content")) for i in inp if isinstance(i, dict))
        return web.json_response({
            "id": "resp_rec", "object": "response", "created_at": 1, "status": "completed", "model": body["model"],
            "output": [{"type": "message", "id": "msg_rec", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "usage": {"input_tokens": 5, "output_tokens": 5, "total_tokens": 10},
        })
