"""A scripted OpenAI-compatible upstream for exact-cost tests: every answer's usage is what the test says.

`mode` picks the next answers: `usage` (dict or None: no usage at all, as vLLM/llama.cpp/Ollama often
send), `text` (the completion), `fail` (statuses to answer first, for promotion). Serves chat
completions (JSON and SSE), `/v1/responses` (JSON and SSE) and embeddings. Runs on its own loop thread.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import orjson
from aiohttp import web


class Scripted:
    def __init__(self) -> None:
        self.usage: dict[str, Any] | None = {"prompt_tokens": 10, "completion_tokens": 100, "total_tokens": 110}
        self.text = "Hello there, world"
        self.fail: list[int] = []
        self.calls = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""
        self._runner: web.AppRunner | None = None

    def start(self) -> Scripted:
        self.thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/embeddings", self._embeddings)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/v1"

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def _failure(self) -> web.Response | None:
        self.calls += 1
        if self.fail:
            status = self.fail.pop(0)
            return web.json_response({"error": {"message": "scripted failure", "type": "server_error"}}, status=status)
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        failure = self._failure()
        if failure is not None:
            return failure
        if not body.get("stream"):
            out: dict[str, Any] = {"id": "c1", "object": "chat.completion", "model": body["model"], "choices": [
                {"index": 0, "message": {"role": "assistant", "content": self.text}, "finish_reason": "stop"}]}
            if self.usage is not None:
                out["usage"] = self.usage
            return web.Response(body=orjson.dumps(out), content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        want_usage = (body.get("stream_options") or {}).get("include_usage") and self.usage is not None
        for word in self.text.split(" "):
            d = {"id": "c1", "object": "chat.completion.chunk", "model": body["model"],
                 "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]}
            await resp.write(b"data: " + orjson.dumps(d) + b"\n\n")
        if want_usage:
            d = {"id": "c1", "object": "chat.completion.chunk", "model": body["model"], "choices": [],
                 "usage": self.usage}
            await resp.write(b"data: " + orjson.dumps(d) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        failure = self._failure()
        if failure is not None:
            return failure
        out: dict[str, Any] = {"id": "resp_1", "object": "response", "model": body["model"], "status": "completed",
                               "output": [{"type": "message", "role": "assistant",
                                           "content": [{"type": "output_text", "text": self.text}]}]}
        if self.usage is not None:
            out["usage"] = self.usage
        if not body.get("stream"):
            return web.Response(body=orjson.dumps(out), content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for word in self.text.split(" "):
            ev = {"type": "response.output_text.delta", "delta": word + " "}
            await resp.write(b"event: response.output_text.delta\ndata: " + orjson.dumps(ev) + b"\n\n")
        done = {"type": "response.completed", "response": out}
        await resp.write(b"event: response.completed\ndata: " + orjson.dumps(done) + b"\n\n")
        await resp.write_eof()
        return resp

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        failure = self._failure()
        if failure is not None:
            return failure
        out: dict[str, Any] = {"object": "list", "model": body["model"],
                               "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]}
        if self.usage is not None:
            out["usage"] = self.usage
        return web.Response(body=orjson.dumps(out), content_type="application/json")
