"""A simulated OpenAI-compatible upstream, for the demo and the tests (not a backend adapter).

It plays a "local GPU" or a "cloud" server: `/v1/models`, `/v1/chat/completions` and `/v1/completions`
(JSON or token-by-token SSE with a first-token delay and a per-token delay, `usage` as OpenAI reports
it, including the final usage-only chunk when `stream_options.include_usage` is set) and
`/v1/embeddings` (deterministic vectors). Tests steer its `behavior` to inject failures (an error
status, a hang, a broken stream) and read what it received (`requests`) and whether a client went away
mid-stream (`disconnects`).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

WORDS = (
    "Sure", "here", "is", "a", "concise", "answer", "based", "on", "what", "you", "asked", "The", "key",
    "idea", "is", "to", "keep", "it", "simple", "and", "measure", "before", "you", "optimise", "Let", "me",
    "know", "if", "you", "want", "more", "detail", "or", "an", "example",
)


@dataclass
class Behavior:
    """What the simulated server does next; tests change these fields between requests."""

    first_token_s: float = 0.0
    token_delay_s: float = 0.0
    reply_tokens: int = 24
    fail_status: int | None = None  # answer every request with this error status …
    fail_times: int = -1  # … this many times (-1: always)
    hang: bool = False  # accept, then never answer
    break_after_tokens: int | None = None  # close the connection mid-stream
    error_headers: dict[str, str] = field(default_factory=dict)


class SimulatedUpstream:
    """One simulated OpenAI-compatible server."""

    def __init__(self, name: str, models: list[str], behavior: Behavior | None = None, dims: int = 64) -> None:
        self.name = name
        self.models = models
        self.behavior = behavior or Behavior()
        self.dims = dims
        self.requests: list[dict[str, Any]] = []
        self.disconnects = 0
        self.completed_streams = 0
        self.port = 0
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------ serving

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://{host}:{self.port}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------ endpoints

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": self.name} for m in self.models]
        return web.json_response({"object": "list", "data": data}, dumps=lambda o: orjson.dumps(o).decode())

    async def _admit(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        body = orjson.loads(await request.read())
        self.requests.append(
            {"body": body, "headers": {k.lower(): v for k, v in request.headers.items()}, "path": request.path}
        )
        b = self.behavior
        if b.hang:
            await asyncio.sleep(3600)
        if b.fail_status is not None and b.fail_times != 0:
            if b.fail_times > 0:
                b.fail_times -= 1
            err = {"error": {"message": f"simulated failure {b.fail_status}", "type": "server_error",
                             "param": None, "code": None}}
            return body, web.Response(status=b.fail_status, body=orjson.dumps(err),
                                      content_type="application/json", headers=b.error_headers)
        return body, None

    def _reply_words(self, body: dict[str, Any]) -> list[str]:
        n = body.get("max_tokens") or body.get("max_completion_tokens") or self.behavior.reply_tokens
        n = max(1, min(int(n), self.behavior.reply_tokens))
        head = f"[{body.get('model')} on {self.name}]"
        words = [head] + [WORDS[i % len(WORDS)] for i in range(n - 1)]
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    @staticmethod
    def _prompt_tokens(body: dict[str, Any]) -> int:
        if "messages" in body:
            text = "".join(str(m.get("content", "")) for m in body["messages"])
            return 3 + 4 * len(body["messages"]) + max(1, len(text) // 4)
        return max(1, len(str(body.get("prompt", ""))) // 4)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _generate(self, request: web.Request, chat: bool) -> web.StreamResponse:
        body, failure = await self._admit(request)
        if failure is not None:
            return failure
        b = self.behavior
        words = self._reply_words(body)
        model = body.get("model", self.models[0])
        usage = {"prompt_tokens": self._prompt_tokens(body), "completion_tokens": len(words),
                 "total_tokens": self._prompt_tokens(body) + len(words)}
        rid = f"{'chatcmpl' if chat else 'cmpl'}-sim{next(self._ids)}"
        created = int(time.time())
        obj = "chat.completion" if chat else "text_completion"
        if b.first_token_s:
            await asyncio.sleep(b.first_token_s)
        if not body.get("stream"):
            if b.token_delay_s:
                await asyncio.sleep(b.token_delay_s * len(words))
            text = "".join(words)
            choice: dict[str, Any] = (
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                if chat else {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
            )
            out = {"id": rid, "object": obj, "created": created, "model": model, "choices": [choice],
                   "usage": usage}
            return web.Response(body=orjson.dumps(out), content_type="application/json")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        chunk_obj = "chat.completion.chunk" if chat else "text_completion"

        def event(choices: list[dict[str, Any]], u: Any = None) -> bytes:
            d: dict[str, Any] = {"id": rid, "object": chunk_obj, "created": created, "model": model,
                                 "choices": choices}
            if include_usage:
                d["usage"] = u
            return b"data: " + orjson.dumps(d) + b"\n\n"

        try:
            if chat:
                await resp.write(event([{"index": 0, "delta": {"role": "assistant", "content": ""},
                                         "finish_reason": None}]))
            for i, w in enumerate(words):
                if b.break_after_tokens is not None and i >= b.break_after_tokens:
                    request.transport.close()  # type: ignore[union-attr]
                    return resp
                if b.token_delay_s and i:
                    await asyncio.sleep(b.token_delay_s)
                c = ({"index": 0, "delta": {"content": w}, "finish_reason": None} if chat
                     else {"index": 0, "text": w, "finish_reason": None, "logprobs": None})
                await resp.write(event([c]))
            last = ({"index": 0, "delta": {}, "finish_reason": "stop"} if chat
                    else {"index": 0, "text": "", "finish_reason": "stop", "logprobs": None})
            await resp.write(event([last]))
            if include_usage:
                await resp.write(event([], usage))
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except (ConnectionResetError, ClientConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        self.completed_streams += 1
        return resp

    async def _embeddings(self, request: web.Request) -> web.Response:
        body, failure = await self._admit(request)
        if failure is not None:
            return failure
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = [{"object": "embedding", "index": i, "embedding": self._vector(str(x))} for i, x in enumerate(items)]
        tokens = sum(max(1, len(str(x)) // 4) for x in items)
        out = {"object": "list", "data": data, "model": body.get("model"),
               "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return web.Response(body=orjson.dumps(out), content_type="application/json")

    def _vector(self, text: str) -> list[float]:
        digest = hashlib.sha256(text.encode()).digest()
        raw = [(digest[i % 32] - 127.5) / 127.5 for i in range(self.dims)]
        norm = math.sqrt(sum(v * v for v in raw)) or 1.0
        return [round(v / norm, 6) for v in raw]
