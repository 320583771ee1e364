"""Real router processes: `kill -9` on SQLite keeps the ledger; two routers on one Redis share one budget
and one rate limit."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from router.state import open_store
from router.state.sqlite import FLUSH_S
from tests.conftest import unused_port
from tests.redis_support import delete_prefix, new_prefix, redis_url, require_redis
from tests.scripted_upstream import Scripted
from tests.test_spend import PATIENT, PER_REQUEST, TIMEOUTS, chat, spend_config, within_one_minute


@pytest.fixture(scope="module")
def scripted() -> Iterator[Scripted]:
    s = Scripted().start()
    yield s
    s.stop()


class Router:
    """`python -m router serve` in a subprocess."""

    def __init__(self, config: dict[str, Any], tmp: Path, name: str) -> None:
        self.path = tmp / f"{name}.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.port = unused_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> Router:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        self.proc = subprocess.Popen([sys.executable, "-m", "router", "serve", "--config", str(self.path),
                                      "--host", "127.0.0.1", "--port", str(self.port), *extra],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("router did not start")

    def post(self, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.url + "/v1/chat/completions", json=body, timeout=10)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def config_for(scripted: Scripted, state_url: str, tenants: list[Any], timeouts: dict[str, float] = TIMEOUTS
               ) -> dict[str, Any]:
    return spend_config(scripted.url, state_url, tenants, timeouts)(scripted.url, scripted.url)  # "local" too


async def _rows(url: str) -> Any:
    s = open_store(url)
    await s.start()
    try:
        return await s.spend("day"), await s.ledger_count()  # type: ignore[attr-defined]
    finally:
        await s.aclose()


def test_kill_9_on_sqlite_keeps_the_ledger(scripted: Scripted, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/state.db"
    tenants = [{"match": "default", "budget": {"daily_usd": 100}}]
    r = Router(config_for(scripted, db, tenants), tmp_path, "a").start()
    try:
        for _ in range(10):
            assert r.post(chat(model="gpt-5", max_tokens=100)).status_code == 200
        time.sleep(FLUSH_S * 3)  # past the write-behind window
        for _ in range(3):  # these may be lost: at most the last flush window
            assert r.post(chat(model="gpt-5", max_tokens=100)).status_code == 200
        r.kill9()
    finally:
        r.stop()
    rows, count = asyncio.run(_rows(db))
    row = next(x for x in rows if x.tenant == "default")
    assert 10 <= row.requests <= 13
    assert count == row.requests  # rollups and raw ledger agree: one transaction
    assert row.cost_usd == pytest.approx(row.requests * PER_REQUEST)
    again = Router(config_for(scripted, db, tenants), tmp_path, "b").start()  # restarts on the same file
    try:
        assert again.post(chat(model="gpt-5", max_tokens=100)).status_code == 200
        time.sleep(FLUSH_S * 3)
    finally:
        again.stop()
    rows, count = asyncio.run(_rows(db))
    assert next(x for x in rows if x.tenant == "default").requests == row.requests + 1


def test_two_router_processes_on_one_redis(scripted: Scripted, tmp_path: Path) -> None:
    require_redis()
    prefix = new_prefix()
    tenants = [{"match": "default", "limits": {"rpm": 6}, "budget": {"daily_usd": round(PER_REQUEST * 3.5, 8)}}]
    cfg = config_for(scripted, redis_url(prefix), tenants)
    a = Router(cfg, tmp_path, "a").start()
    b = Router(cfg, tmp_path, "b")
    try:
        b.start()
        within_one_minute()
        paid = [(a if i % 2 else b).post(chat(model="gpt-5", max_tokens=100)) for i in range(4)]
        assert sorted(r.status_code for r in paid) == [200, 200, 200, 429]  # one budget between them
        assert next(r for r in paid if r.status_code == 429).json()["error"]["code"] == "budget_exceeded"
        free = [(a if i % 2 else b).post(chat(model="qwen3:8b")) for i in range(4)]
        assert [r.status_code for r in free] == [200, 200, 429, 429]  # one rate limit: 6 per minute in all
        assert free[2].json()["error"]["code"] == "rate_limit_exceeded"
    finally:
        a.stop()
        b.stop()
        delete_prefix(prefix)


@pytest.mark.parametrize("setup", ["sqlite, --workers 2", "redis, two routers"])
def test_concurrent_requests_over_processes_never_overspend(scripted: Scripted, tmp_path: Path, setup: str) -> None:
    """The budget invariant across processes: 120 requests at once against a budget that covers 25 of them,
    spread over two workers on one SQLite file, or two routers on one Redis."""
    scripted.usage = {"prompt_tokens": 10, "completion_tokens": 100, "total_tokens": 110}
    scripted.fail = []
    limit = round(PER_REQUEST * 25.5, 8)
    tenants = [{"match": "default", "budget": {"daily_usd": limit}}]
    prefix = new_prefix()
    if setup.startswith("redis"):
        require_redis()
        url = redis_url(prefix)
    else:
        url = f"sqlite:///{tmp_path}/workers.db"
    cfg = config_for(scripted, url, tenants, PATIENT)  # a burst on a starved runner must not time out (test_spend)
    routers = [Router(cfg, tmp_path, "a")]
    if setup.startswith("redis"):
        routers.append(Router(cfg, tmp_path, "b"))
    try:
        for r in routers:
            r.start(*(["--workers", "2"] if setup.startswith("sqlite") else []))

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=120)) as c:
                body = chat(model="gpt-5", max_tokens=100)
                return await asyncio.gather(*(c.post(routers[i % len(routers)].url + "/v1/chat/completions",
                                                     json=body) for i in range(120)))

        responses = asyncio.run(burst())
        ok = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code != 200]
        assert all(r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded" for r in refused)
        assert len(ok) <= 25, f"{len(ok)} answered against a budget for 25"
        # refusing a little early is allowed (other workers hold leases), not by much
        assert len(ok) >= 15, f"{len(ok)} answered"
        time.sleep(FLUSH_S * 3)  # past the write-behind window
        async def day_rows() -> Any:
            s = open_store(url)
            await s.start()
            try:
                return await s.spend("day")
            finally:
                await s.aclose()

        row = next(x for x in asyncio.run(day_rows()) if x.tenant == "default")
        assert row.requests == len(ok)  # nothing counted twice, nothing lost
        assert row.cost_usd == pytest.approx(len(ok) * PER_REQUEST)
        assert row.cost_usd <= limit + 1e-12
    finally:
        for r in routers:
            r.stop()
        if setup.startswith("redis"):
            delete_prefix(prefix)
