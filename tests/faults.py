"""A fault-injecting OpenAI-compatible upstream on raw asyncio sockets, for the resilience tests.

Raw sockets (not aiohttp) so each fault is exactly what a broken server does on the wire: a reset
(RST, SO_LINGER 0) before the response or mid-stream, a stall before the first byte or between chunks,
an error status (500/502/503, 429 with Retry-After), a malformed event stream, a JSON body cut short
(the connection closes early, or the framing is complete but the JSON is not), a slow drip, a 404 for a
missing model, an error event before any content, a role-only chunk and then silence, a slow start (a
role-only chunk after `role_s`, the first content `content_s` later). `fault` is the mode for the next
requests; `GET /v1/models` always answers. `POST …/messages` answers in Anthropic's Messages format
(streams with the same mid-stream faults), so translated and passed-through Messages streams can be
broken too. It counts the connections it has open, so tests can check the router leaks none. `Blackhole`
is an upstream that never accepts: a connect to it hangs until the client gives up.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import orjson

FAULTS = ("ok", "reset_before", "reset_mid", "stall_before", "stall_mid", "status_500", "status_502",
          "status_503", "status_429", "malformed_sse", "truncated_json", "cut_json", "slow_drip", "missing_model",
          "error_event", "role_then_stall", "slow_start")
MID_STREAM = ("reset_mid", "stall_mid")


class FaultUpstream:
    """One upstream whose next answers misbehave as `fault` says."""

    def __init__(self, name: str = "faulty", tokens: int = 6) -> None:
        self.name = name
        self.fault = "ok"
        self.tokens = tokens
        self.drip_s = 0.15
        self.role_s = 0.0  # slow_start: the role-only chunk after this long …
        self.content_s = 0.0  # … and the first content this long after it
        self.requests: list[dict[str, Any]] = []
        self.open = 0  # connections open now
        self.disconnects = 0
        self.completed_streams = 0
        self.behavior: Any = None  # Stack.reset() assigns a simulated Behavior; unused here
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "127.0.0.1") -> str:
        self._server = await asyncio.start_server(self._conn, host, 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{host}:{port}/v1"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

    # ------------------------------------------------------------ the wire

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.open += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if method == "GET":
                    self._json(writer, 200, {"object": "list", "data": [{"id": "faulty-model", "object": "model"}]})
                    await writer.drain()
                    continue
                req = orjson.loads(body) if body else {}
                self.requests.append({"path": path, "body": req, "headers": headers})
                if not await self._answer(req, path, reader, writer):
                    return
        except (ConnectionError, asyncio.CancelledError):
            self.disconnects += 1
        except RuntimeError as e:  # uvloop: a write to a transport the router has already closed
            if "handler is closed" not in str(e):
                raise
            self.disconnects += 1
        finally:
            self.open -= 1
            self._tasks.discard(task)
            writer.close()

    def _reset(self, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    @staticmethod
    def _json(writer: asyncio.StreamWriter, status: int, obj: Any, extra: str = "") -> None:
        data = orjson.dumps(obj)
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                     f"{extra}\r\n".encode() + data)

    async def _answer(self, req: dict[str, Any], path: str, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is done for."""
        f = self.fault
        if f == "reset_before":
            self._reset(writer)
            return False
        if f == "stall_before":
            await reader.read()  # until the router gives up and closes
            self.disconnects += 1
            return False
        if f.startswith("status_"):
            code = int(f[7:])
            extra = "Retry-After: 7\r\n" if code == 429 else ""
            self._json(writer, code, {"error": {"message": f"injected {code}", "type": "server_error"}}, extra)
            await writer.drain()
            return True
        if f == "missing_model":
            self._json(writer, 404, {"error": {"message": f"model \"{req.get('model')}\" not found, try pulling it "
                                               "first", "type": "api_error"}})
            await writer.drain()
            return True
        if f == "truncated_json":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
                         b'{"id":"x","choices":[{"message":{"content":"partial')
            await writer.drain()
            return False
        if f == "cut_json":
            data = b'{"id":"x","object":"chat.completion","choices":[{"message":{"content":"cut'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(data), data))
            await writer.drain()
            return True
        if not req.get("stream"):
            usage = {"prompt_tokens": 10, "completion_tokens": self.tokens, "total_tokens": 10 + self.tokens}
            self._json(writer, 200, {"id": "chatcmpl-f", "object": "chat.completion", "model": req.get("model"),
                                     "choices": [{"index": 0, "message": {"role": "assistant",
                                                                          "content": "fault-free answer"},
                                                  "finish_reason": "stop"}], "usage": usage})
            await writer.drain()
            return True
        messages = path.endswith("/messages")
        if messages and not req.get("stream"):
            self._json(writer, 200, {"id": "msg_f", "type": "message", "role": "assistant", "model": req.get("model"),
                                     "content": [{"type": "text", "text": "fault-free answer"}],
                                     "stop_reason": "end_turn",
                                     "usage": {"input_tokens": 10, "output_tokens": self.tokens}})
            await writer.drain()
            return True
        if f == "slow_start":
            await asyncio.sleep(self.role_s)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        if messages:
            return await self._messages_stream(f, req, reader, writer)
        if f == "malformed_sse":
            self._chunk(writer, b"<html><body>502 Bad Gateway</body></html>")
            self._chunk(writer, b"")
            await writer.drain()
            return True
        if f == "error_event":
            self._chunk(writer, b'data: {"error":{"message":"injected in-band error","type":"server_error"}}\n\n')
            self._chunk(writer, b"")
            await writer.drain()
            return True
        self._chunk(writer, self._event({"role": "assistant", "content": ""}))
        await writer.drain()
        if f == "role_then_stall":
            await reader.read()
            self.disconnects += 1
            return False
        if f == "slow_start":
            await asyncio.sleep(self.content_s)
        for i in range(self.tokens):
            if f in MID_STREAM and i == 3:
                await self._break_mid(f, reader, writer)
                return False
            if f == "slow_drip" and i:
                await asyncio.sleep(self.drip_s)
            self._chunk(writer, self._event({"content": f" tok{i}"}))
            await writer.drain()
        self._chunk(writer, self._event({}, finish="stop"))
        if (req.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 10, "completion_tokens": self.tokens, "total_tokens": 10 + self.tokens}
            self._chunk(writer, b"data: " + orjson.dumps({"id": "chatcmpl-f", "object": "chat.completion.chunk",
                                                         "choices": [], "usage": usage}) + b"\n\n")
        self._chunk(writer, b"data: [DONE]\n\n")
        self._chunk(writer, b"")
        await writer.drain()
        self.completed_streams += 1
        return True

    async def _break_mid(self, f: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """reset_mid: a reset after some content; stall_mid: silence until the router gives up."""
        if f == "reset_mid":
            self._reset(writer)
        else:
            await reader.read()
            self.disconnects += 1

    async def _messages_stream(self, f: str, req: dict[str, Any], reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> bool:
        """An Anthropic Messages stream: input counts in message_start, the output count in message_delta."""
        start = {"type": "message_start", "message": {
            "id": "msg_f", "type": "message", "role": "assistant", "model": req.get("model"), "content": [],
            "stop_reason": None, "usage": {"input_tokens": 10, "output_tokens": 1}}}
        self._chunk(writer, _ant("message_start", start) + _ant("content_block_start", {
            "type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))
        await writer.drain()
        for i in range(self.tokens):
            if f in MID_STREAM and i == 3:
                await self._break_mid(f, reader, writer)
                return False
            self._chunk(writer, _ant("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                             "delta": {"type": "text_delta", "text": f" tok{i}"}}))
            await writer.drain()
        self._chunk(writer, _ant("content_block_stop", {"type": "content_block_stop", "index": 0})
                    + _ant("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                             "usage": {"output_tokens": self.tokens}})
                    + _ant("message_stop", {"type": "message_stop"}))
        self._chunk(writer, b"")
        await writer.drain()
        self.completed_streams += 1
        return True

    @staticmethod
    def _event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return b"data: " + orjson.dumps({"id": "chatcmpl-f", "object": "chat.completion.chunk", "model": "faulty-model",
                                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"

    @staticmethod
    def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))


def _ant(name: str, data: dict[str, Any]) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps(data))


class Blackhole:
    """A listening socket whose accept queue is full: further connects hang (SYNs are dropped)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.filler = socket.create_connection(("127.0.0.1", self.port))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self.filler.close()
        self.sock.close()
