"""Hardening, client side (issue 10): what a hostile client sends never gets a 500, a leak or a held socket.

Each test reproduces one finding of the issue against a live router on real sockets: deep JSON, non-UTF-8
header bytes, unbounded echoes, internal failures without an access-log line, aiohttp's own plain-text 400s,
slowloris heads, idle keep-alive sockets and readers that never read.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from router.auth import KeyRing
from router.errors import AuthenticationFailed
from router.observe.accesslog import AccessLog
from tests.conftest import Stack, make_config

MSG = [{"role": "user", "content": "hello there"}]
HEAD_S = 0.6
KEEPALIVE_S = 2.0
WRITE_S = 0.5


def _config(local: str, cloud: str) -> dict[str, Any]:
    cfg = make_config(local, cloud)
    cfg["server"] = {"max_body_mb": 1, "request_head_timeout_s": HEAD_S, "keepalive_s": KEEPALIVE_S,
                     "write_timeout_s": WRITE_S}
    cfg["pipeline"] = ["auth", "tests.stages_for_tests:Boom", "classify", "route", "retry"]
    return cfg


class Logged:
    """The router's access log, redirected to a temporary file."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.fd, self.path = tempfile.mkstemp(prefix="access-")
        assert stack.service is not None
        stack.service.observer.access = AccessLog(enabled=True, fd=self.fd)

    def lines(self) -> list[dict[str, Any]]:
        async def flush() -> None:
            assert self.stack.service is not None
            self.stack.service.observer.access.flush()

        self.stack.run(flush())
        with open(self.path, "rb") as f:
            data = f.read()
        os.close(self.fd)
        os.unlink(self.path)
        return [orjson.loads(line) for line in data.splitlines()]


@pytest.fixture(scope="module")
def hard() -> Iterator[Stack]:
    s = Stack(_config).start()
    yield s
    s.stop()


@pytest.fixture
def hlive(hard: Stack) -> Iterator[Stack]:
    hard.reset()
    yield hard
    hard.reset()


def post(st: Stack, body: Any, path: str = "/v1/chat/completions", headers: dict[str, Any] | None = None
         ) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    with httpx.Client(timeout=30) as c:
        return c.post(st.url + path, content=content, headers={"content-type": "application/json", **(headers or {})})


def assert_openai_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    if code is not None:
        assert err["code"] == code
    assert "Traceback" not in r.text
    return err


def _addr(st: Stack) -> tuple[str, int]:
    host, port = st.url.removeprefix("http://").split(":")
    return host, int(port)


def raw_exchange(st: Stack, data: bytes, wait_s: float = 5.0) -> bytes:
    """Send raw bytes, read until the router closes the connection (or `wait_s` passes)."""
    with socket.create_connection(_addr(st), timeout=wait_s) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and _complete(out):
                    break
        except TimeoutError:
            pass
    return out


def _complete(resp: bytes) -> bool:
    head, _, body = resp.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def _status_and_json(resp: bytes) -> tuple[int, dict[str, Any], bytes]:
    head, _, body = resp.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), orjson.loads(body), head


# ---------------------------------------------------------------- no 500 from client input


DEEP = "@@DEEP@@"


@pytest.mark.parametrize("levels", [300, 1000])
def test_deep_json_is_a_400_on_every_endpoint(hlive: Stack, levels: int) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": DEEP}}
    cases = [
        ("/v1/chat/completions", {"model": "auto", "messages": MSG, "tools": [tool]}),
        ("/v1/chat/completions", {"model": "auto", "messages": [{"role": "user", "content": [DEEP]}]}),
        ("/v1/route", {"model": "auto", "messages": MSG, "tools": [tool]}),
        ("/v1/completions", {"model": "qwen3:8b", "prompt": "hi", "metadata": DEEP}),
        ("/v1/embeddings", {"model": "auto", "input": "hi", "x": DEEP}),
        ("/v1/responses", {"model": "auto", "input": [DEEP]}),
    ]
    deep = b'{"a":' * levels + b"1" + b"}" * levels  # orjson parses up to 1024 levels, encodes only 255
    for path, body in cases:
        raw = orjson.dumps(body).replace(orjson.dumps(DEEP), deep)
        assert_openai_error(post(hlive, raw, path), 400, "invalid_json")
    assert not hlive.local.requests
    assert not hlive.cloud.requests


