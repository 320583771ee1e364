"""`ai-router serve` as a process: one owner per port, drain on SIGTERM, reload on SIGHUP (also --workers N)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backends.simulated import SimulatedUpstream
from tests.conftest import unused_port

CONFIG = """
server: {{host: 127.0.0.1, shutdown_grace_s: {grace}}}
state: {{url: "memory://"}}
logging: {{access_log: false}}
auth: {{admin_key_env: AI_ROUTER_TEST_SERVE_ADMIN, open: true}}
backends:
  - name: up
    base_url: {upstream}
    health: {{probe: off}}
    models: [{models}]
"""
ADMIN_KEY = "serve-admin-key"


def write_config(path: Path, upstream: str = "http://127.0.0.1:9/v1", grace: float = 5,
                 models: tuple[str, ...] = ("m1",)) -> Path:
    listed = ", ".join(f"{{id: {m}, tier: t1}}" for m in models)
    path.write_text(CONFIG.format(upstream=upstream, grace=grace, models=listed))
    return path


def spawn(config: Path, port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "router", "serve", "--config", str(config), "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers)]
    env = {**os.environ, "AI_ROUTER_TEST_SERVE_ADMIN": ADMIN_KEY}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parent.parent,
                            env=env)


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not start")


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(10)
        for f in (p.stdout, p.stderr):
            if f is not None:
                f.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_refuses_a_port_another_process_listens_on(tmp_path: Path, procs: list, workers: int) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        p = spawn(write_config(tmp_path / "c.yaml"), port, workers)
        procs.append(p)
        _, err = p.communicate(timeout=20)
    assert p.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in err.decode()


def test_second_instance_with_workers_is_refused(tmp_path: Path, procs: list) -> None:
    cfg = write_config(tmp_path / "c.yaml")
    port = unused_port()
    first = spawn(cfg, port, workers=2)
    procs.append(first)
    wait_ready(port, first)
    second = spawn(cfg, port, workers=2)  # SO_REUSEPORT alone would let it in
    procs.append(second)
    _, err = second.communicate(timeout=20)
    assert second.returncode == 2
    assert f"127.0.0.1:{port}: Address already in use" in err.decode()
    first.send_signal(signal.SIGTERM)
    assert first.wait(20) == 0


# ---------------------------------------------------------------- drain and reload


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[SimulatedUpstream, str]]:
    up = SimulatedUpstream("up", ["m1", "m2"])
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    url = asyncio.run_coroutine_threadsafe(up.start(), loop).result(10)
    yield up, url
    asyncio.run_coroutine_threadsafe(up.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    t.join(5)


def models_seen(port: int) -> set[str]:
    with httpx.Client(timeout=5) as c:  # a fresh connection each time: under --workers any worker may answer
        return {m["id"] for m in c.get(f"http://127.0.0.1:{port}/v1/models").json()["data"]}


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_in_flight_streams_then_exits_0(tmp_path: Path, procs: list, upstream: Any,
                                                        workers: int) -> None:
    up, url = upstream
    up.behavior.token_delay_s = 0.05
    up.behavior.reply_tokens = 30  # a 1.5 s stream: still flowing when new connections are refused
    try:
        port = unused_port()
        p = spawn(write_config(tmp_path / "c.yaml", url), port, workers)
        procs.append(p)
        wait_ready(port, p)
        out: dict[str, bytes] = {}

        def stream() -> None:
            with httpx.Client(timeout=30) as c, c.stream(
                    "POST", f"http://127.0.0.1:{port}/v1/chat/completions",
                    json={"model": "m1", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as r:
                out["body"] = r.read()

        n = len(up.requests)
        t = threading.Thread(target=stream)
        t.start()
        deadline = time.monotonic() + 10
        while len(up.requests) == n and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the stream is flowing
        p.send_signal(signal.SIGTERM)
        refused = False
        deadline = time.monotonic() + 2.5
        while not refused and time.monotonic() < deadline:  # new connections are refused while it drains
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                time.sleep(0.05)
            except httpx.ConnectError:
                refused = True
        assert refused
        assert t.is_alive()  # … while the stream is still going
        t.join(15)
        assert out["body"].rstrip().endswith(b"data: [DONE]")  # the in-flight stream finished
        assert p.wait(20) == 0
    finally:
        up.behavior.token_delay_s = 0
        up.behavior.reply_tokens = 24


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_every_worker(tmp_path: Path, procs: list, upstream: Any, workers: int) -> None:
    _, url = upstream
    cfg = write_config(tmp_path / "c.yaml", url)
    port = unused_port()
    p = spawn(cfg, port, workers)
    procs.append(p)
    wait_ready(port, p)
    assert "m2" not in models_seen(port)
    write_config(cfg, url, models=("m1", "m2"))
    p.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30  # generous: two workers rebuild their service on a loaded 2-core machine
    while not all("m2" in models_seen(port) for _ in range(6)):
        assert time.monotonic() < deadline, "not every worker reloaded"
        time.sleep(0.1)
    write_config(cfg, url, models=("m1",))
    r = httpx.post(f"http://127.0.0.1:{port}/admin/reload", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 30
    while any("m2" in models_seen(port) for _ in range(6)):
        assert time.monotonic() < deadline, "the reload did not reach every worker"
        time.sleep(0.1)
    cfg.write_text("backends: [")
    p.send_signal(signal.SIGHUP)  # a bad config: refused, logged, the old one keeps serving
    time.sleep(0.5)
    assert models_seen(port) == {"auto", "tier:t1", "m1"}
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 0
    assert b"reload refused" in p.stderr.read()  # type: ignore[union-attr]


STARTING_WORKER = """
import os, shutil, signal, sys
from router.config import load
from router.reload import hold_reloads
from router.workers import _child
path, changed, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = load(path)  # what the supervisor forked this worker with
hold_reloads()  # as at fork (_child holds it again): the window in which the SIGHUP arrives
shutil.copy(changed, path)  # the file changed ...
os.kill(os.getpid(), signal.SIGHUP)  # ... and the supervisor passed the reload on before this worker was up
_child(config, "127.0.0.1", port)
"""


def test_a_worker_starting_during_a_reload_still_reloads(tmp_path: Path, procs: list, upstream: Any) -> None:
    _, url = upstream  # under --workers N a SIGHUP may reach a worker still building its service: not lost
    cfg = write_config(tmp_path / "c.yaml", url)
    changed = write_config(tmp_path / "changed.yaml", url, models=("m1", "m2"))
    port = unused_port()
    env = {**os.environ, "AI_ROUTER_TEST_SERVE_ADMIN": ADMIN_KEY}
    p = subprocess.Popen([sys.executable, "-c", STARTING_WORKER, str(cfg), str(changed), str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parent.parent, env=env)
    procs.append(p)
    wait_ready(port, p)
    deadline = time.monotonic() + 30
    while "m2" not in models_seen(port):
        assert time.monotonic() < deadline, "the SIGHUP that came during start-up was lost"
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    assert p.wait(20) == 0
