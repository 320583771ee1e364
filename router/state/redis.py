"""`redis://host:6379/0[?prefix=ai-router:]`: the store shared by many router replicas.

redis-py's asyncio client. Reservations and settlements are server-side Lua scripts (lua/reserve.lua,
lua/settle.lua), so the check and the update are one atomic step and one round trip; a settlement and its
ledger entry go out in one pipeline (one round trip too). Every key starts with the prefix (default
`ai-router:`), so several deployments or tests can share one Redis; nothing here ever flushes a database.

Keys: `{p}c:{counter}` (hash: used, held, r:<grant> amounts) and `{p}c:{counter}:h` (zset of hold
expiries: a hold whose process died is released after HOLD_TTL_S), `{p}g:{grant}` (settled once marker),
`{p}spend:{period}:{tenant}` (rollup hash, fields `model\\ttier\\tmetric`), `{p}spend:{period}` (the
period's tenants), `{p}ledger` (a capped stream of raw entries), `{p}rec:{key}` (records: a hash of
JSON-encoded fields, so `incr` is HINCRBYFLOAT).
"""

from __future__ import annotations

import asyncio
import time
from importlib.resources import files
from typing import Any

import orjson
import redis.asyncio as aioredis

from router.state.base import (
    HOLD_TTL_S,
    METRICS,
    Charge,
    Grant,
    SpendEntry,
    SpendRow,
    Store,
    build_rows,
    entry_metrics,
    entry_periods,
)
from router.state.windows import period_id

LEDGER_MAXLEN = 1_000_000
MAX_CONNECTIONS = 64  # per process; more concurrent calls wait for a free connection
LEVELS_FRESH_S = 1.0
_HIDDEN = b"\x00"  # every record hash has this field, so an empty record still exists


def _lua(name: str) -> str:
    return files("router.state").joinpath("lua", name).read_text(encoding="utf-8")


