"""backends/http1.py against small raw asyncio servers on 127.0.0.1, on both asyncio and uvloop.

Each test runs a scenario coroutine on a fresh loop (`run`, parametrized over the two loops); the servers
are plain `asyncio.start_server` handlers so a test controls every byte, pause and close.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from backends import http1
from backends.openai import AzureBackend, OpenAIBackend
from router.config import BackendSpec, ModelSpec, Timeouts
from router.errors import UpstreamError, UpstreamTimeout
from router.exchange import Candidate, Exchange
from tests.conftest import unused_port

Handler = Callable[["Server", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK_JSON = b'{"ok":true}'


class Server:
    """A raw HTTP/1.1 test server: counts connections and keeps what each request sent."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.host = host
        self.tls = tls
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.server: asyncio.Server | None = None
        self.closed = asyncio.Event()  # set when a handler has ended (the client went away, or it returned)

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, self.host, 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closed.set()
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        return head, body


def reply(body: bytes = OK_JSON, status: int = 200, ctype: bytes = b"application/json", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status, ctype, len(body), extra, body)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def make_client(url: str, **kw: Any) -> http1.Client:
    opts: dict[str, Any] = {"headers": {"Authorization": "Bearer k", "X-Extra": "1"}, "size": 4,
                            "connect_s": 1.0, "total_s": 10.0}
    opts.update(kw)
    return http1.Client(url, **opts)


async def post(client: http1.Client, body: bytes = b'{"a":1}', read_s: float = 5.0, stream: bool = False,
               rid: bytes = b"rid-1") -> http1.Response:
    return await client.post(client.head("/chat/completions"), body, rid, read_s, stream)


def serve_forever(answer: bytes) -> Handler:
    """Answer every request on the connection with the same bytes (keep-alive)."""

    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await srv.read_request(reader) is not None:
            writer.write(answer)
            await writer.drain()

    return handler


def server(handler: Handler, host: str = "127.0.0.1") -> Server:
    return Server(handler, host)


# ------------------------------------------------------------ bodies


def test_content_length_body_and_request_head(run: Any) -> None:
    async def scenario() -> None:
        async with server(serve_forever(reply(extra=b"Retry-After: 3\r\n"))) as srv:
            client = make_client(srv.url)
            resp = await post(client, b'{"x":"y"}', rid=b"abc-123")
            assert resp.status == 200
            assert resp.content_type == b"application/json"
            assert resp.retry_after == b"3"
            assert await resp.read() == OK_JSON
            head, body = srv.requests[0]
            assert body == b'{"x":"y"}'
            lines = head.split(b"\r\n")
            assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
            assert f"Host: {srv.url.split('/')[2]}".encode() in lines
            for h in (b"Authorization: Bearer k", b"X-Extra: 1", b"Content-Length: 9", b"X-Request-Id: abc-123"):
                assert h in lines
            await client.aclose()

    run(scenario())


def test_chunked_json_body(run: Any) -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b'{"a":', b'"b"', b"}"):
            writer.write(chunk(part))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await reader.read()

    srv = server(handler)

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url)
            resp = await post(client)
            assert await resp.read() == b'{"a":"b"}'
            await client.aclose()

    run(scenario())


def test_interim_1xx_response_is_skipped(run: Any) -> None:
    async def scenario() -> None:
        async with server(serve_forever(b"HTTP/1.1 100 Continue\r\n\r\n" + reply(b'{"n":1}'))) as srv:
            client = make_client(srv.url)
            for _ in range(2):
                resp = await post(client)
                assert resp.status == 200
                assert await resp.read() == b'{"n":1}'
            assert srv.connections == 1
            await client.aclose()

    run(scenario())


def test_body_until_close(run: Any) -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + OK_JSON)
        await writer.drain()

    srv = server(handler)

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url)
            resp = await post(client)
            assert await resp.read() == OK_JSON
            assert client.pool.idle == []  # delimited by close: nothing to reuse
            await client.aclose()

    run(scenario())


