"""A small HTTP/1.1 client on raw asyncio protocols for streamed answers: time to first event and bytes.

`ttfe()` sends streamed chat requests one after another over one keep-alive connection and times each
from the request write to the arrival of the first SSE event (`data:`); `streams()` runs many streams at
a fixed concurrency (for CPU per stream). Both de-chunk every body and return it, so the caller can check
it byte for byte against what the upstream sent. Request bodies come from a template whose `@N@` becomes
a counter, like `bench/post.lua`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


class StreamError(RuntimeError):
    """A non-200 answer, a malformed response or a dropped connection."""


@dataclass(slots=True)
class StreamResult:
    ttfe_s: list[float] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    wall_s: float = 0.0


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.first_at = 0.0
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.first_at and b"data:" in data:
            self.first_at = time.perf_counter()
        self.buf += data
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionResetError("connection closed")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def more(self) -> None:
        if self.lost is not None:
            raise StreamError(f"connection lost: {self.lost}")
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter
        self.waiter = None

    async def request(self, head: bytes, body: bytes) -> tuple[float, bytes]:
        """Send one request; return (seconds to first event, de-chunked body)."""
        assert self.transport is not None
        self.first_at = 0.0
        if b"data:" in self.buf:
            raise StreamError("unexpected bytes before the request")
        start = time.perf_counter()
        self.transport.write(head + body)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            await self.more()
        status_head = bytes(self.buf[:end]).lower()
        del self.buf[: end + 4]
        if not status_head.startswith(b"http/1.1 200"):
            await asyncio.sleep(0.05)  # let the error body arrive, for the message
            status_line = status_head.partition(b"\r\n")[0].decode()
            raise StreamError(f"{status_line}: {bytes(self.buf[:300])!r}")
        if b"transfer-encoding: chunked" in status_head:
            payload = await self._chunked()
        else:
            i = status_head.find(b"content-length:")
            if i < 0:
                raise StreamError("neither chunked nor content-length")
            length = int(status_head[i + 15 :].split(b"\r\n")[0])
            while len(self.buf) < length:
                await self.more()
            payload = bytes(self.buf[:length])
            del self.buf[:length]
        first = self.first_at or time.perf_counter()
        return first - start, payload

    async def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            while (eol := self.buf.find(b"\r\n")) < 0:
                await self.more()
            size = int(bytes(self.buf[:eol]).split(b";")[0], 16)
            while len(self.buf) < eol + 2 + size + 2:
                await self.more()
            if size == 0:
                del self.buf[: eol + 4]
                return b"".join(parts)
            parts.append(bytes(self.buf[eol + 2 : eol + 2 + size]))
            del self.buf[: eol + 2 + size + 2]


def _head(host: str, port: int, path: str, length: int, auth: str | None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
        "Accept: text/event-stream", f"Content-Length: {length}",
    ]
    if auth:
        lines.append(f"Authorization: Bearer {auth}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _open(host: str, port: int) -> _Conn:
    _, conn = await asyncio.get_running_loop().create_connection(_Conn, host, port)
    return conn


class _Bodies:
    """Request bodies from a template, each unique."""

    def __init__(self, template: bytes, tag: str) -> None:
        self.prefix, _, self.suffix = template.partition(b"@N@")
        self.has_marker = b"@N@" in template
        self.tag = tag.encode()
        self.n = 0

    def next(self) -> bytes:
        if not self.has_marker:
            return self.prefix
        self.n += 1
        return self.prefix + self.tag + b"%d" % self.n + self.suffix


async def ttfe(
    host: str, port: int, path: str, template: bytes, count: int, auth: str | None = None, tag: str = "t"
) -> StreamResult:
    """`count` streams one after another on one connection: time to first event and body of each."""
    return await streams(host, port, path, template, count, 1, auth, tag)


async def streams(
    host: str, port: int, path: str, template: bytes, count: int, concurrency: int,
    auth: str | None = None, tag: str = "s",
) -> StreamResult:
    """`count` streams over `concurrency` connections at once; bodies in completion order."""
    out = StreamResult()
    bodies = _Bodies(template, tag)
    left = [count]

    async def worker() -> None:
        conn = await _open(host, port)
        try:
            while left[0] > 0:
                left[0] -= 1
                body = bodies.next()
                first, payload = await conn.request(_head(host, port, path, len(body), auth), body)
                out.ttfe_s.append(first)
                out.bodies.append(payload)
        finally:
            assert conn.transport is not None
            conn.transport.close()

    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(min(concurrency, count)):
            tg.create_task(worker())
    out.wall_s = time.perf_counter() - t0
    return out
