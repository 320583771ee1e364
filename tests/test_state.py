"""The store contract (router/state/), one suite run against memory://, sqlite:/// and real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from router.state import Charge, SpendEntry, Store, open_store
from router.state import sqlite as sqlite_mod
from router.state.base import StoreURLError
from tests.redis_support import delete_prefix, new_prefix, redis_url, require_redis

STORES = ["memory", "sqlite", "redis"]


def _url(kind: str, tmp_path: Path, prefix: str) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return redis_url(prefix)


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    prefix = new_prefix()
    if request.param == "redis":
        require_redis()
    s = open_store(_url(request.param, tmp_path, prefix))
    await s.start()
    yield s
    await s.aclose()
    if request.param == "redis":
        delete_prefix(prefix)


def later(s: float = 60) -> float:
    return time.time() + s


async def test_reserve_settle_release(store: Store) -> None:
    c = Charge("budget:t:a", 4.0, 10.0, later())
    g = await store.reserve([c])
    assert g.ok
    assert g.levels == [pytest.approx(4.0)]
    big = await store.reserve([Charge("budget:t:a", 7.0, 10.0, later())])
    assert not big.ok
    assert big.denied == 0
    assert big.levels == [pytest.approx(4.0)]
    await store.settle(g, 3.0)
    assert await store.levels(["budget:t:a"]) == [pytest.approx(3.0)]
    g2 = await store.reserve([Charge("budget:t:a", 7.0, 10.0, later())])
    assert g2.ok
    await store.settle(g2, 0.5)
    await store.settle(g2, 0.5)  # settling twice counts once
    assert await store.levels(["budget:t:a"]) == [pytest.approx(3.5)]


async def test_all_or_nothing(store: Store) -> None:
    ok = Charge("x:1", 1.0, 5.0, later())
    over = Charge("x:2", 6.0, 5.0, later())
    g = await store.reserve([ok, over])
    assert not g.ok
    assert g.denied == 1
    assert await store.levels(["x:1", "x:2"]) == [0.0, 0.0]


async def test_counted_charges_and_add(store: Store) -> None:
    rpm = Charge("rl:req:k", 1, 2, later(), hold=False)
    assert (await store.reserve([rpm])).ok
    g = await store.reserve([rpm])
    assert g.ok
    assert g.levels == [pytest.approx(2)]
    assert not (await store.reserve([rpm])).ok
    await store.settle(g, 0)  # nothing held: settling changes nothing
    await store.add("rl:tok:k", 120, later())
    assert await store.levels(["rl:req:k", "rl:tok:k"]) == [pytest.approx(2), pytest.approx(120)]


async def test_concurrent_reservations_never_exceed_the_limit(store: Store) -> None:
    async def one() -> bool:
        g = await store.reserve([Charge("budget:race:d", 1.0, 50.0, later()), Charge("budget:race:m", 1.0, 500.0,
                                                                                   later())])
        if g.ok:
            await asyncio.sleep(0)
            await store.settle(g, 1.0)
        return g.ok

    results = await asyncio.gather(*(one() for _ in range(200)))
    assert sum(results) == 50
    assert await store.levels(["budget:race:d", "budget:race:m"]) == [pytest.approx(50.0), pytest.approx(50.0)]


async def test_ledger_rollups(store: Store) -> None:
    now = time.time()
    await store.record(SpendEntry("acme/web", "gpt-5", "cloud-high", cost_usd=0.01, baseline_usd=0.01,
                                  tokens_in=100, tokens_out=50, ts=now, request_id="r1"))
    await store.record(SpendEntry("acme/web", "qwen3:8b", "local-small", cost_usd=0.0, baseline_usd=0.004,
                                  tokens_in=10, tokens_out=5, ts=now, request_id="r2"))
    await store.record(SpendEntry("acme/web", "gpt-5", "cloud-high", cache_hit=True, baseline_usd=0.01, ts=now))
    await store.record(SpendEntry("acme/web", "gpt-5-mini", "cloud-mini", failed=True, ts=now))
    g = await store.reserve([Charge("b", 1.0, 5.0, later())])
    await store.settle(g, 0.5, SpendEntry("other/x", "gpt-5", "cloud-high", cost_usd=0.5, baseline_usd=0.5, ts=now))
    rows = {r.tenant: r for r in await store.spend("day")}
    assert set(rows) == {"acme/web", "other/x"}
    a = rows["acme/web"]
    assert (a.requests, a.cache_hits, a.failed_attempts) == (3, 1, 1)
    assert a.cost_usd == pytest.approx(0.01)
    assert a.savings_usd == pytest.approx(0.014)
    assert a.by_model["gpt-5"]["requests"] == 2
    assert a.by_model["gpt-5-mini"]["failed_attempts"] == 1
    assert a.by_tier["local-small"]["cost_usd"] == 0.0
    assert (a.tokens_in, a.tokens_out) == (110, 55)
    month = await store.spend("month", tenant="other/x")
    assert [r.tenant for r in month] == ["other/x"]
    assert month[0].cost_usd == pytest.approx(0.5)
    assert await store.spend("day", period="1999-01-01") == []


async def test_records(store: Store) -> None:
    assert await store.get("keys/k1") is None
    await store.put("keys/k1", {"name": "web", "tenant": "acme/web", "limits": {"rpm": 5}})
    await store.put("keys/k2", {"name": "batch"})
    await store.put("other/k3", {})
    assert await store.get("keys/k1") == {"name": "web", "tenant": "acme/web", "limits": {"rpm": 5}}
    assert [k for k, _ in await store.scan("keys/")] == ["keys/k1", "keys/k2"]
    assert await store.get("other/k3") == {}
    assert await store.delete("keys/k2") is True
    assert await store.delete("keys/k2") is False
    assert await store.incr("fb/t1", "up") == 1
    assert await store.incr("fb/t1", "up", 2.5) == 3.5
    assert (await store.get("fb/t1")) == {"up": 3.5}
    await store.put("tmp", {"a": 1}, ttl_s=0.05)
    await store.incr("tmpc", "n", ttl_s=0.05)
    await asyncio.sleep(0.12)
    assert await store.get("tmp") is None
    assert await store.get("tmpc") is None
    assert [k for k, _ in await store.scan("tmp")] == []


async def test_incr_many(store: Store) -> None:
    await store.incr_many("adaptive/t/d1", {"a": 1.5, "b": -0.5})
    await store.incr_many("adaptive/t/d1", {"a": 1, "c": 2})
    assert await store.get("adaptive/t/d1") == {"a": 2.5, "b": -0.5, "c": 2}
    await store.incr_many("adaptive/t/d2", {"a": 1}, ttl_s=0.05)
    await asyncio.sleep(0.12)
    assert [k for k, _ in await store.scan("adaptive/")] == ["adaptive/t/d1"]


async def test_put_many(store: Store) -> None:
    await store.put_many([("fbr/a", {"t": "acme/web", "c": True}), ("fbr/b", {"t": None})], ttl_s=30)
    await store.put_many([("fbr/b", {"t": "x"})])
    assert await store.get("fbr/a") == {"t": "acme/web", "c": True}
    assert await store.get("fbr/b") == {"t": "x"}
    await store.put_many([])


def test_spend_entry_field_order() -> None:
    """The budget builds ledger entries positionally (middleware/budget.py, `Spend._entry`): this order is
    what it relies on."""
    import dataclasses

    assert [f.name for f in dataclasses.fields(SpendEntry)] == [
        "tenant", "model", "tier", "cost_usd", "baseline_usd", "tokens_in", "tokens_out", "tokens_cached",
        "usage_source", "cache_hit", "failed", "request_id", "key", "endpoint", "backend", "status", "ts"]


def test_bad_urls() -> None:
    with pytest.raises(StoreURLError):
        open_store("postgres://x")
    with pytest.raises(StoreURLError):
        open_store("sqlite:///")


async def test_sqlite_two_processes_share_one_limit(tmp_path: Path) -> None:
    """Two stores on one file stand for two workers: leases keep the sum under the limit."""
    url = f"sqlite:///{tmp_path}/shared.db"
    a, b = open_store(url), open_store(url)
    await a.start()
    await b.start()

    async def one(s: Store) -> bool:
        g = await s.reserve([Charge("budget:two", 1.0, 40.0, later())])
        if g.ok:
            await s.settle(g, 1.0)
        return g.ok

    results = await asyncio.gather(*(one(a if i % 2 else b) for i in range(120)))
    assert sum(results) == 40
    await a.aclose()
    await b.aclose()
    c = open_store(url)
    await c.start()
    assert await c.levels(["budget:two"]) == [pytest.approx(40.0)]
    await c.aclose()


async def test_sqlite_persists_and_flushes_within_the_window(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/p.db"
    s = open_store(url)
    await s.start()
    g = await s.reserve([Charge("budget:p", 2.0, 10.0, later())])
    await s.settle(g, 1.25, SpendEntry("t/p", "gpt-5", "cloud-high", cost_usd=1.25, ts=time.time()))
    await asyncio.sleep(sqlite_mod.FLUSH_S * 3)  # written behind, without aclose
    other = open_store(url)
    await other.start()
    assert await other.levels(["budget:p"]) == [pytest.approx(1.25)]
    assert (await other.spend("day"))[0].cost_usd == pytest.approx(1.25)
    await other.aclose()
    await s.aclose()


async def test_redis_two_clients_share_one_limit() -> None:
    require_redis()
    prefix = new_prefix()
    a, b = open_store(redis_url(prefix)), open_store(redis_url(prefix))
    try:
        async def one(s: Store) -> bool:
            g = await s.reserve([Charge("budget:two", 1.0, 30.0, later())])
            if g.ok:
                await s.settle(g, 1.0)
            return g.ok

        results = await asyncio.gather(*(one(a if i % 2 else b) for i in range(100)))
        assert sum(results) == 30
    finally:
        await a.aclose()
        await b.aclose()
        delete_prefix(prefix)


async def test_redis_releases_holds_of_a_dead_process(monkeypatch: pytest.MonkeyPatch) -> None:
    require_redis()
    from router.state import redis as redis_mod

    prefix = new_prefix()
    s = open_store(redis_url(prefix))
    try:
        monkeypatch.setattr(redis_mod, "HOLD_TTL_S", 0.05)
        assert (await s.reserve([Charge("b:dead", 5.0, 5.0, later())])).ok  # never settled: its process "died"
        await asyncio.sleep(0.1)
        assert (await s.reserve([Charge("b:dead", 5.0, 5.0, later())])).ok
    finally:
        await s.aclose()
        delete_prefix(prefix)


async def test_sqlite_limit_holds_across_flushes_and_lease_requests(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Reservations, lease requests and write-behind flushes interleave for a while: never over the limit."""
    monkeypatch.setattr(sqlite_mod, "FLUSH_S", 0.01)
    url = f"sqlite:///{tmp_path}/flush.db"
    a, b = open_store(url), open_store(url)
    await a.start()
    await b.start()
    done = []

    async def one(s: Store, i: int) -> None:
        await asyncio.sleep((i % 17) / 1000)
        g = await s.reserve([Charge("budget:f", 1.0, 60.0, later())])
        if g.ok:
            await asyncio.sleep((i % 5) / 1000)
            await s.settle(g, 1.0)
            done.append(1)

    await asyncio.gather(*(one(a if i % 3 else b, i) for i in range(400)))
    await a.aclose()
    await b.aclose()
    c = open_store(url)
    await c.start()
    level = (await c.levels(["budget:f"]))[0]
    await c.aclose()
    assert len(done) <= 60
    assert level == pytest.approx(len(done))


