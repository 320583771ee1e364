"""The router behind real Nginx with the shipped `deploy/nginx/ai-router.conf`: tokens arrive unbuffered,
the router's headers and the request id survive, and a client that goes away at Nginx cancels the upstream.

Nginx is Debian's package (`.ci/run` installs it); the test fails in CI when it is missing and skips elsewhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backends.simulated import Behavior
from tests.conftest import Stack, unused_port

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "deploy" / "nginx" / "ai-router.conf"
SLOW = Behavior(first_token_s=0.05, token_delay_s=0.15, reply_tokens=20)  # a 3 s stream
BODY = {"model": "qwen3:8b", "stream": True, "messages": [{"role": "user", "content": "count slowly"}]}


def _nginx() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed (.ci/run installs Debian's nginx)")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    return found


def _wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture(scope="module")
def slow_stack() -> Iterator[Stack]:
    s = Stack().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def nginx(slow_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Nginx on a free port with the shipped config, its upstream pointed at the router."""
    binary = _nginx()
    tmp = tmp_path_factory.mktemp("nginx")
    router_port = int(slow_stack.url.rsplit(":", 1)[1])
    port = unused_port()
    conf = SHIPPED.read_text()
    assert "server 127.0.0.1:8082;" in conf
    assert "listen 80;" in conf
    conf = conf.replace("server 127.0.0.1:8082;", f"server 127.0.0.1:{router_port};")
    conf = conf.replace("listen 80;", f"listen 127.0.0.1:{port};")
    (tmp / "ai-router.conf").write_text(conf)
    user = "user root;\n" if os.geteuid() == 0 else ""
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temps = "".join(f"  {name}_temp_path {tmp}/{name};\n" for name in kinds)
    (tmp / "nginx.conf").write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log warn;\n"
        f"events {{ worker_connections 256; }}\n"
        f"http {{\n  access_log off;\n{temps}  include {tmp}/ai-router.conf;\n}}\n"
    )
    proc = subprocess.Popen([binary, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(tmp / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_port(port)
    except RuntimeError:
        proc.kill()
        raise RuntimeError(f"nginx did not start: {proc.communicate()[1].decode()}") from None
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def _first_token(url: str, request_id: str) -> tuple[float, httpx.Headers, bytes]:
    """Seconds until the first content chunk, the response headers, and the whole body."""
    with httpx.Client(timeout=10) as client:
        start = time.monotonic()
        with client.stream("POST", f"{url}/v1/chat/completions", json=BODY, headers={"x-request-id": request_id}) as r:
            assert r.status_code == 200
            first, body = None, b""
            for chunk in r.iter_raw():
                body += chunk
                if first is None and b'"content":"' in body:
                    first = time.monotonic() - start
            assert first is not None
            return first, r.headers, body


def test_first_token_is_not_buffered_and_headers_survive(slow_stack: Stack, nginx: str) -> None:
    slow_stack.reset()
    slow_stack.local.behavior = SLOW
    direct, direct_headers, _ = _first_token(slow_stack.url, "direct-1")
    proxied, headers, body = _first_token(nginx, "through-nginx-1")
    # The stream lasts 3 s; buffering would hold the first token until the end. Allow for a loaded machine.
    assert proxied < direct + 0.25, (proxied, direct)
    assert proxied < 1.0
    assert body.rstrip().endswith(b"data: [DONE]")
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["x-request-id"] == "through-nginx-1"
    for name in ("x-router-model", "x-router-backend", "x-router-tier", "x-router-task", "x-router-attempts"):
        assert headers[name] == direct_headers[name], name
    assert headers["x-router-model"] == "qwen3:8b"


def test_request_id_is_made_by_nginx_when_absent(slow_stack: Stack, nginx: str) -> None:
    slow_stack.reset()
    r = httpx.post(f"{nginx}/v1/chat/completions", json={**BODY, "stream": False}, timeout=10)
    assert r.status_code == 200
    assert len(r.headers["x-request-id"]) == 32  # Nginx's $request_id, kept by the router


def test_client_disconnect_at_nginx_cancels_the_upstream(slow_stack: Stack, nginx: str) -> None:
    slow_stack.reset()
    slow_stack.local.behavior = SLOW
    with httpx.Client(timeout=10) as client, client.stream("POST", f"{nginx}/v1/chat/completions", json=BODY) as r:
        for chunk in r.iter_raw():
            if b'"content":"' in chunk:
                break  # got a token: hang up
    deadline = time.monotonic() + 3
    while slow_stack.local.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slow_stack.local.disconnects == 1
    assert slow_stack.local.completed_streams == 0