def test_sse_chunks_arrive_before_the_server_finishes(run: Any) -> None:
    got_first = asyncio.Event()

    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(SSE_HEAD + chunk(b"data: 1\n\n"))
        await writer.drain()
        await got_first.wait()  # the client must have the first event while the stream is still open
        writer.write(chunk(b"data: 2\n\n"))
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()
        while await srv.read_request(reader) is not None:
            writer.write(reply())

    srv = server(handler)

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url)
            resp = await post(client, stream=True)
            assert resp.is_event_stream
            assert await resp.chunk() == b"data: 1\n\n"
            got_first.set()
            rest = [await resp.chunk(), await resp.chunk()]
            assert rest == [b"data: 2\n\n", b"data: [DONE]\n\n"]
            assert await resp.chunk() == b""
            assert len(client.pool.idle) == 1  # complete: back in the pool
            assert await (await post(client)).read() == OK_JSON
            assert srv.connections == 1
            await client.aclose()

    run(scenario())


def test_large_bodies_intact(run: Any) -> None:
    big = bytes(range(256)) * (5 * 1024 * 1024 // 256)

    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(reply(big, ctype=b"application/octet-stream"))
        await srv.read_request(reader)
        writer.write(SSE_HEAD)
        for i in range(0, len(big), 100_000):
            writer.write(chunk(big[i:i + 100_000]))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()

    srv = server(handler)

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url)
            resp = await post(client, body=big)  # a 5 MB request body goes out whole, too
            assert await resp.read() == big
            assert srv.requests[0][1] == big
            resp = await post(client, stream=True)
            parts = []
            while data := await resp.chunk():
                parts.append(data)
                await asyncio.sleep(0.002)  # a slow consumer: reading pauses past the high-water mark
            assert b"".join(parts) == big
            assert srv.connections == 1
            await client.aclose()

    run(scenario())


# ------------------------------------------------------------ keep-alive and the pool


def test_keep_alive_reuses_one_connection(run: Any) -> None:
    async def scenario() -> None:
        async with server(serve_forever(reply())) as srv:
            client = make_client(srv.url)
            for _ in range(5):
                assert await (await post(client)).read() == OK_JSON
            assert srv.connections == 1
            assert len(srv.requests) == 5
            await client.aclose()

    run(scenario())


def test_idle_connection_closed_by_server_is_retried_on_a_fresh_one(run: Any) -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = srv.connections == 1
        await srv.read_request(reader)
        writer.write(reply())
        await writer.drain()
        if first:  # the next request on this connection finds it closed, as after a server's idle timeout
            await srv.read_request(reader)
            return
        while await srv.read_request(reader) is not None:
            writer.write(reply())

    srv = server(handler)

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url)
            assert await (await post(client)).read() == OK_JSON
            resp = await post(client, rid=b"second")
            assert await resp.read() == OK_JSON
            assert srv.connections == 2
            assert [h.split(b"X-Request-Id: ")[1].split(b"\r\n")[0] for h, _ in srv.requests] == [
                b"rid-1", b"second", b"second"]
            await client.aclose()

    run(scenario())


def test_disconnect_on_a_new_connection_is_not_retried(run: Any) -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)

    srv = server(handler)

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url)
            with pytest.raises(http1.ServerDisconnected):
                await post(client)
            assert len(srv.requests) == 1
            assert client.pool.open == 0
            await client.aclose()

    run(scenario())


@pytest.mark.parametrize("answer", [
    reply(extra=b"Connection: close\r\n"),
    b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n" + OK_JSON,
], ids=["connection-close", "http-1.0"])
def test_connection_close_is_honoured(run: Any, answer: bytes) -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(answer)  # and keep the socket open: the client must not reuse it anyway
        await reader.read()

    srv = server(handler)

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url)
            for _ in range(2):
                assert await (await post(client)).read() == OK_JSON
            assert srv.connections == 2
            await client.aclose()

    run(scenario())


def test_pool_limit_makes_the_third_request_wait(run: Any) -> None:
    go = asyncio.Event()

    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await srv.read_request(reader) is not None:
            await go.wait()
            writer.write(reply())

    srv = server(handler)

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url, size=2)

            async def one() -> bytes:
                return await (await post(client)).read()

            tasks = [asyncio.create_task(one()) for _ in range(3)]
            await asyncio.sleep(0.2)
            assert len(srv.requests) == 2  # the third waits for a free connection
            assert srv.connections == 2
            go.set()
            assert await asyncio.gather(*tasks) == [OK_JSON] * 3
            assert srv.connections == 2  # the third reused a released one
            assert len(srv.requests) == 3
            await client.aclose()

    run(scenario())


