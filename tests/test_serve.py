"""`ai-router serve` as a process: one owner per port, drain on SIGTERM, reload on SIGHUP (also --workers N)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import unused_port

CONFIG = """
server: {{host: 127.0.0.1, shutdown_grace_s: {grace}}}
state: {{url: "memory://"}}
logging: {{access_log: false}}
backends:
  - name: up
    base_url: {upstream}
    health: {{probe: off}}
    models: [{{id: m1, tier: t1}}]
"""


def write_config(path: Path, upstream: str = "http://127.0.0.1:9/v1", grace: float = 5) -> Path:
    path.write_text(CONFIG.format(upstream=upstream, grace=grace))
    return path


def spawn(config: Path, port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "router", "serve", "--config", str(config), "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parent.parent)


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