def test_non_utf8_request_id_is_replaced_and_logged(hlive: Stack) -> None:
    log = Logged(hlive)
    body = orjson.dumps({"model": "qwen3:8b", "messages": MSG, "stream": True})
    req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"X-Request-Id: abc\xff\xfe\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    resp = raw_exchange(hlive, req)
    head = resp.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 200"), resp[:300]
    rid = next(ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n") if ln.lower().startswith(b"x-request-id"))
    assert rid
    assert b"\xff" not in rid
    lines = log.lines()
    assert [ln["request_id"] for ln in lines] == [rid.decode()]
    assert lines[0]["status"] == 200


@pytest.mark.parametrize(("sent", "kept"), [
    ("abc-123", True), ("x" * 128, True), ("x" * 129, False), ("has space", False), ("tab\there", False),
    ("é", False),
])
def test_request_id_kept_only_when_1_to_128_visible_ascii(hlive: Stack, sent: str, kept: bool) -> None:
    r = post(hlive, {"model": "qwen3:8b", "messages": MSG}, headers={"x-request-id": sent.encode()})
    assert r.status_code == 200, r.text
    assert (r.headers["x-request-id"] == sent) is kept
    assert 1 <= len(r.headers["x-request-id"]) <= 128
    assert (hlive.local.requests[-1]["headers"]["x-request-id"] == sent) is kept


def test_non_utf8_authorization_is_a_401_not_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARD_TEST_KEY", "sk-good")
    ring = KeyRing({"keys": [{"name": "k", "key_env": "HARD_TEST_KEY"}]}, ["auth", "route"], ["t"])
    for value in ("Bearer \udcff\udcfe", "\udcffBearer x"):  # how aiohttp hands over the bytes \xff \xfe
        with pytest.raises(AuthenticationFailed):
            ring.identify_sync({"Authorization": value})


def test_non_utf8_steering_header_is_a_400(hlive: Stack) -> None:
    body = orjson.dumps({"model": "auto", "messages": MSG})
    req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Router-Prefer: cl\xffoud\r\n"
           b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    status, err, _ = _status_and_json(raw_exchange(hlive, req))
    assert status == 400
    assert err["error"]["param"] == "x-router-prefer"


def test_echoed_model_id_is_truncated_in_errors_and_logs(hlive: Stack) -> None:
    log = Logged(hlive)
    huge = "m" * 200_000
    err = assert_openai_error(post(hlive, {"model": huge, "messages": MSG}), 404, "model_not_found")
    assert len(err["message"]) < 200
    err = assert_openai_error(post(hlive, {"model": "tier:" + huge, "messages": MSG}), 404, "model_not_found")
    assert len(err["message"]) < 300
    with httpx.Client() as c:
        r = c.get(hlive.url + "/v1/models/" + huge[:8000])
    assert len(assert_openai_error(r, 404, "model_not_found")["message"]) < 200
    lines = log.lines()
    assert len(lines) == 2
    assert all(len(ln["requested"]) <= 70 for ln in lines)
    assert all(len(orjson.dumps(ln)) < 2000 for ln in lines)


def test_paths_with_newlines_get_the_json_404(hlive: Stack) -> None:
    for path in (b"/v1/models/%0A", b"/nope%0Ahere", b"/%0D%0A"):
        status, err, head = _status_and_json(raw_exchange(hlive, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close"
                                                                  b"\r\n\r\n" % path))
        assert status == 404
        assert b"application/json" in head
        assert err["error"]["code"] in ("model_not_found", "not_found")


def test_internal_failure_is_an_openai_500_with_request_id_and_access_log(hlive: Stack) -> None:
    log = Logged(hlive)
    r = post(hlive, {"model": "qwen3:8b", "messages": MSG, "boom": True}, headers={"x-request-id": "boom-1"})
    err = assert_openai_error(r, 500, "internal_error")
    assert "bug" not in err["message"]
    assert r.headers["x-request-id"] == "boom-1"
    lines = log.lines()
    assert [(ln["request_id"], ln["status"], ln["error"]) for ln in lines] == [("boom-1", 500, "internal_error")]
    r = post(hlive, {"model": "qwen3:8b", "messages": MSG, "boom": True}, "/v1/route")
    assert_openai_error(r, 500, "internal_error")


# ---------------------------------------------------------------- aiohttp's own errors


@pytest.mark.parametrize("bad", [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Key: Bearer sk-hard-secret\x01\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Key: sk-hard-secret" + b"a" * 70000 + b"\r\n\r\n",
    b"GET /healthz HTTP/9.9 sk-hard-secret\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: sk-hard-secret\r\n\r\n",
])
def test_aiohttp_low_level_errors_are_openai_shaped_and_never_log_header_values(
    hlive: Stack, bad: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    resp = raw_exchange(hlive, bad)
    status, err, head = _status_and_json(resp)
    assert status == 400
    assert b"application/json" in head.lower()
    assert b"\r\nx-request-id: " in head.lower()
    assert set(err["error"]) == {"message", "type", "param", "code"}
    assert b"sk-hard-secret" not in resp
    assert "sk-hard-secret" not in caplog.text
    assert "Traceback" not in caplog.text


# ---------------------------------------------------------------- slow and idle clients


def test_slowloris_head_gets_408_and_is_closed(hlive: Stack) -> None:
    t0 = time.monotonic()
    resp = raw_exchange(hlive, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: 1", wait_s=HEAD_S * 6)
    took = time.monotonic() - t0
    status, err, _ = _status_and_json(resp)
    assert status == 408
    assert err["error"]["code"] == "request_timeout"
    assert took < HEAD_S * 5


def test_idle_new_connection_is_closed_after_the_head_timeout(hlive: Stack) -> None:
    with socket.create_connection(_addr(hlive), timeout=HEAD_S * 6) as s:
        t0 = time.monotonic()
        data = s.recv(65536)
        took = time.monotonic() - t0
    assert data.startswith(b"HTTP/1.1 408")
    assert HEAD_S * 0.8 < took < HEAD_S * 5


def test_kept_alive_connection_lives_keepalive_s_then_closes(hlive: Stack) -> None:
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(_addr(hlive), timeout=KEEPALIVE_S * 4) as s:
        s.sendall(req)
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        time.sleep(HEAD_S * 1.5)  # idle longer than the head timeout: still open (keep-alive)
        s.sendall(req)
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        assert s.recv(65536) == b""  # closed by the router
        took = time.monotonic() - t0
    assert KEEPALIVE_S * 0.7 < took < KEEPALIVE_S * 3


def test_reader_that_never_reads_is_dropped_and_upstream_cancelled(hlive: Stack) -> None:
    hlive.local.behavior.reply_tokens = 400_000
    body = orjson.dumps({"model": "qwen3:8b", "messages": MSG, "stream": True, "max_tokens": 400_000})
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(_addr(hlive))
    try:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        deadline = time.time() + 15
        while hlive.local.disconnects == 0 and time.time() < deadline:
            time.sleep(0.05)
        assert hlive.local.disconnects == 1  # the router gave up on the client and closed the upstream
        assert hlive.local.completed_streams == 0
    finally:
        s.close()


def test_new_server_limits_are_config_keys() -> None:
    from router.config import ConfigError, parse

    cfg = make_config("http://a/v1", "http://b/v1")
    cfg["server"] = {"request_head_timeout_s": 3, "keepalive_s": 20, "write_timeout_s": 5, "max_upstream_body_mb": 8}
    s = parse(cfg).server
    assert (s.request_head_timeout_s, s.keepalive_s, s.write_timeout_s, s.max_upstream_body_mb) == (3, 20, 5, 8)
    d = parse(make_config("http://a/v1", "http://b/v1")).server
    assert (d.request_head_timeout_s, d.keepalive_s, d.max_upstream_body_mb) == (10, 75, 64)
    cfg["server"] = {"keepalive_s": "soon"}
    with pytest.raises(ConfigError, match=r"server\.keepalive_s: expected a number"):
        parse(cfg)