def test_waiting_for_a_full_pool_counts_as_connecting(run: Any) -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        await asyncio.sleep(5)

    srv = server(handler)

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url, size=1, connect_s=0.2)
            busy = asyncio.create_task(post(client))
            await asyncio.sleep(0.05)
            with pytest.raises(http1.ConnectTimeout):
                await post(client)
            busy.cancel()
            await client.aclose()

    run(scenario())


def test_idle_connections_expire(run: Any) -> None:
    async def scenario() -> None:
        async with server(serve_forever(reply())) as srv:
            client = make_client(srv.url, keepalive_s=0.1)
            assert await (await post(client)).read() == OK_JSON
            await asyncio.sleep(0.35)
            assert client.pool.idle == []
            assert client.pool.open == 0
            assert await (await post(client)).read() == OK_JSON
            assert srv.connections == 2
            await client.aclose()

    run(scenario())


def test_https_with_sni_and_address_fallback(run: Any, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,misc,func-returns-value]

    async def scenario() -> None:
        async with Server(serve_forever(reply()), tls=server_ctx) as srv:
            port = srv.url.split(":")[2].split("/")[0]
            client = make_client(f"https://localhost:{port}/v1")  # localhost may resolve to ::1 first: refused
            client.ssl = ssl.create_default_context(cafile=str(cert))
            for _ in range(2):
                assert await (await post(client)).read() == OK_JSON
            assert srv.connections == 1
            assert names == ["localhost"]
            assert srv.requests[0][0].split(b"\r\n")[1] == f"Host: localhost:{port}".encode()
            await client.aclose()

    run(scenario())


def test_ipv6(run: Any) -> None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")

    async def scenario() -> None:
        async with server(serve_forever(reply()), host="::1") as srv:
            client = make_client(srv.url)
            assert await (await post(client)).read() == OK_JSON
            assert srv.requests[0][0].split(b"\r\n")[1].startswith(b"Host: [::1]:")
            await client.aclose()

    run(scenario())


# ------------------------------------------------------------ failures and timeouts


def test_connection_refused(run: Any) -> None:
    port = unused_port()

    async def scenario() -> None:
        client = make_client(f"http://127.0.0.1:{port}/v1")
        with pytest.raises(http1.ConnectError, match=f"cannot connect to 127.0.0.1:{port}"):
            await post(client)
        assert client.pool.open == 0
        await client.aclose()

    run(scenario())


def test_malformed_response(run: Any) -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(b"HTTP/1.1 abc nonsense\r\n\r\n")
        await reader.read()

    srv = server(handler)

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url)
            with pytest.raises(http1.ProtocolError):
                await post(client)
            assert client.pool.open == 0
            await client.aclose()

    run(scenario())


def test_first_byte_timeout(run: Any) -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        await reader.read()

    srv = server(handler)

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url)
            t0 = asyncio.get_running_loop().time()
            with pytest.raises(http1.ReadTimeout):
                await post(client, read_s=0.2)
            assert 0.15 < asyncio.get_running_loop().time() - t0 < 1.0
            await asyncio.wait_for(srv.closed.wait(), 2)  # the connection was closed, not kept
            assert client.pool.open == 0
            await client.aclose()

    run(scenario())


def test_idle_timeout_between_chunks(run: Any) -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(SSE_HEAD + chunk(b"data: 1\n\n"))
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(chunk(b"data: 2\n\n"))  # within the gap
        await writer.drain()
        await reader.read()  # then stall

    srv = server(handler)

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url)
            resp = await post(client, stream=True, read_s=5)
            assert await resp.chunk() == b"data: 1\n\n"
            resp.read_gap(0.25)
            assert await resp.chunk() == b"data: 2\n\n"
            t0 = asyncio.get_running_loop().time()
            with pytest.raises(http1.ReadTimeout):
                await resp.chunk()
            assert 0.15 < asyncio.get_running_loop().time() - t0 < 1.0
            resp.close()
            await client.aclose()

    run(scenario())


