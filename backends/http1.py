"""A lean HTTP/1.1 client for backend adapters: one origin, a keep-alive pool, httptools parsing.

aiohttp's client spends ~50 µs of CPU per proxied request on generality a backend never uses (cookies,
redirects, proxies, multipart, middlewares, per-request timeout objects). A backend only ever POSTs a
body it already holds as bytes to one origin and reads back a JSON body whole or an SSE body chunk by
chunk, so this module does exactly that on raw asyncio protocols (uvloop or not):

    Client        one origin (scheme, host, port): the precomputed request head, the pool, the timeouts
    Pool          at most `size` connections; idle ones reused LIFO, waiters served FIFO, idle expiry
    Connection    an asyncio.Protocol feeding httptools; per-request state lives in its slots and is reset
                  for each request; one timer handle per request, checked lazily (never re-armed per chunk)
    Response      status, content type, content encoding and Retry-After; `read()` the whole body or
                  `chunk()` by chunk; `release()` when done (back to the pool only if complete and
                  keep-alive), `close()` to abort
    Limits        what an upstream may send: head size, header count, size of a body read whole; past a
                  limit the call fails at once (ResponseTooLarge), nothing more is buffered

Errors, translated into router.errors by the adapter (as httpx maps httpcore's):

    HTTPClientError
    ├── ConnectError            cannot connect (refused, unreachable, DNS, TLS)
    ├── ServerDisconnected      the connection ended before the whole response
    ├── ProtocolError           the response is not valid HTTP/1.x
    │   └── ResponseTooLarge    … or is over a `Limits` bound
    └── ClientTimeout           (also a TimeoutError)
        ├── ConnectTimeout      no connection (pool wait + connect + TLS) within connect_s
        ├── ReadTimeout         no data for the read gap (first_byte_s until the head, then idle_s)
        ├── ContentTimeout      the caller's content deadline passed (`Response.content_within`)
        └── TotalTimeout        the whole call exceeded total_s

A request that fails on a reused keep-alive connection before any response byte (the server closed it
while it sat idle) is sent once more on a fresh connection; that is the only case a POST is retried.

Every deadline here (connect, the wait for a pooled connection, first byte, idle, total, first content)
measures the upstream, not the router's own event-loop lag: a timer the loop ran late (stalled through
the deadline) judges only after one more I/O poll, on the real state (backends/deadline.py has the rule).
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

from backends import egress
from backends.deadline import GRACE, LAG_TOLERANCE, Deadline, fail_at, lateness

KEEPALIVE_S = 60.0
DNS_TTL_S = 300.0
HIGH_WATER = 1 << 20  # pause reading a stream whose consumer is this far behind …
LOW_WATER = 1 << 18  # … and resume once it has drained below this
_NEVER = float("inf")
GATHER_AT = 1 << 20  # a body read whole grows in one bytearray past this size (no join copy at the end)


class HTTPClientError(Exception):
    """A failed HTTP exchange with the upstream."""


class ConnectError(HTTPClientError):
    def __init__(self, host: str, port: int, cause: BaseException | None = None) -> None:
        detail = f" ({cause})" if cause is not None and str(cause) else ""
        super().__init__(f"cannot connect to {host}:{port}{detail}")
        self.host = host
        self.port = port


class ServerDisconnected(HTTPClientError):
    pass


class ProtocolError(HTTPClientError):
    pass


class ResponseTooLarge(ProtocolError):
    pass


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one upstream response may make the router hold."""

    head_bytes: int = 64 * 1024  # status line + headers
    headers: int = 100
    body_bytes: int = 64 * 1024 * 1024  # a body read whole (`read()`); streams are bounded by backpressure


class ClientTimeout(HTTPClientError, TimeoutError):
    pass


class ConnectTimeout(ClientTimeout):
    pass


class ReadTimeout(ClientTimeout):
    pass


class ContentTimeout(ClientTimeout):
    """The caller's deadline for the first content (`Response.content_within`) passed: data may have
    arrived (a role-only chunk), but not what the caller waits for."""


class TotalTimeout(ClientTimeout):
    pass