class RedisStore(Store):
    def __init__(self, url: str, prefix: str = "ai-router:") -> None:
        self.url = url
        self.prefix = prefix
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=10)
        self.r = aioredis.Redis(connection_pool=pool, decode_responses=False)
        self._reserve = self.r.register_script(_lua("reserve.lua"))
        self._settle = self.r.register_script(_lua("settle.lua"))
        self._levels: dict[str, tuple[float, float]] = {}

    async def start(self) -> None:
        await self.r.ping()

    async def aclose(self) -> None:
        pending = list(self.__dict__.get("_tasks", ()))
        if pending:  # settlements and ledger entries still on their way
            await asyncio.gather(*pending, return_exceptions=True)
        await self.r.aclose()
        await self.r.connection_pool.disconnect()

    # ------------------------------------------------------------ counters

    def _ckeys(self, keys: Any) -> list[str]:
        out = []
        for k in keys:
            h = f"{self.prefix}c:{k}"
            out += (h, h + ":h")
        return out

    async def reserve(self, charges: tuple[Charge, ...] | list[Charge]) -> Grant:
        charges = tuple(charges)
        g = Grant(False, charges, [])
        args: list[Any] = [repr(time.time()), g.id, repr(HOLD_TTL_S)]
        for c in charges:
            args += (repr(float(c.amount)), repr(float(c.limit)), repr(float(c.expires_at)), "1" if c.hold else "0")
        res = await self._reserve(keys=self._ckeys(c.key for c in charges), args=args)
        g.ok = res[0] == 1
        g.denied = None if g.ok else int(res[1]) - 1
        g.levels = [float(x) for x in res[2:]]
        now = time.monotonic()
        for c, lvl in zip(charges, g.levels, strict=True):
            self._levels[c.key] = (lvl, now)
        return g

    async def settle(self, grant: Grant, actual: float, entry: SpendEntry | None = None) -> None:
        pipe = self.r.pipeline(transaction=False)
        if grant.ok and not grant.settled:
            grant.settled = True
            held = grant.held
            for c in held:
                self._levels.pop(c.key, None)
            if held:
                keys = [*self._ckeys(c.key for c in held), f"{self.prefix}g:{grant.id}"]
                await self._settle(keys=keys, args=[grant.id, repr(float(actual)), int(HOLD_TTL_S * 2)], client=pipe)
        if entry is not None:
            self._record(pipe, entry)
        if len(pipe):
            await pipe.execute()

    async def add(self, key: str, amount: float, expires_at: float) -> None:
        h = f"{self.prefix}c:{key}"
        self._levels.pop(key, None)
        pipe = self.r.pipeline(transaction=False)
        pipe.hincrbyfloat(h, "used", amount)
        pipe.expireat(h, int(expires_at) + 3600)
        await pipe.execute()

    def levels_nowait(self, keys: list[str]) -> list[float] | None:
        now = time.monotonic()
        out = []
        for k in keys:
            c = self._levels.get(k)
            if c is None or now - c[1] >= LEVELS_FRESH_S:
                return None
            out.append(c[0])
        return out

    async def levels(self, keys: list[str]) -> list[float]:
        cached = self.levels_nowait(keys)
        if cached is not None:
            return cached
        now = time.monotonic()
        pipe = self.r.pipeline(transaction=False)
        for k in keys:
            pipe.hmget(f"{self.prefix}c:{k}", "used", "held")
        out = []
        for k, (used, held) in zip(keys, await pipe.execute(), strict=True):
            lvl = float(used or 0) + float(held or 0)
            self._levels[k] = (lvl, now)
            out.append(lvl)
        return out

    # ------------------------------------------------------------ ledger

    def _record(self, pipe: Any, e: SpendEntry) -> None:
        if not e.ts:
            e.ts = time.time()
        inc = entry_metrics(e)
        for period in entry_periods(e):
            h = f"{self.prefix}spend:{period}:{e.tenant}"
            for name, v in zip(METRICS, inc, strict=True):
                if v:
                    pipe.hincrbyfloat(h, f"{e.model}\t{e.tier}\t{name}", v)
            pipe.sadd(f"{self.prefix}spend:{period}", e.tenant)
        fields = {k: (int(v) if isinstance(v, bool) else v) for k, v in e.as_dict().items()}
        pipe.xadd(f"{self.prefix}ledger", fields, maxlen=LEDGER_MAXLEN, approximate=True)

    async def record(self, entry: SpendEntry) -> None:
        pipe = self.r.pipeline(transaction=False)
        self._record(pipe, entry)
        await pipe.execute()

    async def spend(self, window: str = "day", period: str | None = None, tenant: str | None = None
                    ) -> list[SpendRow]:
        pid = period_id(window, period)
        if tenant is None:
            tenants = sorted(t.decode() for t in await self.r.smembers(f"{self.prefix}spend:{pid}"))
        else:
            tenants = [tenant]
        pipe = self.r.pipeline(transaction=False)
        for t in tenants:
            pipe.hgetall(f"{self.prefix}spend:{pid}:{t}")
        parts: dict[tuple[str, str, str], list[float]] = {}
        for t, h in zip(tenants, await pipe.execute(), strict=True):
            for f, v in h.items():
                model, tier, metric = f.decode().split("\t")
                vals = parts.setdefault((t, model, tier), [0.0] * len(METRICS))
                vals[METRICS.index(metric)] = float(v)
        return build_rows(window, pid, parts)

    # ------------------------------------------------------------ records

    def _rk(self, key: str) -> str:
        return f"{self.prefix}rec:{key}"

    async def get(self, key: str) -> dict[str, Any] | None:
        h = await self.r.hgetall(self._rk(key))
        if not h:
            return None
        return {f.decode(): orjson.loads(v) for f, v in h.items() if f != _HIDDEN}

    async def put(self, key: str, value: dict[str, Any], ttl_s: float | None = None) -> None:
        k = self._rk(key)
        mapping: dict[Any, bytes] = {_HIDDEN: b"1", **{f: orjson.dumps(v) for f, v in value.items()}}
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(k)
        pipe.hset(k, mapping=mapping)
        if ttl_s is not None:
            pipe.pexpire(k, max(1, int(ttl_s * 1000)))
        await pipe.execute()

    async def put_many(self, items: list[tuple[str, dict[str, Any]]], ttl_s: float | None = None) -> None:
        pipe = self.r.pipeline(transaction=False)
        for key, value in items:
            k = self._rk(key)
            pipe.delete(k)
            pipe.hset(k, mapping={_HIDDEN: b"1", **{f: orjson.dumps(v) for f, v in value.items()}})
            if ttl_s is not None:
                pipe.pexpire(k, max(1, int(ttl_s * 1000)))
        await pipe.execute()

    async def delete(self, key: str) -> bool:
        return bool(await self.r.delete(self._rk(key)))

    async def scan(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        base = self._rk("")
        pattern = base + "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
        keys = sorted({k async for k in self.r.scan_iter(match=pattern, count=500)})
        out = []
        for k in keys:
            name = k.decode()[len(base):]
            v = await self.get(name)
            if v is not None:
                out.append((name, v))
        return out

    async def incr(self, key: str, field: str, by: float = 1, ttl_s: float | None = None) -> float:
        k = self._rk(key)
        pipe = self.r.pipeline(transaction=True)
        pipe.hincrbyfloat(k, field, by)
        pipe.hset(k, _HIDDEN, b"1")
        if ttl_s is not None:
            pipe.pexpire(k, max(1, int(ttl_s * 1000)))
        res = await pipe.execute()
        return float(res[0])

    async def incr_many(self, key: str, deltas: dict[str, float], ttl_s: float | None = None) -> None:
        k = self._rk(key)
        pipe = self.r.pipeline(transaction=True)
        for field, by in deltas.items():
            pipe.hincrbyfloat(k, field, by)
        pipe.hset(k, _HIDDEN, b"1")
        if ttl_s is not None:
            pipe.pexpire(k, max(1, int(ttl_s * 1000)))
        await pipe.execute()