class FakeClock:
    """time.time and time.monotonic for router/state/sqlite.py, moved only by the test (deterministic leases)."""

    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 1_000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, s: float) -> None:
        self.wall += s
        self.mono += s


async def _quiet_stores(url: str, n: int) -> list[Store]:
    """`n` SQLite stores (workers) on one file with their write-behind timers stopped: flushes only when asked."""
    stores = [open_store(url) for _ in range(n)]
    for s in stores:
        await s.start()
        s._timer.cancel()  # type: ignore[attr-defined]
    return stores


async def test_sqlite_lease_is_used_only_while_the_database_still_counts_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lease request whose transaction is slow to come back (a WAL checkpoint, a starved loop) must not
    stretch the lease's local life past its life in the database: once the database lets it expire, another
    worker may lease the same headroom."""
    clock = FakeClock()
    monkeypatch.setattr(sqlite_mod, "time", clock)
    monkeypatch.setattr(sqlite_mod, "FLUSH_S", 0.01)  # the wait for other workers' flushes before a refusal
    ttl = sqlite_mod.LEASE_TTL_S
    a, b = await _quiet_stores(f"sqlite:///{tmp_path}/lapse.db", 2)
    end = clock.time() + 86400
    acquire = a._acquire  # type: ignore[attr-defined]

    def slow_commit(db: object, needs: object) -> object:
        out = acquire(db, needs)
        clock.advance(ttl * 0.6)  # the transaction started 0.6 TTL before the loop sees its answer
        return out

    a._acquire = slow_commit  # type: ignore[attr-defined]
    g = await a.reserve([Charge("budget:lapse", 1.0, 10.0, end)])
    assert g.ok
    await a.settle(g, 0.0)  # a's lease is free again; a keeps it
    a._acquire = acquire  # type: ignore[attr-defined]
    clock.advance(ttl * 0.45)  # past the lease's expiry in the database (1.05 TTL after the transaction)
    big = await b.reserve([Charge("budget:lapse", 10.0, 10.0, end)])
    small = await a.reserve([Charge("budget:lapse", 1.0, 10.0, end)])
    assert not (big.ok and small.ok), "two workers granted 11 against a limit of 10"
    for s in (a, b):
        await s.aclose()


async def test_sqlite_refused_reservation_leases_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """All or nothing: a reservation refused on one counter grows no lease on the others."""
    clock = FakeClock()
    monkeypatch.setattr(sqlite_mod, "time", clock)
    (a,) = await _quiet_stores(f"sqlite:///{tmp_path}/aon.db", 1)
    end = clock.time() + 86400
    g = await a.reserve([Charge("budget:ok", 1.0, 10.0, end), Charge("budget:short", 5.0, 4.0, end)])
    assert not g.ok
    assert g.denied == 1
    leases = await a._run(lambda: a._db.execute("SELECT COUNT(*) FROM leases").fetchone()[0])  # type: ignore[attr-defined]
    assert leases == 0
    await a.aclose()


async def test_sqlite_closing_gives_every_lease_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that stops cleanly (a reload, a scale-down) leaves no lease behind to hold others back."""
    clock = FakeClock()
    monkeypatch.setattr(sqlite_mod, "time", clock)
    url = f"sqlite:///{tmp_path}/close.db"
    a, b = await _quiet_stores(url, 2)
    end = clock.time() + 86400
    g = await a.reserve([Charge("budget:close", 1.0, 10.0, end)])
    await a.settle(g, 0.0)  # a keeps a free lease
    await a.aclose()
    whole = await b.reserve([Charge("budget:close", 10.0, 10.0, end)])  # all of it, at once
    assert whole.ok
    await b.aclose()



