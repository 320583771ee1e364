"""A fast, deterministic OpenAI-compatible upstream on raw asyncio protocols (uvloop), for benchmarks.

It answers every `POST` with a canned chat completion, byte-identical on every request: a JSON body, or,
when the request says `"stream": true`, an SSE stream of `chunks` content events, one usage-only event
(`"choices":[]`) and `data: [DONE]`, each event in its own HTTP chunk. Pacing is set at start-up:
`first_byte_ms` before the response starts, `delay_ms` before a JSON answer, `chunk_delay_ms` between
stream events (libuv timers tick in whole milliseconds); a request whose body contains `[burst]` (say,
in the prompt, which every proxy forwards untouched) gets its whole stream in one write instead. The
request's `model` is ignored, since the router rewrites it. HTTP/1.1 keep-alive, Content-Length or
chunked request bodies; nothing else.

    python -m bench.mock_upstream --port 9100 --chunks 50 --chunk-delay-ms 1
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass

import orjson
import uvloop

CREATED = 1_700_000_000
COMPLETION_ID = "chatcmpl-bench0000000000000000"
MODEL = "bench-upstream"
PROMPT_TOKENS = 300
STREAM_MARKERS = (b'"stream":true', b'"stream": true')
BURST_MARKER = b"[burst]"


@dataclass(frozen=True, slots=True)
class MockSettings:
    chunks: int = 50
    first_byte_ms: float = 0.0
    delay_ms: float = 0.0
    chunk_delay_ms: float = 1.0


def _word(i: int) -> str:
    return f" tok{i}"


def json_body(chunks: int) -> bytes:
    """The complete (non-streaming) answer: the same text a stream of `chunks` events carries."""
    text = "".join(_word(i) for i in range(chunks))
    return orjson.dumps({
        "id": COMPLETION_ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": chunks,
                  "total_tokens": PROMPT_TOKENS + chunks},
    })


def sse_events(chunks: int) -> list[bytes]:
    """The SSE events of one stream, each `data: ...\\n\\n`: content, usage-only, `[DONE]`."""
    events: list[bytes] = []
    for i in range(chunks):
        delta: dict[str, str] = {"content": _word(i)}
        if i == 0:
            delta = {"role": "assistant", "content": _word(i)}
        chunk = {
            "id": COMPLETION_ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if i == chunks - 1 else None}],
        }
        events.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    usage = {
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": chunks,
                  "total_tokens": PROMPT_TOKENS + chunks},
    }
    events.append(b"data: " + orjson.dumps(usage) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def sse_body(chunks: int) -> bytes:
    """What a client must read, de-chunked, from a stream of `chunks` content events."""
    return b"".join(sse_events(chunks))


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class _Canned:
    """Every response byte string, built once."""

    def __init__(self, s: MockSettings) -> None:
        body = json_body(s.chunks)
        self.json_response = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: keep-alive\r\n\r\n%s" % (len(body), body)
        )
        self.sse_head = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
        )
        self.sse_frames = [_http_chunk(e) for e in sse_events(s.chunks)]
        self.sse_frames[-1] += b"0\r\n\r\n"
        self.sse_burst = self.sse_head + b"".join(self.sse_frames)
        self.not_found = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n"
        self.healthy = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok"


class MockProtocol(asyncio.Protocol):
    """One client connection: parse requests in order, answer each from the canned bytes."""

    __slots__ = ("_buf", "_busy", "_canned", "_closed", "_loop", "_pending", "_settings", "_transport")

    def __init__(self, canned: _Canned, settings: MockSettings) -> None:
        self._canned = canned
        self._settings = settings
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False  # a paced response is still being written; later requests wait
        self._closed = False
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy:
            self._drain_requests()

    def _drain_requests(self) -> None:
        while not self._busy and not self._closed:
            request = self._take_request()
            if request is None:
                return
            head, body = request
            self._answer(head, body)

    def _take_request(self) -> tuple[bytes, bytes] | None:
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buf[:end]).lower()
        start = end + 4
        i = head.find(b"content-length:")
        if i >= 0:
            j = head.find(b"\r\n", i)
            length = int(head[i + 15 : j if j >= 0 else len(head)])
            if len(buf) < start + length:
                return None
            body = bytes(buf[start : start + length])
            del buf[: start + length]
            return head, body
        if b"transfer-encoding: chunked" in head:
            return self._take_chunked(head, start)
        del buf[:start]
        return head, b""

    def _take_chunked(self, head: bytes, pos: int) -> tuple[bytes, bytes] | None:
        buf = self._buf
        parts: list[bytes] = []
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            if size == 0:
                if len(buf) < eol + 4:
                    return None
                del buf[: eol + 4]
                return head, b"".join(parts)
            if len(buf) < eol + 2 + size + 2:
                return None
            parts.append(bytes(buf[eol + 2 : eol + 2 + size]))
            pos = eol + 2 + size + 2

    def _answer(self, head: bytes, body: bytes) -> None:
        c, s = self._canned, self._settings
        assert self._transport is not None
        if not head.startswith(b"post "):
            self._transport.write(c.healthy if head.startswith(b"get /healthz") else c.not_found)
            return
        if any(m in body for m in STREAM_MARKERS):
            if BURST_MARKER in body and s.first_byte_ms <= 0:
                self._transport.write(c.sse_burst)
                return
            self._busy = True
            self._loop.call_later(s.first_byte_ms / 1000, self._send_frame, 0)
        elif s.delay_ms + s.first_byte_ms > 0:
            self._busy = True
            self._loop.call_later((s.delay_ms + s.first_byte_ms) / 1000, self._send_json)
        else:
            self._transport.write(c.json_response)

    def _send_json(self) -> None:
        if not self._closed:
            assert self._transport is not None
            self._transport.write(self._canned.json_response)
        self._done()

    def _send_frame(self, i: int) -> None:
        if self._closed:
            return
        assert self._transport is not None
        frames = self._canned.sse_frames
        self._transport.write(self._canned.sse_head + frames[0] if i == 0 else frames[i])
        if i + 1 < len(frames):
            delay = self._settings.chunk_delay_ms / 1000
            if delay > 0:
                self._loop.call_later(delay, self._send_frame, i + 1)
            else:
                self._send_frame(i + 1)
        else:
            self._done()

    def _done(self) -> None:
        self._busy = False
        if self._buf and not self._closed:
            self._drain_requests()


async def serve(host: str, port: int, settings: MockSettings) -> None:
    """Serve until cancelled."""
    canned = _Canned(settings)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: MockProtocol(canned, settings), host, port, reuse_address=True, backlog=1024
    )
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.mock_upstream", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100)
    p.add_argument("--chunks", type=int, default=50, help="content events per stream")
    p.add_argument("--first-byte-ms", type=float, default=0.0, help="delay before any response byte")
    p.add_argument("--delay-ms", type=float, default=0.0, help="extra delay before a JSON answer")
    p.add_argument("--chunk-delay-ms", type=float, default=1.0, help="delay between stream events")
    a = p.parse_args(argv)
    settings = MockSettings(a.chunks, a.first_byte_ms, a.delay_ms, a.chunk_delay_ms)
    try:
        uvloop.run(serve(a.host, a.port, settings))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
