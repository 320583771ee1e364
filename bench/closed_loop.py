"""What bench/soak.py and bench/spill.py share: a router child process from a config, closed-loop clients.

    RouterProcess(cfg, workdir)    `ai-router serve` on a free port with that config (YAML is JSON), ready
    closed_loop(n, seconds, one)   n clients, each sending its next request as soon as the last one ended
    percentiles(ms)                p50 / p95 / p99 of a list of latencies

The router's memory, fds and connections are read with bench/procstat.py.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.targets import Target, _spawn, free_port, router_command, stop, wait_ready


class RouterProcess:
    """`ai-router serve --config FILE` in its own session; `stop()` drains it with SIGTERM."""

    def __init__(self, cfg: dict[str, Any], workdir: Path, name: str = "router",
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        cfg = {**cfg, "server": {**cfg.get("server", {}), "host": "127.0.0.1", "port": self.port}}
        path = workdir / f"{name}-{self.port}.yaml"
        path.write_bytes(orjson.dumps(cfg, option=orjson.OPT_INDENT_2))
        self.target = Target(name, self.port, log_path=workdir / f"{name}-{self.port}.log")
        self.target.proc = _spawn([*router_command(), "serve", "--config", str(path)], None, self.target.log_path,
                                  env={**os.environ, **(env or {})})
        wait_ready(self.target)
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.target.pid

    def stop(self) -> None:
        stop(self.target)


async def closed_loop(clients: int, seconds: float, one: Callable[[aiohttp.ClientSession, int], Awaitable[None]],
                      session: aiohttp.ClientSession, tick: Callable[[float], None] | None = None,
                      tick_s: float = 10.0) -> float:
    """Run `clients` loops of `one(session, i)` for `seconds` (a request in flight at the end finishes);
    `tick(elapsed)` every `tick_s`. Returns the elapsed time."""
    t0 = time.monotonic()
    end = t0 + seconds

    async def loop(c: int) -> None:
        i = c
        while time.monotonic() < end:
            await one(session, i)
            i += clients

    async def ticker() -> None:
        while True:
            await asyncio.sleep(tick_s)
            if tick is not None:
                tick(time.monotonic() - t0)

    t = asyncio.ensure_future(ticker())
    try:
        await asyncio.gather(*(loop(c) for c in range(clients)))
    finally:
        t.cancel()
    return time.monotonic() - t0


def session(clients: int) -> aiohttp.ClientSession:
    """A client session with one keep-alive connection per client and generous timeouts."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients, force_close=False),
                                 timeout=aiohttp.ClientTimeout(total=120))


def percentiles(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    s = sorted(ms)

    def at(q: float) -> float:
        return s[min(len(s) - 1, int(q * len(s)))]

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99)}