async def test_memory_ledger_is_bounded_and_its_reports_exact() -> None:
    """`memory://` keeps only the most recent raw entries (a ring of LEDGER_MAX); the rollups the reports read
    keep every entry, past the bound too."""
    from router.state import memory

    st = memory.MemoryStore()
    assert st.ledger.maxlen == memory.LEDGER_MAX
    st.ledger = type(st.ledger)(maxlen=100)
    for i in range(600):
        await st.record(SpendEntry("acme/web", "gpt-5", "cloud-high", 0.5, 1.0, 10, 20, request_id=f"r{i}",
                                   ts=time.time()))
    assert len(st.ledger) == 100
    assert [e.request_id for e in st.ledger] == [f"r{i}" for i in range(500, 600)]
    rows = await st.spend("day")
    assert rows[0].requests == 600
    assert rows[0].cost_usd == pytest.approx(300.0)
    assert rows[0].tokens_out == 600 * 20


async def test_count_nowait_is_reserve_without_holds(store: Store) -> None:
    """`count_nowait` (the rate limit's path) counts like `reserve` of hold=False charges, or answers None and
    changes nothing; a store without it (counts_now False) always answers None."""
    keys, end = ["rl:r:x:t1", "rl:t:x:t1"], later()
    got = store.count_nowait(keys, [1, 40], [3.0, 100.0], end)
    if not store.counts_now:
        assert got is None
        return
    assert got == [1.0, 40.0]
    assert store.count_nowait(keys, [1, 70], [3.0, 100.0], end) is None  # tokens over: nothing counted
    assert store.levels_nowait(keys) == [1.0, 40.0]
    g = await store.reserve([Charge(k, a, lim, end, hold=False) for k, a, lim in zip(keys, [1, 70], [3.0, 100.0],
                                                                                     strict=True)])
    assert (g.ok, g.denied, g.levels) == (False, 1, [1.0, 40.0])
    assert store.count_nowait(keys, [1, 60], [3.0, 100.0], end) == [2.0, 100.0]
    assert store.count_nowait(keys, [1, 0], [3.0, 100.0], end) == [3.0, 100.0]
    assert store.count_nowait(keys, [1, 0], [3.0, 100.0], end) is None  # requests over
    assert await store.levels(keys) == [3.0, 100.0]