class Client:
    """POSTs to one origin over a keep-alive pool; `head()` builds a target's request head once."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str],
        size: int,
        connect_s: float,
        total_s: float,
        keepalive_s: float = KEEPALIVE_S,
        loop: asyncio.AbstractEventLoop | None = None,
        limits: Limits | None = None,
        proxy: egress.Proxy | None = None,
        ca_file: str | None = None,
    ) -> None:
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"unsupported base URL {base_url!r}")
        self.tls = u.scheme == "https"
        self.host = u.hostname
        self.port = u.port or (443 if self.tls else 80)
        self.base_path = u.path.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        if u.port is not None and u.port != (443 if self.tls else 80):
            host = f"{host}:{u.port}"
        lines = [f"Host: {host}"] + [f"{k}: {v}" for k, v in headers.items()]
        self.proxy = proxy
        self._target_prefix = ""
        if proxy is not None and not self.tls:  # plain HTTP through a forward proxy: absolute-form targets
            self._target_prefix = f"http://{host}"
            if proxy.authorization:
                lines.append(f"Proxy-Authorization: {proxy.authorization}")
        for line in lines:
            if "\r" in line or "\n" in line:
                raise ValueError(f"header line {line.split(':', 1)[0]!r} contains a line break")
        self._header_block = ("\r\n".join(lines) + "\r\n").encode()
        self._heads: dict[str, bytes] = {}
        self.connect_s = connect_s
        self.total_s = total_s
        self.limits = limits or Limits()
        self.loop = loop or asyncio.get_running_loop()
        self.pool = Pool(self, size, keepalive_s)
        self.ssl = ssl.create_default_context(cafile=ca_file) if self.tls else None
        self._addrs: list[tuple[Any, ...]] | None = None
        self._addrs_until = 0.0

    def head(self, target: str) -> bytes:
        """`POST <base path + target> HTTP/1.1` and the fixed headers, encoded once per target."""
        h = self._heads.get(target)
        if h is None:
            h = self._heads[target] = b"POST %s HTTP/1.1\r\n%s" % (
                (self._target_prefix + self.base_path + target).encode(), self._header_block)
        return h

    async def post(self, head: bytes, body: bytes, request_id: bytes, read_s: float, stream: bool,
                   extra: bytes = b"") -> Response:
        """Send one request and wait for its response head; the body is read through the `Response`.

        `read_s` is the longest gap without data until the caller switches it (`Response.read_gap`);
        `stream` turns on chunk-by-chunk delivery with backpressure; `extra` holds further header lines,
        encoded and each ending in CRLF (W3C `traceparent` when tracing is on)."""
        loop = self.loop
        fresh = False
        if len(body) < 16384:  # one buffer, one copy
            parts: tuple[bytes, ...] = (b"%sContent-Length: %d\r\nX-Request-Id: %s\r\n%s\r\n%s" % (
                head, len(body), request_id, extra, body),)
        else:  # a vectored write, no copy of the body
            parts = (b"%sContent-Length: %d\r\nX-Request-Id: %s\r\n%s\r\n" % (head, len(body), request_id, extra),
                     body)
        deadline = loop.time() + self.total_s
        while True:
            conn = await self.pool.acquire(min(loop.time() + self.connect_s, deadline), fresh)
            reused = conn.requests > 0
            conn.begin(deadline, read_s, stream)
            if len(parts) == 1:
                conn.transport.write(parts[0])
            else:
                conn.transport.writelines(parts)
            try:
                await conn.wait_headers()
            except ServerDisconnected:
                conn.finish()
                if reused and not conn.received and not fresh:
                    fresh = True  # the server closed it while idle: once more on a new connection
                    continue
                raise
            except BaseException:
                conn.finish()
                raise
            return Response(conn)

    async def aclose(self) -> None:
        self.pool.close()

    # ------------------------------------------------------------ connecting

    async def _addresses(self) -> list[tuple[Any, ...]]:
        loop = self.loop
        if self._addrs is not None and loop.time() < self._addrs_until:
            return self._addrs
        try:
            ipaddress.ip_address(self.host)
            flags = socket.AI_NUMERICHOST
        except ValueError:
            flags = 0
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=flags)
        self._addrs = [(fam, addr) for fam, _, _, _, addr in infos]
        self._addrs_until = loop.time() + DNS_TTL_S
        return self._addrs

    async def connect(self, deadline: float) -> Connection:
        """A new connection (TCP, then TLS with SNI for https), trying each resolved address in turn."""
        if self.proxy is not None:
            return await self._connect_via_proxy(deadline)
        loop = self.loop
        error: BaseException | None = None
        factory, made = self._factory()
        try:
            async with Deadline(loop, deadline, made):
                try:
                    addrs = await self._addresses()
                except OSError as e:
                    raise ConnectError(self.host, self.port, e) from None
                for family, addr in addrs:
                    try:
                        _, conn = await loop.create_connection(
                            factory, addr[0], addr[1], family=family, ssl=self.ssl,
                            server_hostname=self.host if self.ssl is not None else None,
                        )
                    except OSError as e:  # ssl.SSLError is one too
                        error = e
                        continue
                    return conn
        except TimeoutError:
            raise ConnectTimeout(f"no connection to {self.host}:{self.port} in time") from None
        raise ConnectError(self.host, self.port, error)

    def _factory(self) -> tuple[Callable[[], Connection], Callable[[], bool]]:
        """The protocol factory of one connect, and whether a connection it made is up (TCP, and TLS for
        https): then a deadline that comes due finds the connect done, only its task left to resume."""
        made: list[Connection] = []

        def factory() -> Connection:
            conn = Connection(self.pool)
            made.append(conn)
            return conn

        return factory, lambda: bool(made) and made[-1].transport is not None

    async def _connect_via_proxy(self, deadline: float) -> Connection:
        """A new connection through the egress proxy (backends/egress.py): a CONNECT tunnel and TLS to the
        origin for https, a plain connection to the proxy for http."""
        proxy = self.proxy
        assert proxy is not None
        factory, made = self._factory()
        try:
            async with Deadline(self.loop, deadline, made):
                conn = await egress.connect(self.loop, proxy, self.host, self.port, self.ssl, factory)
        except TimeoutError:
            raise ConnectTimeout(f"no connection to {self.host}:{self.port} through the proxy in time") from None
        except egress.ProxyRefused as e:
            raise ConnectError(self.host, self.port, e) from None
        except OSError as e:  # the proxy is unreachable, or TLS to the origin failed (ssl.SSLError)
            where = f"the proxy {proxy.where}" if not isinstance(e, ssl.SSLError) else "TLS through the proxy"
            raise ConnectError(self.host, self.port, OSError(f"{where}: {e}")) from None
        return conn  # type: ignore[return-value]


class Pool:
    """Keep-alive connections to one origin: at most `size` open (idle, busy or connecting)."""

    def __init__(self, client: Client, size: int, keepalive_s: float) -> None:
        self.client = client
        self.loop = client.loop
        self.size = size
        self.keepalive_s = keepalive_s
        self.open = 0  # slots held: idle + busy + connecting
        self.idle: list[Connection] = []  # LIFO: the most recently used is the most likely alive
        self.conns: set[Connection] = set()  # every open one, to close them all at the end
        self.waiters: collections.deque[asyncio.Future[Connection | None]] = collections.deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self.closed = False

    async def acquire(self, deadline: float, fresh: bool = False) -> Connection:
        """An idle connection (unless `fresh`), a new one if a slot is free, else wait in line."""
        if self.closed:
            raise ConnectError(self.client.host, self.client.port, RuntimeError("client closed"))
        idle = self.idle
        if idle and not fresh:
            stale = self.loop.time() - self.keepalive_s
            while idle:
                conn = idle.pop()
                conn.pooled = False
                if conn.idle_since > stale:
                    return conn
                conn.close()
                self.free_slot()
        if fresh and idle and self.open >= self.size:
            old = idle.pop(0)
            old.pooled = False
            old.abort()
            self.open -= 1
        if self.open < self.size:
            self.open += 1
            return await self._connect_in_slot(deadline)
        fut: asyncio.Future[Connection | None] = self.loop.create_future()
        self.waiters.append(fut)
        timer = fail_at(self.loop, deadline, fut, self._no_free_connection)
        try:
            conn = await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._pass_on(fut.result())  # handed a connection or a slot while being cancelled
            else:
                try:
                    self.waiters.remove(fut)
                except ValueError:
                    pass
            raise
        finally:
            timer.cancel()
        if conn is None or fresh:
            if conn is not None:
                conn.abort()
            return await self._connect_in_slot(deadline)
        return conn

    def _no_free_connection(self) -> ConnectTimeout:
        return ConnectTimeout(f"no free connection to {self.client.host}:{self.client.port} in time")

    async def _connect_in_slot(self, deadline: float) -> Connection:
        try:
            return await self.client.connect(deadline)
        except BaseException:
            self.free_slot()
            raise

    def _pass_on(self, conn: Connection | None) -> None:
        if conn is None:
            self.free_slot()
        else:
            self.release(conn)

    def release(self, conn: Connection) -> None:
        """Take back a reusable connection: straight to the first waiter, else onto the idle stack."""
        waiters = self.waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(conn)
                return
        if self.closed:
            conn.abort()
            self.open -= 1
            return
        conn.idle_since = self.loop.time()
        conn.pooled = True
        self.idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self.keepalive_s, self._sweep)

    def free_slot(self) -> None:
        """A connection is gone: its slot goes to the first waiter (who connects anew)."""
        self.open -= 1
        waiters = self.waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                self.open += 1
                w.set_result(None)
                return

    def lost_idle(self, conn: Connection) -> None:
        conn.pooled = False
        try:
            self.idle.remove(conn)
        except ValueError:
            return
        self.free_slot()

    def _sweep(self) -> None:
        self._sweeper = None
        cutoff = self.loop.time() - self.keepalive_s
        keep = []
        for conn in self.idle:
            if conn.idle_since <= cutoff:
                conn.pooled = False
                conn.close()
                self.free_slot()
            else:
                keep.append(conn)
        self.idle[:] = keep
        if keep:
            self._sweeper = self.loop.call_later(self.keepalive_s, self._sweep)

    def close(self) -> None:
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.pooled = False
            conn.close()
            self.open -= 1
        for conn in list(self.conns):  # busy ones too: their requests fail as disconnected
            conn.abort()


class Connection(asyncio.Protocol):
    """One upstream connection; the state of the request in flight lives here and is reset per request."""

    __slots__ = (
        "begun",
        "body",
        "buffered",
        "chunks",
        "closed",
        "content_by",
        "content_encoding",
        "content_length",
        "content_type",
        "deadline",
        "done",
        "exc",
        "framed",
        "gap",
        "head_size",
        "header_count",
        "headers_done",
        "idle_since",
        "informational",
        "keep_alive",
        "last_data",
        "limit",
        "limits",
        "loop",
        "parser",
        "paused",
        "pool",
        "pooled",
        "ready",
        "received",
        "requests",
        "retry_after",
        "size",
        "status",
        "streaming",
        "timer",
        "transport",
        "waiter",
    )

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.limits = pool.client.limits
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.pooled = False
        self.requests = 0
        self.idle_since = 0.0
        self.begun = 0.0
        self.content_by = _NEVER
        self.timer: asyncio.Handle | None = None  # a TimerHandle, or the call_soon of its judging
        self.waiter: asyncio.Future[None] | None = None
        self.chunks: list[bytes] = []
        self.body: bytearray | None = None  # a body read whole, once it spans several chunks
        self._reset()
        self.done = True  # no request in flight

    def _reset(self) -> None:
        self.status = 0
        self.content_type = b""
        self.content_encoding = b""
        self.content_length = -1
        self.head_size = 0
        self.header_count = 0
        self.body = None
        self.retry_after: bytes | None = None
        self.framed = False
        self.informational = False
        self.headers_done = False
        self.done = False
        self.keep_alive = False
        self.exc: BaseException | None = None
        self.received = False
        self.ready = False
        self.streaming = False
        self.paused = False
        self.buffered = 0
        self.size = 0
        self.limit = 0

    # ------------------------------------------------------------ request lifecycle (called by Client)

    def begin(self, deadline: float, gap: float, stream: bool) -> None:
        self._reset()
        self.chunks.clear()
        self.requests += 1
        self.streaming = stream
        self.deadline = deadline
        self.gap = gap
        self.content_by = _NEVER
        self.begun = self.last_data = now = self.loop.time()
        self.timer = self.loop.call_at(min(now + gap, deadline), self._on_timer)
        if self.closed:  # lost between being handed out and now
            self.exc = ServerDisconnected("server disconnected")

    def finish(self) -> None:
        """The caller is done with the response: keep the connection if it can carry another one."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.done and self.keep_alive and not self.closed and self.exc is None:
            self.chunks.clear()
            if self.paused:
                self.paused = False
                self.transport.resume_reading()
            self.pool.release(self)
        else:
            self.done = True
            self.abort()
            self.pool.free_slot()

    def set_gap(self, gap: float) -> None:
        shorter = gap < self.gap
        self.gap = gap
        if shorter and self.timer is not None:  # a longer gap needs nothing: the timer re-arms lazily
            self.timer.cancel()
            self.timer = self.loop.call_at(min(self.last_data + gap, self.deadline, self.content_by),
                                           self._on_timer)

    def set_content_by(self, when: float) -> None:
        earlier = when < self.content_by
        self.content_by = when
        if earlier and self.timer is not None:
            self.timer.cancel()
            self.timer = self.loop.call_at(min(self.last_data + self.gap, self.deadline, when), self._on_timer)

    async def wait_headers(self) -> None:
        while not self.headers_done:
            if self.exc is not None:
                raise self.exc
            await self._wait()

    async def read(self, limit: int = 0) -> bytes:
        """The whole body (at most about `limit` bytes when given; then the connection is not reused).

        A body over `Limits.body_bytes` fails with ResponseTooLarge: at once when its Content-Length says
        so, else as soon as it passes the bound. Past `GATHER_AT` the body grows in one bytearray (no second
        whole copy at the end) and is returned as that bytearray: callers take any bytes-like body."""
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        self.streaming = False
        self.limit = limit
        if not limit:
            self._check_declared_length()
        while not self.done:
            if self.exc is not None:
                raise self.exc
            if limit and self.size >= limit:
                break
            await self._wait()
        if self.exc is not None:
            raise self.exc
        chunks = self.chunks
        body: Any = self.body if self.body is not None else chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.body = None
        return body[:limit] if limit else body  # type: ignore[no-any-return]

    async def chunk(self) -> bytes:
        """What arrived since the last call (waiting if nothing did); b"" once the body is complete."""
        chunks = self.chunks
        while not chunks:
            if self.exc is not None:
                raise self.exc
            if self.done:
                return b""
            await self._wait()
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        return data

    async def _wait(self) -> None:
        self.ready = False
        w = self.waiter = self.loop.create_future()
        try:
            await w
        finally:
            self.waiter = None

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.exc is None and not self.done:
            self.exc = exc
        self.abort()
        self._wake()

    def _on_timer(self) -> None:
        """The one timer of a request: total deadline, content deadline or a read gap; re-armed lazily,
        not per chunk. Judged after the callbacks already queued; when the loop ran it late (stalled
        through it), only after one more I/O poll: data that arrived meanwhile counts (backends/deadline.py)."""
        loop = self.loop
        timer = self.timer
        if self.done or self.closed:
            self.timer = None
            return
        if lateness(loop, timer) > LAG_TOLERANCE:
            self.timer = loop.call_later(GRACE, self._after_poll)
        else:
            self.timer = loop.call_soon(self._judge)

    def _after_poll(self) -> None:
        self.timer = self.loop.call_soon(self._judge)

    def _judge(self) -> None:
        self.timer = None
        if self.done or self.closed:
            return
        now = self.loop.time()
        deadline = self.deadline
        if now + 0.001 >= deadline:
            self._fail(TotalTimeout("the response did not finish in time"))
            return
        if now + 0.001 >= self.content_by:
            self._fail(ContentTimeout("no content by the caller's deadline"))
            return
        due = self.last_data + self.gap
        if self.paused or (self.chunks and self.waiter is None and self.headers_done):
            due = now + self.gap  # the consumer is behind, not the upstream
        elif now + 0.001 >= due:
            self._fail(ReadTimeout(f"no data for {self.gap:g}s"))
            return
        self.timer = self.loop.call_at(min(due, deadline, self.content_by), self._on_timer)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # asyncio and uvloop set TCP_NODELAY
        self.pool.conns.add(self)

    def data_received(self, data: bytes) -> None:
        if self.done:  # bytes nobody asked for: this connection cannot be trusted any more
            self.abort()
            if self.pooled:
                self.pool.lost_idle(self)
            return
        self.last_data = self.loop.time()
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(ProtocolError(f"invalid HTTP response: {e}"))
            return
        if not self.headers_done and self._head_too_large(len(data)):
            return
        if self.ready:
            self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost does the rest

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.conns.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.pooled:
            self.pool.lost_idle(self)
            return
        if self.done or self.exc is not None:
            self._wake()
            return
        if self.headers_done and not self.framed:
            self.done = True  # a body delimited by the end of the connection
        else:
            what = "server disconnected" if exc is None else f"connection lost: {exc}"
            self.exc = ServerDisconnected(what)
        self._wake()

    def pause_writing(self) -> None:  # request bodies are written whole; the kernel buffers them
        pass

    def resume_writing(self) -> None:
        pass

    # ------------------------------------------------------------ httptools callbacks

    def on_message_begin(self) -> None:
        if self.done:
            raise ProtocolError("data after the end of the response")
        self.content_type = b""
        self.retry_after = None
        self.framed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        if self.header_count > self.limits.headers:
            self._too_large(f"more than {self.limits.headers} response headers")
        n = len(name)
        if n == 12:
            if name.lower() == b"content-type":
                self.content_type = value
        elif n == 14:
            if name.lower() == b"content-length":
                self.framed = True
                self.content_length = int(value) if value.isdigit() else -1
        elif n == 16:
            if name.lower() == b"content-encoding":
                self.content_encoding = value.strip().lower()
        elif n == 17:
            if name.lower() == b"transfer-encoding":
                self.framed = True
        elif n == 11 and name.lower() == b"retry-after":
            self.retry_after = value

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # 1xx: an interim response, the real one follows
            self.informational = True
            return
        self.status = status
        if status == 204 or status == 304:
            self.framed = True
        self.headers_done = True
        self.ready = True

    def on_body(self, body: bytes) -> None:
        n = len(body)
        self.size += n
        if self.streaming:
            self.chunks.append(body)
            self.buffered += n
            self.ready = True
            if self.buffered > HIGH_WATER and not self.paused:
                self.paused = True
                self.transport.pause_reading()
            return
        if self.body is not None:
            self.body += body
        else:
            self.chunks.append(body)
            if self.size > GATHER_AT:  # a large body: one growing buffer from now on, not pieces to join
                self.body = bytearray().join(self.chunks)
                self.chunks.clear()
        if self.limit:
            if self.size >= self.limit:
                self.ready = True
        elif self.size > self.limits.body_bytes:
            self._too_large(f"response body over {self.limits.body_bytes} bytes")

    # ------------------------------------------------------------ limits (Limits), each check in one place

    def _head_too_large(self, n: int) -> bool:
        """Count bytes that arrived before the end of the head; fail past `Limits.head_bytes`."""
        self.head_size += n
        if self.head_size <= self.limits.head_bytes:
            return False
        self._fail(ResponseTooLarge(f"response head over {self.limits.head_bytes} bytes"))
        return True

    def _too_large(self, what: str) -> None:
        """Fail from inside a parser callback: the error is kept, parsing stops, the connection closes."""
        self._fail(ResponseTooLarge(what))
        raise ResponseTooLarge(what)

    def _check_declared_length(self) -> None:
        if self.content_length > self.limits.body_bytes:
            self._fail(ResponseTooLarge(f"response body of {self.content_length} bytes declared, over "
                                        f"{self.limits.body_bytes}"))


    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        self.keep_alive = self.parser.should_keep_alive()
        self.done = True
        self.ready = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Response:
    """The response to one `Client.post`: the head's few fields the adapters use, and the body."""

    __slots__ = ("conn", "content_encoding", "content_type", "retry_after", "status")

    def __init__(self, conn: Connection) -> None:
        self.conn: Connection | None = conn
        self.status = conn.status
        self.content_type = conn.content_type
        self.content_encoding = conn.content_encoding
        self.retry_after = conn.retry_after

    @property
    def is_event_stream(self) -> bool:
        return self.content_type[:17].lower() == b"text/event-stream"

    def read_gap(self, seconds: float) -> None:
        """Change the longest gap without data (idle_s once the head has arrived)."""
        if self.conn is not None:
            self.conn.set_gap(seconds)

    def content_within(self, seconds: float | None) -> None:
        """Fail reads with ContentTimeout unless the caller calls this again with None within `seconds` of
        the request being sent (the first content token's deadline: data that is not content, such as a
        role-only chunk, does not move it)."""
        conn = self.conn
        if conn is not None:
            conn.set_content_by(_NEVER if seconds is None else conn.begun + seconds)

    async def read(self, limit: int = 0) -> bytes:
        """The whole body, then the connection goes back to the pool."""
        conn = self.conn
        assert conn is not None
        try:
            body = await conn.read(limit)
        finally:
            self.release()
        return body

    async def chunk(self) -> bytes:
        """The next piece of the body; b"" at its end, when the connection has gone back to the pool."""
        conn = self.conn
        assert conn is not None
        data = await conn.chunk()
        if not data:
            self.release()
        return data

    def release(self) -> None:
        """Done with the response: a complete keep-alive one frees its connection for reuse, else it closes."""
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.finish()

    def close(self) -> None:
        """Stop early: the connection is closed (the upstream sees it), never reused."""
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.abort()
            conn.finish()


def encode_header_value(value: str) -> bytes:
    """A header value as bytes on the wire; line breaks (header injection) are dropped."""
    b = value.encode("utf-8", "surrogateescape")
    if b.find(b"\r") >= 0 or b.find(b"\n") >= 0:  # (not `in`: bytes' `in` tries an int first, raising inside)
        b = b.replace(b"\r", b"").replace(b"\n", b"")
    return b
