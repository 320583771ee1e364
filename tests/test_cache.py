"""The response cache: deterministic requests only, JSON and SSE replay, hits cost 0, bounds, Redis shared."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backends import make_backend
from middleware.cache import CacheStage
from router.catalog import Catalog
from router.config import parse
from router.context import Context
from tests.conftest import Stack, make_config
from tests.redis_support import delete_prefix, new_prefix, redis_url, require_redis
from tests.scripted_upstream import Scripted
from tests.test_spend import chat, ledger, post, spend_config


def cached_config(url: str, state: str = "memory://", cache: dict[str, Any] | None = None):
    base = spend_config(url, state)
    return lambda a, b: {**base(a, b), "cache": cache or {"ttl_s": 60, "max_entries": 100}}


@pytest.fixture(scope="module")
def scripted() -> Iterator[Scripted]:
    s = Scripted().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def cstack(scripted: Scripted) -> Iterator[Stack]:
    st = Stack(cached_config(scripted.url)).start()
    yield st
    st.stop()


def wait_for(pred: Any) -> None:
    for _ in range(100):
        if pred():
            return
        asyncio.run(asyncio.sleep(0.01))
    raise AssertionError("condition not met")


def test_json_hit_costs_nothing_and_is_a_saving(cstack: Stack, scripted: Scripted) -> None:
    body = chat(temperature=0, messages=[{"role": "user", "content": "cache me json"}])
    calls = scripted.calls
    a = post(cstack, "/v1/chat/completions", body)
    assert a.headers["x-router-cache"] == "miss"
    assert float(a.headers["x-router-cost-usd"]) > 0
    wait_for(lambda: post(cstack, "/v1/chat/completions", body).headers["x-router-cache"] == "hit")
    b = post(cstack, "/v1/chat/completions", body)
    assert b.headers["x-router-cache"] == "hit"
    assert b.content == a.content
    assert float(b.headers["x-router-cost-usd"]) == 0
    assert b.headers["x-router-model"] == "gpt-5-mini"
    assert scripted.calls == calls + 1
    hits = [e for e in ledger(cstack) if e.cache_hit]
    assert hits
    assert hits[-1].cost_usd == 0
    assert hits[-1].baseline_usd > 0


def test_stream_is_cached_and_replayed_as_sse(cstack: Stack, scripted: Scripted) -> None:
    body = chat(stream=True, temperature=0, messages=[{"role": "user", "content": "cache me stream"}])

    def get() -> tuple[str, bytes]:
        with httpx.stream("POST", cstack.url + "/v1/chat/completions", json=body, timeout=10) as r:
            return r.headers["x-router-cache"], r.read()

    mode, first = get()
    assert mode == "miss"
    wait_for(lambda: get()[0] == "hit")
    mode, again = get()
    assert mode == "hit"
    assert again == first
    assert again.endswith(b"data: [DONE]\n\n")


def test_nondeterministic_requests_bypass_and_force_caches(cstack: Stack, scripted: Scripted) -> None:
    body = chat(messages=[{"role": "user", "content": "random please"}])
    assert post(cstack, "/v1/chat/completions", body).headers["x-router-cache"] == "bypass"
    forced = {"x-router-cache": "force"}
    assert post(cstack, "/v1/chat/completions", body, headers=forced).headers["x-router-cache"] == "miss"
    wait_for(lambda: post(cstack, "/v1/chat/completions", body, headers=forced).headers["x-router-cache"] == "hit")
    zero = chat(temperature=0, messages=[{"role": "user", "content": "random please"}])
    assert post(cstack, "/v1/chat/completions", zero, headers={"x-router-cache": "bypass"}).headers[
        "x-router-cache"] == "bypass"


async def test_max_entries_evicts_the_oldest() -> None:
    cfg = parse(make_config("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", cache={"max_entries": 2}))
    backends = {b.name: make_backend(b) for b in cfg.backends}
    stage = CacheStage(Context(config=cfg, backends=backends, catalog=Catalog(cfg, backends)))
    for k in ("a", "b", "c"):
        await stage.cache.set(k, b"{}\nx")
        await stage._bound(k)
    assert await stage.cache.get("a") is None
    assert await stage.cache.get("c") == b"{}\nx"


def test_redis_cache_is_shared_between_routers(scripted: Scripted) -> None:
    require_redis()
    prefix = new_prefix()
    cache = {"ttl_s": 30, "backend": "redis", "url": redis_url(prefix)}
    a = Stack(cached_config(scripted.url, redis_url(prefix), cache)).start()
    b = Stack(cached_config(scripted.url, redis_url(prefix), cache)).start()
    body = chat(temperature=0, messages=[{"role": "user", "content": f"shared {prefix}"}])
    try:
        assert post(a, "/v1/chat/completions", body).headers["x-router-cache"] == "miss"
        wait_for(lambda: post(b, "/v1/chat/completions", body).headers["x-router-cache"] == "hit")
    finally:
        a.stop()
        b.stop()
        delete_prefix(prefix)


def _cache_clients(prefix: str) -> int:
    import redis

    from tests.redis_support import REDIS_HOST, REDIS_PORT

    r = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    return sum(1 for c in r.client_list() if c.get("name") == prefix + "cache")


def test_redis_cache_connections_close_with_the_router(scripted: Scripted) -> None:
    """The cache stage's shutdown hook: stopping the router closes its Redis connections (CLIENT LIST)."""
    require_redis()
    prefix = new_prefix()
    cache = {"ttl_s": 30, "backend": "redis", "url": redis_url(prefix)}
    st = Stack(cached_config(scripted.url, "memory://", cache)).start()
    try:
        body = chat(temperature=0, messages=[{"role": "user", "content": f"close {prefix}"}])
        assert post(st, "/v1/chat/completions", body).headers["x-router-cache"] == "miss"
        wait_for(lambda: post(st, "/v1/chat/completions", body).headers["x-router-cache"] == "hit")
        assert _cache_clients(prefix) >= 1
    finally:
        st.stop()
        delete_prefix(prefix)
    assert _cache_clients(prefix) == 0