async def test_hold_nowait_is_reserve_of_one_amount(store: Store) -> None:
    """`hold_nowait` (the budget's path) holds like `reserve` and its Grant settles like reserve's; or it answers
    None and changes nothing (then `reserve` with the Charges answers in full)."""
    keys, limits, ends = ["budget:t:h:d1", "budget:t:h:m1"], [10.0, 12.0], [later(), later(120)]
    g = store.hold_nowait(keys, 4.0, limits, ends)
    if g is None:  # a store without the path (or that must wait): the Charges' way
        g = await store.reserve([Charge(k, 4.0, lim, e) for k, lim, e in zip(keys, limits, ends, strict=True)])
    else:
        assert [(c.key, c.amount, c.limit, c.expires_at, c.hold) for c in g.charges] == [
            (k, 4.0, lim, e, True) for k, lim, e in zip(keys, limits, ends, strict=True)]
    assert g.ok
    assert g.levels == [pytest.approx(4.0), pytest.approx(4.0)]
    assert store.hold_nowait(keys, 9.0, limits, ends) is None  # over the daily limit: nothing held
    assert await store.levels(keys) == [pytest.approx(4.0), pytest.approx(4.0)]
    await store.settle(g, 1.5)
    await store.settle(g, 1.5)  # once
    assert await store.levels(keys) == [pytest.approx(1.5), pytest.approx(1.5)]


