"""The `ai-router` command: check, route (dry run), and serve --workers 2 with a graceful SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import orjson
import yaml

from tests.conftest import Stack, make_config, unused_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent


def ai_router(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "router", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_check_ok() -> None:
    r = ai_router("check", "config/router.yaml")
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_check_names_the_key_path(tmp_path: Path) -> None:
    cfg = yaml.safe_load((ROOT / "config/router.yaml").read_text())
    cfg["backends"][1]["models"][0]["price"]["input"] = "cheap"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    r = ai_router("check", str(bad))
    assert r.returncode == 2
    assert "backends[1].models[0].price.input: expected a number" in r.stderr


def test_route_dry_run() -> None:
    r = ai_router("route", "--config", "config/router.yaml", "What's the capital of France?")
    assert r.returncode == 0, r.stderr
    d = orjson.loads(r.stdout)
    assert {"model", "backend", "tier", "task", "complexity", "tokens", "estimated_cost_usd", "reasons",
            "fallbacks"} <= set(d)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_serve_two_workers_and_sigterm(live: Stack, tmp_path: Path) -> None:
    live.local.behavior.token_delay_s = 0.05
    cfg = make_config(live.local_url, live.cloud_url)
    cfg["server"] = {"workers": 2, "shutdown_grace_s": 10}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    port = unused_port()
    proc = subprocess.Popen([sys.executable, "-m", "router", "serve", "--config", str(path), "--host", "127.0.0.1",
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "AI_ROUTER_TEST_CLOUD_KEY": "k"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base)
        assert len(_children(proc.pid)) == 2
        with httpx.Client(timeout=10) as c:
            for _ in range(20):
                r = c.post(base + "/v1/chat/completions",
                           json={"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}]})
                assert r.status_code == 200
        # A stream in flight when SIGTERM arrives is allowed to finish.
        # SIGTERM is sent once the stream's first bytes have arrived (not after a fixed sleep, which a loaded
        # machine can outrun), so the stream is surely in flight.
        result: dict[str, bytes] = {}
        started = threading.Event()

        def stream() -> None:
            body = b""
            with httpx.Client(timeout=20) as c, c.stream("POST", base + "/v1/chat/completions", json={
                    "model": "qwen3:8b", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as r:
                for chunk in r.iter_bytes():
                    body += chunk
                    started.set()
            result["body"] = body

        t = threading.Thread(target=stream)
        t.start()
        assert started.wait(15)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        t.join(20)
        assert result["body"].endswith(b"data: [DONE]\n\n")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
