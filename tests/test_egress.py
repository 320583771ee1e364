"""Egress through a corporate proxy: a real (tiny, asyncio) CONNECT proxy, a TLS upstream behind it whose
name only the proxy can resolve, a private CA (`ca_file`), HTTPS_PROXY/HTTP_PROXY/NO_PROXY and a backend's
own `proxy:`; plus the NO_PROXY matching rules as pure logic."""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme

from backends.egress import Proxy, bypassed, parse_proxy, proxy_for
from backends.openai import OpenAIBackend
from backends.simulated import SimulatedUpstream
from router.config import BackendSpec, ConfigError, ModelSpec, Timeouts, parse
from router.errors import UpstreamError
from router.exchange import Candidate, Exchange

ORIGIN = "origin.test"  # resolvable only by the proxy (it maps every name to 127.0.0.1)


class ConnectProxy:
    """A forward proxy: CONNECT tunnels and absolute-form plain HTTP, recording each request line."""

    def __init__(self, refuse: bool = False) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.refuse = refuse
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> Proxy:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return Proxy("127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
            self.seen.append((lines[0], headers))
            if self.refuse:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            if method == "CONNECT":
                port = int(target.rsplit(":", 1)[1])
                up_r, up_w = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:  # absolute-form: forward with an origin-form target
                rest = target.split("://", 1)[1]
                hostport, _, path = rest.partition("/")
                up_r, up_w = await asyncio.open_connection("127.0.0.1", int(hostport.rsplit(":", 1)[1]))
                up_w.write(head.replace(target.encode(), b"/" + path.encode(), 1))
            await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except ConnectionError:
        pass
    finally:
        w.close()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "private-ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, path


def _exchange(stream: bool = False) -> Exchange:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return Exchange("rid", "chat", body, orjson.dumps(body), {})


async def _call(base_url: str, proxy: str | None = None, ca_file: str | None = None,
                stream: bool = False) -> tuple[Any, Exchange]:
    spec = BackendSpec(name="b", kind="openai", base_url=base_url, proxy=proxy, ca_file=ca_file,
                       timeouts=Timeouts(connect_s=3, first_byte_s=5, idle_s=5, total_s=10),
                       models=[ModelSpec(id="m", backend="b")])
    b = OpenAIBackend(spec)
    await b.start()
    ex = _exchange(stream)
    try:
        reply = await b.send(ex, Candidate(spec.models[0], b, None))
        if reply.stream is not None:
            reply.body = b"".join([c async for c in reply.stream])
        return reply, ex
    finally:
        await b.aclose()


async def _tls_origin(ca: trustme.CA) -> SimulatedUpstream:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(ORIGIN).configure_cert(ctx)
    up = SimulatedUpstream("tls-origin", ["m"])
    await up.start(ssl_context=ctx)
    return up


def test_https_through_connect_tunnel_with_private_ca(run: Any, ca: tuple[trustme.CA, Path],
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        origin = await _tls_origin(ca[0])
        proxy = ConnectProxy()
        await proxy.start()
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        try:
            url = f"https://{ORIGIN}:{origin.port}/v1"
            reply, _ = await _call(url, ca_file=str(ca[1]))
            assert reply.status == 200
            assert orjson.loads(reply.body)["choices"][0]["message"]["content"].startswith("[m on tls-origin]")
            assert proxy.seen[0][0] == f"CONNECT {ORIGIN}:{origin.port} HTTP/1.1"
            assert origin.requests[-1]["path"] == "/v1/chat/completions"
            # streaming through the tunnel too, chunk by chunk
            reply, _ = await _call(url, ca_file=str(ca[1]), stream=True)
            assert reply.body.endswith(b"data: [DONE]\n\n")
            # without the private CA the origin's certificate is refused: an upstream error, the detail logged
            with caplog.at_level(logging.WARNING, logger="ai_router.backend"), pytest.raises(UpstreamError) as e:
                await _call(url)
            assert "unreachable" in e.value.message
            assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
            # NO_PROXY exempts the origin: a direct connect, which cannot even resolve the name
            monkeypatch.setenv("NO_PROXY", f"localhost,.{ORIGIN.split('.')[1]}")
            n = len(proxy.seen)
            with pytest.raises(UpstreamError):
                await _call(url, ca_file=str(ca[1]))
            assert len(proxy.seen) == n
        finally:
            await proxy.stop()
            await origin.stop()

    run(scenario())


def test_backend_proxy_setting_wins_and_sends_credentials(run: Any, ca: tuple[trustme.CA, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        origin = await _tls_origin(ca[0])
        proxy = ConnectProxy()
        await proxy.start()
        monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")  # would fail: the backend's own setting wins
        try:
            reply, _ = await _call(f"https://{ORIGIN}:{origin.port}/v1", ca_file=str(ca[1]),
                                   proxy=f"http://alice:s%40cret@127.0.0.1:{proxy.port}")
            assert reply.status == 200
            auth = proxy.seen[0][1]["proxy-authorization"]
            assert auth == "Basic " + base64.b64encode(b"alice:s@cret").decode()
            # plain http upstreams go through the proxy with absolute-form targets
            plain = SimulatedUpstream("plain", ["m"])
            url = await plain.start()
            try:
                reply, _ = await _call(url, proxy=f"http://127.0.0.1:{proxy.port}")
                assert reply.status == 200
                assert proxy.seen[-1][0] == f"POST http://127.0.0.1:{plain.port}/v1/chat/completions HTTP/1.1"
                assert plain.requests[-1]["path"] == "/v1/chat/completions"
            finally:
                await plain.stop()
        finally:
            await proxy.stop()
            await origin.stop()

    run(scenario())


def test_proxy_refusal_is_an_upstream_error_without_credentials(run: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        proxy = ConnectProxy(refuse=True)
        await proxy.start()
        try:
            with caplog.at_level(logging.WARNING, logger="ai_router.backend"), pytest.raises(UpstreamError) as e:
                await _call(f"https://{ORIGIN}:443/v1", proxy=f"http://bob:hunter2@127.0.0.1:{proxy.port}")
            assert "unreachable" in e.value.message
            assert "407" in caplog.text
            assert "hunter2" not in caplog.text
            assert "Ym9iOmh1bnRlcjI" not in caplog.text  # nor its base64
        finally:
            await proxy.stop()

    run(scenario())


def test_proxy_selection_from_the_environment() -> None:
    env = {"HTTPS_PROXY": "http://p:3128", "http_proxy": "http://q:8080", "NO_PROXY": "internal.corp,10.0.0.0/8"}
    assert proxy_for("https://api.openai.com/v1", None, env) == Proxy("p", 3128)
    assert proxy_for("http://gpu-box:11434/v1", None, env) == Proxy("q", 8080)
    assert proxy_for("https://llm.internal.corp/v1", None, env) is None
    assert proxy_for("http://10.1.2.3:8000/v1", None, env) is None
    assert proxy_for("http://localhost:11434/v1", None, env) is None  # loopback: never proxied (as Go does)
    assert proxy_for("http://127.0.0.1:11434/v1", None, env) is None
    assert proxy_for("https://api.openai.com/v1", "direct", env) is None
    assert proxy_for("http://localhost:1/v1", "http://x:1", env) == Proxy("x", 1)  # explicit: always
    assert proxy_for("https://api.openai.com/v1", None, {"ALL_PROXY": "http://a:1"}) == Proxy("a", 1)
    assert proxy_for("https://api.openai.com/v1", None, {}) is None
    assert parse_proxy("proxy.corp") == Proxy("proxy.corp", 3128)


@pytest.mark.parametrize(("host", "port", "no_proxy", "expected"), [
    ("api.openai.com", 443, "*", True),
    ("api.openai.com", 443, "openai.com", True),
    ("api.openai.com", 443, ".openai.com", True),
    ("api.openai.com", 443, "*.openai.com", True),
    ("notopenai.com", 443, "openai.com", False),
    ("api.openai.com", 443, "api.openai.com:8443", False),
    ("api.openai.com", 8443, "api.openai.com:8443", True),
    ("192.168.1.5", 80, "192.168.0.0/16", True),
    ("192.168.1.5", 80, "192.168.1.6", False),
    ("::1", 80, "::1", True),
    ("a.b", 80, " , a.b ,", True),
])
def test_no_proxy_rules(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert bypassed(host, port, no_proxy) is expected


def test_config_checks_proxy_and_ca_file(tmp_path: Path) -> None:
    def cfg(**b: Any) -> dict[str, Any]:
        return {"backends": [{"name": "x", "base_url": "https://h/v1", "models": [{"id": "m", "tier": "t"}], **b}]}

    with pytest.raises(ConfigError, match=r"backends\[0\]\.proxy: expected"):
        parse(cfg(proxy="socks5://p:1080"))
    with pytest.raises(ConfigError, match=r"backends\[0\]\.ca_file: .* is not a readable file"):
        parse(cfg(ca_file=str(tmp_path / "missing.pem")))
    pem = tmp_path / "ca.pem"
    pem.write_text("x")
    spec = parse(cfg(proxy="http://p:3128", ca_file=str(pem))).backends[0]
    assert (spec.proxy, spec.ca_file) == ("http://p:3128", str(pem))
    assert parse(cfg(proxy="direct")).backends[0].proxy == "direct"
