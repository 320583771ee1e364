"""Simulated upstreams, for the demo and the tests (not backend adapters).

A `SimulatedUpstream` plays a "local GPU" or a "cloud" server: `/v1/models`, `/v1/chat/completions` and
`/v1/completions` (JSON or token-by-token SSE with a first-token delay and a per-token delay, `usage` as
OpenAI reports it, including the final usage-only chunk when `stream_options.include_usage` is set; tool
calls when the request offers tools), `/v1/embeddings` (deterministic vectors) and `/v1/responses`
(OpenAI's Responses API, for models configured with `capabilities: [responses]`).

It also speaks Anthropic's Messages API on `/v1/messages`, written from Anthropic's documented wire
format (not from the router's translators, which it is there to check): JSON Message objects and the SSE
sequence message_start, content_block_start, ping, content_block_delta (text_delta, input_json_delta,
thinking_delta, signature_delta), content_block_stop, message_delta, message_stop, and `error` events;
usage with cache read/write counts (`Behavior.cache_read_tokens`/`cache_write_tokens`).

Tests steer its `behavior` to inject failures (an error status, a hang, a broken stream, an error event
mid-stream) and read what it received (`requests`) and whether a client went away (`disconnects`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from router.formats.responses import ChatToResponses, chat_to_response

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
    stream_error_after: int | None = None  # Messages streams: an `error` event after this many tokens
    cache_read_tokens: int = 0  # Messages usage: input tokens read from the prompt cache …
    cache_write_tokens: int = 0  # … and written to it
    missing_models: set[str] = field(default_factory=set)  # 404 for these, as an Ollama without the model


class SimulatedUpstream:
    """One simulated OpenAI-compatible server."""

    def __init__(self, name: str, models: list[str], behavior: Behavior | None = None, dims: int = 64,
                 ollama: bool = False) -> None:
        self.name = name
        self.models = models
        self.behavior = behavior or Behavior()
        self.dims = dims
        self.ollama = ollama  # also answer Ollama's `GET /` and `GET /api/tags`
        self.probes = 0  # health-check requests seen
        self.in_flight = 0  # generation requests being answered now …
        self.max_in_flight = 0  # … and the most at once
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
        if self.ollama:
            app.router.add_get("/", self._ollama_root)
            app.router.add_get("/api/tags", self._ollama_tags)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/messages", self._messages)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0, ssl_context: Any = None) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"{'https' if ssl_context is not None else 'http'}://{host}:{self.port}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------ endpoints

    async def _models(self, request: web.Request) -> web.Response:
        self.probes += 1
        data = [{"id": m, "object": "model", "created": 0, "owned_by": self.name} for m in self._listed()]
        return web.json_response({"object": "list", "data": data}, dumps=lambda o: orjson.dumps(o).decode())

    def _listed(self) -> list[str]:
        return [m for m in self.models if m not in self.behavior.missing_models]

    async def _ollama_root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def _ollama_tags(self, request: web.Request) -> web.Response:
        self.probes += 1
        data = [{"name": m if ":" in m else m + ":latest", "model": m if ":" in m else m + ":latest"}
                for m in self._listed()]
        return web.Response(body=orjson.dumps({"models": data}), content_type="application/json")

    @contextlib.contextmanager
    def _counted_stream(self) -> Iterator[None]:
        """Count a stream that ends (`completed_streams`) or loses its client (`disconnects`)."""
        try:
            yield
        except (ConnectionResetError, ClientConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        self.completed_streams += 1

    async def _admit(self, request: web.Request, anthropic: bool = False) -> tuple[dict[str, Any], web.Response | None]:
        body = orjson.loads(await request.read())
        self.requests.append({"body": body, "headers": {k.lower(): v for k, v in request.headers.items()},
                              "path": request.path, "query": request.query_string})
        b = self.behavior
        if body.get("model") in b.missing_models:
            err = {"error": {"message": f"model \"{body.get('model')}\" not found, try pulling it first",
                             "type": "api_error", "param": None, "code": None}}
            return body, web.Response(status=404, body=orjson.dumps(err), content_type="application/json")
        if b.hang:
            await asyncio.sleep(3600)
        if b.fail_status is not None and b.fail_times != 0:
            if b.fail_times > 0:
                b.fail_times -= 1
            err: dict[str, Any] = {"error": {"message": f"simulated failure {b.fail_status}", "type": "server_error",
                                             "param": None, "code": None}}
            if anthropic:
                kind = {529: "overloaded_error", 429: "rate_limit_error", 400: "invalid_request_error",
                        401: "authentication_error"}.get(b.fail_status, "api_error")
                err = {"type": "error", "error": {"type": kind, "message": f"simulated failure {b.fail_status}"}}
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
            text = str(body.get("system") or "") + "".join(str(m.get("content", "")) for m in body["messages"])
            return 3 + 4 * len(body["messages"]) + max(1, len(text) // 4)
        return max(1, len(str(body.get("prompt", ""))) // 4)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _generate(self, request: web.Request, chat: bool) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._generate_one(request, chat)
        finally:
            self.in_flight -= 1

    async def _generate_one(self, request: web.Request, chat: bool) -> web.StreamResponse:
        body, failure = await self._admit(request)
        if failure is not None:
            return failure
        b = self.behavior
        words = self._reply_words(body)
        finish = "length" if len(words) < b.reply_tokens else "stop"  # cut short by max_tokens
        model = body.get("model", self.models[0])
        usage = {"prompt_tokens": self._prompt_tokens(body), "completion_tokens": len(words),
                 "total_tokens": self._prompt_tokens(body) + len(words)}
        rid = f"{'chatcmpl' if chat else 'cmpl'}-sim{next(self._ids)}"
        created = int(time.time())
        obj = "chat.completion" if chat else "text_completion"
        calls = _tool_calls(body) if chat else []
        if b.first_token_s:
            await asyncio.sleep(b.first_token_s)
        if not body.get("stream"):
            if b.token_delay_s:
                await asyncio.sleep(b.token_delay_s * len(words))
            text = "".join(words)
            choice: dict[str, Any] = (
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                if chat else {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
            )
            if calls:
                choice = {"index": 0, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": None,
                    "tool_calls": [{"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                                   for cid, name, args in calls]}}
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

        with self._counted_stream():
            if chat:
                await resp.write(event([{"index": 0, "delta": {"role": "assistant", "content": ""},
                                         "finish_reason": None}]))
            if calls:
                words = []
                for k, (cid, name, args) in enumerate(calls):
                    head = {"index": k, "id": cid, "type": "function", "function": {"name": name, "arguments": ""}}
                    await resp.write(event([{"index": 0, "delta": {"tool_calls": [head]}, "finish_reason": None}]))
                    for piece in _pieces(args):
                        d = {"tool_calls": [{"index": k, "function": {"arguments": piece}}]}
                        await resp.write(event([{"index": 0, "delta": d, "finish_reason": None}]))
            for i, w in enumerate(words):
                if b.break_after_tokens is not None and i >= b.break_after_tokens:
                    request.transport.close()  # type: ignore[union-attr]
                    return resp
                if b.token_delay_s and i:
                    await asyncio.sleep(b.token_delay_s)
                c = ({"index": 0, "delta": {"content": w}, "finish_reason": None} if chat
                     else {"index": 0, "text": w, "finish_reason": None, "logprobs": None})
                await resp.write(event([c]))
            last = ({"index": 0, "delta": {}, "finish_reason": "tool_calls" if calls else finish} if chat
                    else {"index": 0, "text": "", "finish_reason": finish, "logprobs": None})
            await resp.write(event([last]))
            if include_usage:
                await resp.write(event([], usage))
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
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

    # ------------------------------------------------------------ OpenAI Responses API

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        """The Responses API as OpenAI serves it (for models with `capabilities: [responses]`)."""
        body, failure = await self._admit(request)
        if failure is not None:
            return failure
        b = self.behavior
        inp = body.get("input")
        text = inp if isinstance(inp, str) else orjson.dumps(inp).decode()
        words = self._reply_words({"model": body.get("model"), "max_tokens": body.get("max_output_tokens")})
        n_in = max(1, len(text + str(body.get("instructions") or "")) // 4)
        usage = {"prompt_tokens": n_in, "completion_tokens": len(words), "total_tokens": n_in + len(words)}
        model = body.get("model", self.models[0])
        if b.first_token_s:
            await asyncio.sleep(b.first_token_s)
        if not body.get("stream"):
            completion = {"model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                                       "message": {"role": "assistant", "content": "".join(words)}}],
                          "usage": usage}
            return web.Response(body=orjson.dumps(chat_to_response(completion, body)), content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        events = ChatToResponses(body, model)
        with self._counted_stream():
            await resp.write(events.start())
            for i, w in enumerate(words):
                if b.token_delay_s and i:
                    await asyncio.sleep(b.token_delay_s)
                await resp.write(events.feed({"choices": [{"index": 0, "delta": {"content": w}}]}))
            events.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage})
            await resp.write(events.end())
            await resp.write_eof()
        return resp

    # ------------------------------------------------------------ Anthropic Messages API

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        """Anthropic's `POST /v1/messages`, JSON or SSE, as documented."""
        body, failure = await self._admit(request, anthropic=True)
        if failure is not None:
            return failure
        b = self.behavior
        words = self._reply_words(body)
        calls = _tool_calls(body, anthropic=True)
        thinking = isinstance(body.get("thinking"), dict) and body["thinking"].get("type") == "enabled"
        if calls:
            words = words[:3]
        model = body.get("model", self.models[0])
        usage = {"input_tokens": self._prompt_tokens(body), "cache_creation_input_tokens": b.cache_write_tokens,
                 "cache_read_input_tokens": b.cache_read_tokens, "output_tokens": len(words) + 4 * len(calls)}
        mid = f"msg_sim{next(self._ids)}"
        stop = "tool_use" if calls else "max_tokens" if len(words) >= (body.get("max_tokens") or 10**9) else "end_turn"
        if b.first_token_s:
            await asyncio.sleep(b.first_token_s)
        if not body.get("stream"):
            content: list[dict[str, Any]] = []
            if thinking:
                content.append({"type": "thinking", "thinking": "Let me think.", "signature": "sig-sim"})
            content.append({"type": "text", "text": "".join(words)})
            content += [{"type": "tool_use", "id": cid, "name": name, "input": orjson.loads(args)}
                        for cid, name, args in calls]
            msg = {"id": mid, "type": "message", "role": "assistant", "model": model, "content": content,
                   "stop_reason": stop, "stop_sequence": None, "usage": usage}
            return web.Response(body=orjson.dumps(msg), content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)

        def ev(name: str, data: dict[str, Any]) -> bytes:
            return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

        start_usage = {**usage, "output_tokens": 1}
        with self._counted_stream():
            await resp.write(ev("message_start", {"type": "message_start", "message": {
                "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": start_usage}}))
            index = 0
            if thinking:
                await resp.write(ev("content_block_start", {"type": "content_block_start", "index": 0,
                                                            "content_block": {"type": "thinking", "thinking": ""}}))
                await resp.write(ev("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
                    "type": "thinking_delta", "thinking": "Let me think."}}))
                await resp.write(ev("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
                    "type": "signature_delta", "signature": "sig-sim"}}))
                await resp.write(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
                index = 1
            await resp.write(ev("content_block_start", {"type": "content_block_start", "index": index,
                                                        "content_block": {"type": "text", "text": ""}}))
            await resp.write(ev("ping", {"type": "ping"}))
            for i, w in enumerate(words):
                if b.stream_error_after is not None and i >= b.stream_error_after:
                    await resp.write(ev("error", {"type": "error", "error": {
                        "type": "overloaded_error", "message": "Overloaded"}}))
                    await resp.write_eof()
                    return resp
                if b.token_delay_s and i:
                    await asyncio.sleep(b.token_delay_s)
                await resp.write(ev("content_block_delta", {"type": "content_block_delta", "index": index,
                                                            "delta": {"type": "text_delta", "text": w}}))
            await resp.write(ev("content_block_stop", {"type": "content_block_stop", "index": index}))
            for cid, name, args in calls:
                index += 1
                await resp.write(ev("content_block_start", {"type": "content_block_start", "index": index,
                                                            "content_block": {"type": "tool_use", "id": cid,
                                                                              "name": name, "input": {}}}))
                for piece in ["", *_pieces(args)]:
                    await resp.write(ev("content_block_delta", {"type": "content_block_delta", "index": index,
                                                                "delta": {"type": "input_json_delta",
                                                                          "partial_json": piece}}))
                await resp.write(ev("content_block_stop", {"type": "content_block_stop", "index": index}))
            await resp.write(ev("message_delta", {"type": "message_delta",
                                                  "delta": {"stop_reason": stop, "stop_sequence": None},
                                                  "usage": {"output_tokens": usage["output_tokens"]}}))
            await resp.write(ev("message_stop", {"type": "message_stop"}))
            await resp.write_eof()
        return resp


def _tool_calls(body: dict[str, Any], anthropic: bool = False) -> list[tuple[str, str, str]]:
    """The calls a simulated model makes: one per offered tool (at most two), unless the conversation
    already holds tool results or the client said `none`; arguments echo the start of the last user text."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not tools or choice == "none" or (isinstance(choice, dict) and choice.get("type") == "none"):
        return []
    msgs = body.get("messages") or []
    for m in msgs:
        c = m.get("content")
        if m.get("role") == "tool" or (isinstance(c, list) and any(
                isinstance(p, dict) and p.get("type") == "tool_result" for p in c)):
            return []
    content = (msgs[-1] if msgs else {}).get("content")
    text = content if isinstance(content, str) else " ".join(
        str(p.get("text", "")) for p in content or () if isinstance(p, dict))
    out = []
    for k, t in enumerate(tools[:2]):
        name = t.get("name") if anthropic else (t.get("function") or {}).get("name")
        args = orjson.dumps({"query": " ".join(text.split()[:4]), "n": k + 1}).decode()
        out.append((f"{'toolu' if anthropic else 'call'}_sim{k}", str(name), args))
    return out


def _pieces(s: str, n: int = 3) -> list[str]:
    """A JSON string cut in `n` pieces, as models stream tool arguments."""
    step = max(1, len(s) // n + 1)
    return [s[i : i + step] for i in range(0, len(s), step)]
