"""A misbehaving OpenAI-compatible upstream: one hostile behaviour per model id.

Used by the hardening tests (tests/test_hardening_upstream.py) and by `bench/hostile.py`, which replays
every case against a running router. The router's config names one backend whose models are the cases
below (`CASES`); a request for model `huge-json` gets a 100 MB JSON answer, and so on. The server is raw
asyncio, so it can send what no HTTP library would: endless header lines, 100,000 headers, an SSE body
without a single event boundary, a gzip body the router did not ask for.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from typing import Any

import orjson

MiB = 1 << 20
PIECE = b"0" * 65536
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}

CASES = {
    "echo-key": "a 401 whose message quotes the router's upstream key",
    "echo-key-400": "a 400 (passed through to the client) quoting the key and other key-shaped strings",
    "huge-json": "a 100 MB JSON answer with Content-Length",
    "endless-json": "a chunked JSON answer that never ends",
    "endless-header": "a response header line that never ends",
    "many-headers": "100,000 response headers",
    "sse-no-boundary": "an SSE stream that never sends a blank line (one endless event)",
    "sse-huge-event": "an SSE stream whose second event is 8 MB of data lines",
    "gzip-json": "a gzip-encoded JSON answer with usage (the router asked for identity)",
    "gzip-sse": "a gzip-encoded SSE stream with a usage event",
    "multi-usage": "an SSE stream whose one chunk holds two usage-only events",
    "slow-stream": "an SSE stream with an event every 0.2 s, forever",
    "ok": "a well-behaved JSON answer",
}


def _chat(model: str, text: str = "hello") -> dict[str, Any]:
    return {"id": "cmpl-1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": USAGE}


def _event(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _delta(model: str, text: str) -> bytes:
    return _event({"id": "c1", "object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})


def _usage_event(model: str) -> bytes:
    return _event({"id": "c1", "object": "chat.completion.chunk", "model": model, "choices": [], "usage": USAGE})


def sse_body(model: str) -> bytes:
    return _delta(model, "Hel") + _delta(model, "lo") + _usage_event(model) + b"data: [DONE]\n\n"


def _head(status: int, ctype: bytes, extra: bytes = b"", length: int | None = None) -> bytes:
    framing = b"Content-Length: %d\r\n" % length if length is not None else b"Transfer-Encoding: chunked\r\n"
    reason = {200: b"OK", 400: b"Bad Request", 401: b"Unauthorized"}.get(status, b"X")
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nConnection: close\r\n%s%s\r\n" % (
        status, reason, ctype, framing, extra)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class HostileUpstream:
    """The server; `start()` returns its base URL (`http://127.0.0.1:PORT/v1`)."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.requests: list[dict[str, Any]] = []
        self.open_connections = 0
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.server = await asyncio.start_server(self._serve, host, port)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://{host}:{port}/v1"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for w in list(self._writers):
                w.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        self._writers.add(writer)
        try:
            while True:  # (every answer says Connection: close, so the router sends one request per connection)
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                body = orjson.loads(raw)
                self.requests.append({"headers": headers, "body": body, "raw": raw})
                await self._answer(body, headers, writer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self.open_connections -= 1
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, body: dict[str, Any], headers: dict[str, str], w: asyncio.StreamWriter) -> None:
        model = str(body.get("model"))
        key = headers.get("authorization", "").removeprefix("Bearer ")
        if model == "echo-key":
            msg = orjson.dumps({"error": {"message": f"Incorrect API key provided: {key}.", "type": "auth"}})
            w.write(_head(401, b"application/json", length=len(msg)) + msg)
        elif model == "echo-key-400":
            msg = orjson.dumps({"error": {"message": f"Bad key {key}; also sk-proj-abcdef1234567890 and "
                                          "Bearer abcdefghijklmnop", "type": "invalid_request_error",
                                          "param": None, "code": "bad"}})
            w.write(_head(400, b"application/json", length=len(msg)) + msg)
        elif model == "huge-json":
            w.write(_head(200, b"application/json", length=100 * MiB) + b'{"pad":"')
            await _endless(w, PIECE)
        elif model == "endless-json":
            w.write(_head(200, b"application/json") + _chunk(b'{"pad":"'))
            await _endless(w, _chunk(PIECE))
        elif model == "endless-header":
            w.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
            await _endless(w, b"a" * 65536)
        elif model == "many-headers":
            w.write(b"HTTP/1.1 200 OK\r\n")
            for i in range(0, 100_000, 1000):
                w.write(b"".join(b"X-H%d: v\r\n" % j for j in range(i, i + 1000)))
                await w.drain()
            w.write(b"Content-Length: 2\r\n\r\n{}")
        elif model == "sse-no-boundary":
            w.write(_head(200, b"text/event-stream") + _chunk(_delta(model, "x")) + _chunk(b'data: {"x":"'))
            await _endless(w, _chunk(PIECE))
        elif model == "sse-huge-event":
            w.write(_head(200, b"text/event-stream") + _chunk(_delta(model, "x")))
            line = _chunk(b"data: " + PIECE + b"\n")
            for _ in range(128):
                w.write(line)
                await w.drain()
            w.write(_chunk(b"\n") + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        elif model == "gzip-json":
            data = gzip.compress(orjson.dumps(_chat(model)))
            w.write(_head(200, b"application/json", b"Content-Encoding: gzip\r\n", len(data)) + data)
        elif model == "gzip-sse":
            z = zlib.compressobj(wbits=31)
            data = z.compress(sse_body(model)) + z.flush()
            w.write(_head(200, b"text/event-stream", b"Content-Encoding: gzip\r\n") + _chunk(data[:20]))
            await w.drain()
            await asyncio.sleep(0.01)
            w.write(_chunk(data[20:]) + b"0\r\n\r\n")
        elif model == "multi-usage":
            data = _delta(model, "Hi") + _usage_event(model) + _usage_event(model) + _delta(model, "!") \
                + b"data: [DONE]\n\n"
            w.write(_head(200, b"text/event-stream", length=len(data)) + data)
        elif model == "slow-stream":
            w.write(_head(200, b"text/event-stream"))
            while True:
                w.write(_chunk(_delta(model, "x")))
                await w.drain()
                await asyncio.sleep(0.2)
        else:
            data = orjson.dumps(_chat(model))
            w.write(_head(200, b"application/json", length=len(data)) + data)


async def _endless(w: asyncio.StreamWriter, piece: bytes) -> None:
    while True:  # until the router gives up and closes the connection (ConnectionError)
        w.write(piece)
        await w.drain()


async def _serve_forever(port: int) -> None:
    up = HostileUpstream()
    print(await up.start(port=port), flush=True)
    await asyncio.Event().wait()


def backend_config(url: str, **timeouts: float) -> dict[str, Any]:
    """A `backends[]` entry for this upstream: one model per case."""
    return {
        "name": "hostile", "kind": "openai", "base_url": url, "api_key_env": "AI_ROUTER_HOSTILE_KEY",
        "timeouts": {"connect_s": 1, "first_byte_s": 5, "idle_s": 5, "total_s": 30, **timeouts},
        # every case is judged on its own call: no health checks, and a breaker that never opens
        "health": {"probe": "off"}, "breaker": {"failures": 1_000_000, "min_requests": 1_000_000},
        "models": [{"id": case, "tier": "hostile", "context": 100000, "price": {"input": 1, "output": 1}}
                   for case in CASES],
    }


if __name__ == "__main__":  # python -m bench.hostile_upstream PORT: serve until killed (prints its base URL)
    import sys

    asyncio.run(_serve_forever(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
