"""Shared fixtures: simulated upstreams and a live router on real sockets.

`stack` runs two simulated upstreams ("local" and "cloud") and the router in a background thread with
its own uvloop loop, so that both the blocking and the async official `openai` clients can talk to it
from the test. Tests steer the upstreams through their `behavior` and read what they received.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import httpx
import orjson
import pytest
import uvloop

from backends.simulated import Behavior, SimulatedUpstream
from router.config import Config, parse
from router.server import RouterService, serve

os.environ.setdefault("AI_ROUTER_TEST_CLOUD_KEY", "sk-test-cloud-key")

LOCAL_MODELS = ["qwen3:8b", "qwen3:14b", "nomic-embed-text"]
CLOUD_MODELS = ["gpt-5-mini", "gpt-5-codex", "gpt-5", "text-embedding-3-small"]


def unused_port() -> int:
    """A local port nothing listens on (bound, then released): connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stream_then_leave(base: str, body: dict[str, Any], marker: bytes, count: int) -> None:
    """POST a streaming chat request over a raw socket, read until `marker` has arrived `count` times, then
    close the connection mid-stream (a client that leaves)."""
    host, port = base.removeprefix("http://").split(":")
    raw = orjson.dumps(body)
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(raw), raw))
        got = b""
        while got.count(marker) < count:
            got += s.recv(65536)


def wait_healthy(base: str, within: float = 20) -> None:
    """Poll `GET {base}/healthz` until it answers 200 (a router started as a subprocess)."""
    deadline = time.time() + within
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.time() < deadline, "router did not start"
        time.sleep(0.1)


def wait_listening(proc: subprocess.Popen[str], port: int, within: float = 20) -> None:
    """Wait until a router started as `proc` accepts connections on `port`; fail with its stderr if it
    exits or does not listen in time."""
    deadline = time.monotonic() + within
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the router did not start: {proc.communicate()[1][-2000:]}")
        time.sleep(0.1)


def make_config(local_url: str, cloud_url: str, **overrides: Any) -> dict[str, Any]:
    """A config like config/router.yaml, pointing at the simulated upstreams."""
    cfg: dict[str, Any] = {
        "server": {"max_body_mb": 1},
        "state": {"url": "memory://"},
        "logging": {"access_log": False},
        "backends": [
            {
                "name": "local", "kind": "openai", "location": "local", "base_url": local_url,
                "timeouts": {"connect_s": 1, "first_byte_s": 2, "idle_s": 2, "total_s": 30},
                "models": [
                    {"id": "qwen3:8b", "tier": "local-small", "context": 32768},
                    {"id": "qwen3:14b", "tier": "local-large", "context": 32768, "capabilities": ["tools", "vision"]},
                    {"id": "nomic-embed-text", "type": "embedding", "context": 8192},
                ],
            },
            {
                "name": "cloud", "kind": "openai", "base_url": cloud_url, "api_key_env": "AI_ROUTER_TEST_CLOUD_KEY",
                "timeouts": {"connect_s": 1, "first_byte_s": 2, "idle_s": 2, "total_s": 30},
                "models": [
                    {"id": "gpt-5-mini", "tier": "cloud-mini", "context": 400000,
                     "capabilities": ["tools", "vision", "json"], "price": {"input": 0.25, "output": 2.0}},
                    {"id": "gpt-5-codex", "tier": "cloud-code", "context": 400000, "capabilities": ["tools", "json"],
                     "price": {"input": 1.25, "output": 10.0}},
                    {"id": "gpt-5", "tier": "cloud-high", "context": 400000,
                     "capabilities": ["tools", "vision", "json"], "price": {"input": 1.25, "output": 10.0}},
                    {"id": "text-embedding-3-small", "type": "embedding", "context": 8191, "price": {"input": 0.02}},
                ],
            },
        ],
        "routing": {
            "tiers": ["local-small", "local-large", "cloud-mini", "cloud-code", "cloud-high"],
            "rules": [
                {"task": "code", "max_prompt_tokens": 400, "complexity": "low", "tier": "local-large"},
                {"task": "code", "max_prompt_tokens": 2000, "complexity": "medium", "tier": "cloud-code"},
                {"task": "code", "tier": "cloud-high"},
                {"task": "docs", "max_prompt_tokens": 600, "complexity": "low", "tier": "local-small"},
                {"task": "docs", "max_prompt_tokens": 3000, "complexity": "medium", "tier": "cloud-mini"},
                {"task": "docs", "tier": "cloud-high"},
                {"task": "math", "complexity": "low", "tier": "local-large"},
                {"task": "math", "tier": "cloud-high"},
                {"task": "chat", "max_prompt_tokens": 2000, "tier": "local-small"},
                {"task": "chat", "tier": "cloud-mini"},
                {"tier": "local-small"},
            ],
            "min_confidence": 0.5,
            "promotion": {"on": ["error", "timeout", "overload", "slow_first_token"], "first_token_ms": 500,
                          "max_steps": 2},
        },
        "pipeline": ["auth", "ratelimit", "redact", "classify", "cache", "budget", "route", "retry"],
    }
    cfg.update(overrides)
    return cfg


def without_health_checks(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config with `health.probe: off` on every backend (a test of what happens on the call itself)."""
    for b in cfg["backends"]:
        b["health"] = {"probe": "off"}
    return cfg


class Stack:
    """Upstreams + router on a private loop in a thread; `url` is the router's base URL."""

    def __init__(self, config_fn: Callable[[str, str], dict[str, Any]] | None = None) -> None:
        self.local = SimulatedUpstream("local", LOCAL_MODELS, Behavior())
        self.cloud = SimulatedUpstream("cloud", CLOUD_MODELS, Behavior())
        self.config_fn = config_fn or make_config
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""
        self.config: Config | None = None
        self.service: RouterService | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Future[Any] | None = None

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> Stack:
        self.thread.start()
        local_url = self.run(self.local.start())
        cloud_url = self.run(self.cloud.start())
        self.local_url, self.cloud_url = local_url, cloud_url
        self.config = parse(self.config_fn(local_url, cloud_url))
        self.service = RouterService(self.config)
        ports: list[int] = []
        ready = threading.Event()

        async def _serve() -> None:
            self._stop = asyncio.Event()
            await serve(self.config, "127.0.0.1", 0, stop=self._stop, service=self.service,  # type: ignore[arg-type]
                        ready=lambda p: (ports.append(p), ready.set()))

        self._task = asyncio.run_coroutine_threadsafe(_serve(), self.loop)
        if not ready.wait(15):
            raise RuntimeError("router did not start")
        self.url = f"http://127.0.0.1:{ports[0]}"
        return self

    def reset(self) -> None:
        for up in (self.local, self.cloud):
            up.behavior = Behavior()
            up.requests.clear()
            up.disconnects = 0
            up.completed_streams = 0
        assert self.service is not None
        for b in self.service.backends.values():  # forget health marks left by failure tests
            b.breaker.reset()
            b.missing.clear()
            b.probe_error = None

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
            assert self._task is not None
            self._task.result(15)
        self.run(self.local.stop())
        self.run(self.cloud.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine to the end on a fresh loop: each test using it runs on asyncio and on uvloop."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def _run(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(asyncio.wait_for(coro, 20))

    return _run


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    s = Stack().start()
    yield s
    s.stop()


@pytest.fixture
def live(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The shared stack, with upstream behaviour reset before and after each test."""
    stack.reset()
    yield stack
    stack.reset()
