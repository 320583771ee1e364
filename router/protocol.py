"""The server's connection protocol: aiohttp's request handler with the client-side limits it lacks.

Every client connection is one `GuardedHandler` (aiohttp's `RequestHandler`, so parsing and keep-alive
stay aiohttp's). It adds, at no per-request or per-chunk cost (one timer per connection state change):

- a request-head timeout (`server.request_head_timeout_s`): a new connection, or a kept-alive one whose
  next request has begun to arrive, must deliver its whole request head in time, else it gets a 408 and
  is closed (slowloris, idle sockets held open);
- the keep-alive timeout (`server.keepalive_s`) passed to aiohttp (its default is an hour);
- a write timeout (`server.write_timeout_s`): when the socket's send buffer stays full (a client that
  does not read) for that long, the connection is aborted, which ends the stream and its upstream call;
- aiohttp's own low-level errors (a malformed request line or header, a header too long) answered
  OpenAI-shaped, and logged as one line naming the error class, never the raw header (it may hold a key)
  nor a traceback.

Importing it installs the compiled head serializer (router/_wire.c, when built) as aiohttp's: the same bytes and
errors for every head, a few thousand instructions instead of ~30k for a routed answer's ~20 headers.

`GuardedRunner` is an `AppRunner` whose server builds these handlers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from router.errors import InternalError, InvalidRequest, ProxyError

log = logging.getLogger("ai_router.http")


def install_head_serializer() -> bool:
    """Make aiohttp serialize answers' heads with `router._wire` (plain ASCII heads; anything else still goes
    to aiohttp's serializer, which `_wire` calls). False when the extension is not built or this aiohttp
    does not serialize through `http_writer._serialize_headers`."""
    try:
        from router import _wire  # type: ignore[attr-defined]
    except ImportError:
        return False
    from aiohttp import http_writer
    from multidict import istr

    current = getattr(http_writer, "_serialize_headers", None)
    if current is _wire.serialize_headers:
        return True
    if current is None or "_serialize_headers" not in http_writer.StreamWriter.write_headers.__code__.co_names:
        return False
    if istr.__str__ is not str.__str__:  # `_wire` copies an istr's own text, which is what str() must give
        return False
    _wire.setup(current, istr)
    http_writer._serialize_headers = _wire.serialize_headers
    return True


install_head_serializer()
REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")  # a client's x-request-id is kept only if it is this


def client_request_id(headers: Any) -> str | None:
    """The client's `x-request-id` if it is 1-128 visible ASCII characters, else None."""
    rid = headers.get("x-request-id")
    return rid if rid is not None and REQUEST_ID.fullmatch(rid) else None


def _low_level_error(status: int) -> ProxyError:
    if status >= 500:
        return InternalError("The router failed to handle this request.")
    e = InvalidRequest(f"The request is not valid HTTP/1.1 ({status} {HTTPStatus(status).phrase}).",
                       code="invalid_http_request")
    e.status = status
    return e


def _raw_response(status: int, e: ProxyError) -> bytes:
    body = e.body()
    return b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
        status, HTTPStatus(status).phrase.encode(), len(body), body)


class GuardedHandler(RequestHandler):
    """One client connection: aiohttp's handler plus the head and write timeouts."""

    __slots__ = ("_head_timeout", "_head_timer", "_write_timeout", "_write_timer")

    def __init__(self, manager: Any, *, head_timeout: float, write_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._write_timeout = write_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ request-head timeout

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._head_timer = self._loop.call_later(self._head_timeout, self._on_head_timeout, self._request_count)

    def data_received(self, data: bytes) -> None:
        count = self._request_count
        idle = self._waiter is not None  # the handler waits for the next request: these bytes begin its head
        super().data_received(data)
        timer = self._head_timer
        if self._request_count != count:  # a whole head arrived
            if timer is not None:
                timer.cancel()
                self._head_timer = None
        elif timer is None and idle and not self._force_close:
            self._arm_head_timer()

    def _on_head_timeout(self, count: int) -> None:
        self._head_timer = None
        if self._request_count != count or self._waiter is None or self.transport is None:
            return  # a request came in time (or is being handled)
        log.info("closing a connection whose request head did not arrive within %gs", self._head_timeout)
        e = InvalidRequest(f"The request head did not arrive within {self._head_timeout:g}s.",
                           code="request_timeout")
        self.transport.write(_raw_response(408, e))
        self.force_close()

    # ------------------------------------------------------------ write (drain) timeout

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self._loop.call_later(self._write_timeout, self._on_write_timeout)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _on_write_timeout(self) -> None:
        self._write_timer = None
        if self.transport is not None and self.writing_paused:
            log.info("aborting a connection whose client read nothing for %gs", self._write_timeout)
            self.transport.abort()

    def connection_lost(self, exc: BaseException | None) -> None:
        for timer in (self._head_timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._write_timer = None
        super().connection_lost(exc)

    # ------------------------------------------------------------ aiohttp's own errors

    def handle_error(
        self, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """aiohttp's low-level errors, OpenAI-shaped; the log names the error class, never its raw text."""
        if status >= 500:
            log.error("request failed inside aiohttp: %s", type(exc).__name__ if exc else status)
        else:
            log.info("refused a malformed request (%d, %s)", status, type(exc).__name__ if exc else "-")
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        e = _low_level_error(status)
        rid = client_request_id(request.headers) or os.urandom(8).hex()
        resp = web.Response(status=status, body=e.body(), content_type="application/json",
                            headers={"x-request-id": rid})
        resp.force_close()
        return resp


class GuardedServer(web.Server):
    """aiohttp's connection factory, building `GuardedHandler`s."""

    head_timeout = 10.0
    write_timeout = 30.0

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, loop=self._loop, head_timeout=self.head_timeout,
                              write_timeout=self.write_timeout, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An AppRunner whose connections have the head and write timeouts."""

    def __init__(self, app: web.Application, *, head_timeout: float, write_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._head_timeout = head_timeout
        self._write_timeout = write_timeout

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = GuardedServer  # same object, same state: only its factory method differs
        server.head_timeout = self._head_timeout  # type: ignore[attr-defined]
        server.write_timeout = self._write_timeout  # type: ignore[attr-defined]
        return server