async def test_meter_counts_like_count_nowait(store: Store) -> None:
    """`meter` (memory's rate-limit path): counts like `count_nowait` on the same counters (1 a request, the
    tokens where per_token), refuses without counting, `add` corrects the token counters; None elsewhere."""
    keys, end = ["rl:r:m:t1", "rl:t:m:t1"], later()
    m = store.meter(keys, [3.0, 100.0], end, (False, True))
    if m is None:
        return
    assert m.count(40) == [1, 40]
    assert m.count(70) is None  # tokens over: nothing counted
    assert store.levels_nowait(keys) == [1, 40]
    assert store.count_nowait(keys, [1, 60], [3.0, 100.0], end) == [2.0, 100.0]  # the same cells
    m.add(-50)
    assert m.count(0) == [3, 50]
    assert m.count(0) is None  # requests over
    three = store.meter(["rl:r:m:t1", "rl:t:m:t1", "rl:t:n:t1"], [9.0, 100.0, 10.0], end, (False, True, True))
    assert three is not None
    assert three.count(20) is None  # the third counter's limit
    assert three.count(5) == [4, 55, 5]
    three.add(2)
    assert await store.levels(["rl:r:m:t1", "rl:t:m:t1", "rl:t:n:t1"]) == [4, 57, 7]


async def test_account_holds_like_hold_nowait(store: Store) -> None:
    """`account` (memory's budget path): `hold` holds like `hold_nowait` on the same counters, refuses without
    holding, and its Grant settles once like any other; None elsewhere."""
    keys, limits, ends = ["budget:t:a:d1", "budget:t:a:m1"], [10.0, 12.0], [later(), later(120)]
    a = store.account(keys, limits, ends)
    if a is None:
        return
    g = a.hold(4.0)
    assert g is not None
    assert g.ok
    assert g.levels == [pytest.approx(4.0), pytest.approx(4.0)]
    assert [(c.key, c.amount, c.limit, c.expires_at, c.hold) for c in g.charges] == [
        (k, 4.0, lim, e, True) for k, lim, e in zip(keys, limits, ends, strict=True)]
    assert a.hold(9.0) is None  # over the daily limit: nothing held
    h = store.hold_nowait(keys, 2.0, limits, ends)  # the same cells
    assert h is not None
    assert await store.levels(keys) == [pytest.approx(6.0), pytest.approx(6.0)]
    await store.settle(g, 1.5)
    await store.settle(g, 1.5)  # once
    await store.settle(h, 0.5)
    assert await store.levels(keys) == [pytest.approx(2.0), pytest.approx(2.0)]
    three = store.account([*keys, "budget:k:a:d1"], [10.0, 12.0, 1.0], [*ends, later()])
    assert three is not None
    assert three.hold(1.5) is None  # the third window's limit
    g3 = three.hold(1.0)
    assert g3 is not None
    await store.settle(g3, 0.25)
    assert await store.levels([*keys, "budget:k:a:d1"]) == [pytest.approx(2.25), pytest.approx(2.25),
                                                          pytest.approx(0.25)]