def test_total_timeout(run: Any) -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(SSE_HEAD)
        while True:  # never idle for long, never done
            writer.write(chunk(b"data: x\n\n"))
            await writer.drain()
            await asyncio.sleep(0.03)

    srv = server(handler)

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url, total_s=0.4)
            resp = await post(client, stream=True, read_s=0.2)
            t0 = asyncio.get_running_loop().time()
            with pytest.raises(http1.TotalTimeout):  # noqa: PT012
                while await resp.chunk():
                    pass
            assert asyncio.get_running_loop().time() - t0 < 1.0
            await client.aclose()

    run(scenario())


def test_close_mid_stream_reaches_the_server(run: Any) -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(SSE_HEAD)
        for _ in range(200):
            writer.write(chunk(b"data: x\n\n"))
            await writer.drain()
            await asyncio.sleep(0.01)
        srv.requests.append((b"completed", b""))

    srv = server(handler)

    async def scenario() -> None:
        async with srv:
            client = make_client(srv.url)
            resp = await post(client, stream=True)
            assert await resp.chunk()
            resp.close()
            await asyncio.wait_for(srv.closed.wait(), 3)
            assert (b"completed", b"") not in srv.requests
            assert client.pool.open == 0
            assert client.pool.idle == []
            await client.aclose()

    run(scenario())


# ------------------------------------------------------------ through the adapter


def _backend(url: str, **timeouts: float) -> OpenAIBackend:
    t = {"connect_s": 1, "first_byte_s": 2, "idle_s": 2, "total_s": 10, **timeouts}
    return OpenAIBackend(BackendSpec(name="up", kind="openai", base_url=url, timeouts=Timeouts(**t),
                                     models=[ModelSpec(id="m", backend="up")]))


def _exchange(stream: bool = False) -> Exchange:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return Exchange("rid", "chat", body, orjson.dumps(body), {})


def test_adapter_maps_malformed_and_refused_to_upstream_error(run: Any) -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n")
        await reader.read()

    srv = server(handler)
    dead = f"http://127.0.0.1:{unused_port()}/v1"

    async def scenario() -> None:
        async with srv:
            for url, words in ((srv.url, "invalid HTTP response"), (dead, "'up' is unreachable$")):
                b = _backend(url)
                await b.start()
                with pytest.raises(UpstreamError, match=words):
                    await b.send(_exchange(), Candidate(b.spec.models[0], b, None))
                await b.aclose()

    run(scenario())


def test_adapter_slow_first_token_when_promoting(run: Any) -> None:
    async def handler(srv: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await srv.read_request(reader)
        writer.write(SSE_HEAD)  # headers at once, then no event
        await reader.read()

    srv = server(handler)

    async def scenario() -> None:
        async with srv:
            b = _backend(srv.url)
            await b.start()
            cand = Candidate(b.spec.models[0], b, None)
            with pytest.raises(UpstreamTimeout) as e:
                await b.send(_exchange(stream=True), cand, first_token_s=0.2)
            assert e.value.reason == "slow_first_token"
            assert "first token within 0.2s" in e.value.message
            await b.aclose()

    run(scenario())


def test_azure_target_and_key(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZ_TEST_KEY", "az-secret")

    async def scenario() -> None:
        async with server(serve_forever(reply(b'{"id":"x","usage":{"prompt_tokens":1}}'))) as srv:
            spec = BackendSpec(name="az", kind="azure", base_url=srv.url.removesuffix("/v1") + "/openai",
                               api_key_env="AZ_TEST_KEY", api_version="2024-10-21",
                               models=[ModelSpec(id="my deploy", backend="az")])
            b = AzureBackend(spec)
            await b.start()
            ex = _exchange()
            ex.body["model"] = "my deploy"
            ex.raw = None
            reply_ = await b.send(ex, Candidate(spec.models[0], b, None))
            assert reply_.status == 200
            assert ex.usage == {"prompt_tokens": 1}
            lines = srv.requests[0][0].split(b"\r\n")
            assert lines[0] == b"POST /openai/deployments/my%20deploy/chat/completions?api-version=2024-10-21 HTTP/1.1"
            assert b"api-key: az-secret" in lines
            assert not any(line.lower().startswith(b"authorization") for line in lines)
            await b.aclose()

    run(scenario())
