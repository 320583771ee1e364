"""The store contract (documented in router/state/__init__.py) and the pieces every store shares.

`Store` is the abstract interface (with `*_nowait` forms of settle/add/record for the after-the-answer
path); `Charge`, `Grant`, `SpendEntry` and `SpendRow` are the values that cross it; `Rollup` is the
in-process spend aggregate (memory keeps it as its ledger); `open_store(url)` picks the implementation
from `state.url`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from router.config import ConfigError
from router.state import windows

HOLD_TTL_S = 900.0  # a hold not settled by then (its process died) is released
METRICS = ("requests", "cache_hits", "failed", "cost", "baseline", "tokens_in", "tokens_out")
EPS = 1e-9  # money is float USD; a level within EPS of its limit still fits


@dataclass(slots=True)
class Charge:
    """Add `amount` to counter `key` if it stays <= `limit`; the counter lives until `expires_at`."""

    key: str
    amount: float
    limit: float
    expires_at: float
    hold: bool = True


_grant_ids = itertools.count(1)
_grant_prefix = os.urandom(5).hex()


@dataclass(slots=True)
class Grant:
    """The answer of `reserve`: granted or not, and each counter's level."""

    ok: bool
    charges: tuple[Charge, ...]
    levels: list[float]
    denied: int | None = None
    settled: bool = False
    _id: str = field(default="", repr=False)

    @property
    def id(self) -> str:
        """Unique per process and run; made on first use (only a store that keeps holds by id needs one)."""
        if not self._id:
            self._id = f"{_grant_prefix}{next(_grant_ids):x}"
        return self._id

    @property
    def held(self) -> tuple[Charge, ...]:
        return tuple(c for c in self.charges if c.hold)


_new = object.__new__


def granted(charges: tuple[Charge, ...], levels: list[float]) -> Grant:
    """`Grant(True, charges, levels)` without the dataclass `__init__`'s frame (a third of the cost; the hot path
    makes two a request, the limits' and the budget's)."""
    g = _new(Grant)
    g.ok = True
    g.charges = charges
    g.levels = levels
    g.denied = None
    g.settled = False
    g._id = ""
    return g


@dataclass(slots=True)
class SpendEntry:
    """One line of the spend ledger: an answered request (a cache hit too) or a failed upstream attempt."""

    tenant: str
    model: str
    tier: str = ""
    cost_usd: float = 0.0
    baseline_usd: float = 0.0  # the same usage on the highest tier
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    usage_source: str = "upstream"  # upstream | local (counted by the router) | none
    cache_hit: bool = False
    failed: bool = False  # a failed attempt (not billed), recorded so that nothing is lost
    request_id: str = ""
    key: str = ""
    endpoint: str = ""
    backend: str = ""
    status: int = 200
    ts: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


@dataclass(slots=True)
class SpendRow:
    """A tenant's rollup over one day or month."""

    tenant: str
    window: str
    period: str
    requests: int = 0
    cache_hits: int = 0
    failed_attempts: int = 0
    cost_usd: float = 0.0
    baseline_usd: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    by_model: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_tier: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def savings_usd(self) -> float:
        return self.baseline_usd - self.cost_usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant, "window": self.window, "period": self.period, "requests": self.requests,
            "cache_hits": self.cache_hits, "failed_attempts": self.failed_attempts,
            "cost_usd": round(self.cost_usd, 10), "baseline_usd": round(self.baseline_usd, 10),
            "savings_usd": round(self.savings_usd, 10), "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
            "by_model": self.by_model, "by_tier": self.by_tier,
        }


def entry_metrics(e: SpendEntry) -> tuple[float, ...]:
    """The rollup increments of one ledger entry, in METRICS order."""
    return (0 if e.failed else 1, 1 if e.cache_hit else 0, 1 if e.failed else 0, e.cost_usd, e.baseline_usd,
            e.tokens_in, e.tokens_out)


def entry_periods(e: SpendEntry) -> tuple[str, str]:
    return windows.periods(e.ts)


def build_rows(window: str, period: str, parts: dict[tuple[str, str, str], list[float]]) -> list[SpendRow]:
    """SpendRows from {(tenant, model, tier): METRICS values} of one period (`d…`/`m…`)."""
    rows: dict[str, SpendRow] = {}
    for (tenant, model, tier), v in sorted(parts.items()):
        r = rows.get(tenant)
        if r is None:
            r = rows[tenant] = SpendRow(tenant=tenant, window=window, period=period[1:])
        req, hits, failed, cost, base, tin, tout = v
        r.requests += int(req)
        r.cache_hits += int(hits)
        r.failed_attempts += int(failed)
        r.cost_usd += cost
        r.baseline_usd += base
        r.tokens_in += int(tin)
        r.tokens_out += int(tout)
        for bucket, name in ((r.by_model, model), (r.by_tier, tier or "-")):
            b = bucket.setdefault(name, {"requests": 0, "cache_hits": 0, "failed_attempts": 0, "cost_usd": 0.0})
            b["requests"] += int(req)
            b["cache_hits"] += int(hits)
            b["failed_attempts"] += int(failed)
            b["cost_usd"] = round(b["cost_usd"] + cost, 10)
    return list(rows.values())


class Rollup:
    """Spend aggregated in process, per UTC day: {day id: {(tenant, model, tier): METRICS values}}. A month's
    rows sum its days, so an entry updates one aggregate, not one per window."""

    __slots__ = ("_day", "_end", "_last", "_model", "_start", "_tenant", "_tier", "days")

    def __init__(self) -> None:
        self.days: dict[str, dict[tuple[str, str, str], list[float]]] = {}
        self._day: dict[tuple[str, str, str], list[float]] = {}  # the day [_start, _end) last added to
        self._start = self._end = 0.0
        # the aggregate last added to, and its (tenant, model, tier): a server's entries mostly repeat them, the
        # very same strings, so an identity test finds it without making and hashing the key
        self._last: list[float] | None = None
        self._tenant = self._model = self._tier = ""

    def add(self, e: SpendEntry) -> None:
        ts = e.ts
        if not self._start <= ts < self._end:
            day, self._end = windows.day(ts)
            self._start = self._end - 86400
            self._day = self.days.setdefault(day, {})
            self._last = None
        tenant, model, tier = e.tenant, e.model, e.tier
        v = self._last
        if v is None or tenant is not self._tenant or model is not self._model or tier is not self._tier:
            k = (tenant, model, tier)
            v = self._day.get(k)
            if v is None:
                self._day[k] = v = list(entry_metrics(e))
                self._last, self._tenant, self._model, self._tier = v, tenant, model, tier
                return
            self._last, self._tenant, self._model, self._tier = v, tenant, model, tier
        # entry_metrics, added in place (METRICS order)
        if e.failed:
            v[2] += 1
        else:
            v[0] += 1
        if e.cache_hit:
            v[1] += 1
        v[3] += e.cost_usd
        v[4] += e.baseline_usd
        v[5] += e.tokens_in
        v[6] += e.tokens_out

    def rows(self, window: str, period: str, tenant: str | None) -> list[SpendRow]:
        """`period`: a day id (`d2026-12-01`) or a month id (`m2026-12`, the sum of its days)."""
        if period.startswith("d"):
            days = [self.days.get(period, {})]
        else:
            prefix = "d" + period[1:] + "-"
            days = [p for d, p in self.days.items() if d.startswith(prefix)]
        parts: dict[tuple[str, str, str], list[float]] = {}
        for p in days:
            for k, v in p.items():
                if tenant is not None and k[0] != tenant:
                    continue
                total = parts.get(k)
                if total is None:
                    parts[k] = list(v)
                else:
                    for i, x in enumerate(v):
                        total[i] += x
        return build_rows(window, period, parts)


class Store:
    """The interface every store implements (see the package docstring for the contract)."""

    url = ""

    async def start(self) -> None:
        """Open connections, load scripts, start background flushing; called once the loop runs."""

    async def aclose(self) -> None:
        """Flush whatever is pending and close."""

    async def reserve(self, charges: tuple[Charge, ...] | list[Charge]) -> Grant:
        raise NotImplementedError

    async def settle(self, grant: Grant, actual: float, entry: SpendEntry | None = None) -> None:
        raise NotImplementedError

    async def add(self, key: str, amount: float, expires_at: float) -> None:
        raise NotImplementedError

    async def levels(self, keys: list[str]) -> list[float]:
        raise NotImplementedError

    async def record(self, entry: SpendEntry) -> None:
        raise NotImplementedError

    async def spend(self, window: str = "day", period: str | None = None, tenant: str | None = None
                    ) -> list[SpendRow]:
        raise NotImplementedError

    async def get(self, key: str) -> dict[str, Any] | None:
        raise NotImplementedError

    async def put(self, key: str, value: dict[str, Any], ttl_s: float | None = None) -> None:
        raise NotImplementedError

    async def delete(self, key: str) -> bool:
        raise NotImplementedError

    async def scan(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    async def incr(self, key: str, field: str, by: float = 1, ttl_s: float | None = None) -> float:
        raise NotImplementedError

    async def incr_many(self, key: str, deltas: dict[str, float], ttl_s: float | None = None) -> None:
        raise NotImplementedError

    async def put_many(self, items: list[tuple[str, dict[str, Any]]], ttl_s: float | None = None) -> None:
        raise NotImplementedError

    # Sync fast paths (a coroutine that never suspends still costs a coroutine object and a frame per call):
    # a store that can answer at once does so; None means "await the coroutine form".
    settles_now = False  # True: settle_nowait/add_nowait/record_nowait are done before they return

    def reserve_nowait(self, charges: tuple[Charge, ...] | list[Charge]) -> Grant | None:
        """`reserve` answered without waiting (same contract), or None: call `await reserve(charges)`."""
        return None

    def levels_nowait(self, keys: list[str]) -> list[float] | None:
        """`levels` answered without waiting, or None: call `await levels(keys)`."""
        return None

    def hold_nowait(self, keys: list[str], amount: float, limits: list[float], ends: list[float]) -> Grant | None:
        """`reserve` of `Charge(keys[i], amount, limits[i], ends[i])` (a budget's worst case, held on each window)
        without making the Charges, when it is granted here and now; None when it is not (over a limit, or the
        store must wait): then call `reserve` with the Charges. The Grant settles like any other."""
        return None

    counts_now = False  # True: count_nowait answers every request that fits

    def count_nowait(self, keys: list[str], amounts: list[float], limits: list[float], expires_at: float
                     ) -> list[float] | None:
        """`reserve` of `Charge(keys[i], amounts[i], limits[i], expires_at, hold=False)` (rate limits: used at
        once, nothing to settle) without making the Charges or the Grant: the levels after, when it is granted
        here and now. None when it is not (over a limit, or the store must wait): then call `reserve` with the
        Charges, which answers in full (a refusal changed nothing)."""
        return None

    def meter(self, keys: list[str], limits: list[float], expires_at: float, per_token: tuple[bool, ...]
              ) -> Meter | None:
        """The rate limits' counters `keys` of one window (ending at `expires_at`) as a `Meter`: counted in
        process, at once, with no key lookups (memory). None: this store has none (use `count_nowait` or
        `reserve`)."""
        return None

    def account(self, keys: list[str], limits: list[float], ends: list[float]) -> Account | None:
        """The budget windows `keys` (limits, ends) as an `Account`: held in process, at once, with no key
        lookups (memory). None: this store has none (use `hold_nowait` or `reserve`)."""
        return None

    # Fire-and-forget forms for the after-the-answer path (sync: they never make the caller wait). A store
    # whose calls are local (memory, SQLite's write-behind) does them at once; others run them as tasks.

    def settle_nowait(self, grant: Grant, actual: float, entry: SpendEntry | None = None) -> None:
        self._spawn(self.settle(grant, actual, entry))

    def add_nowait(self, key: str, amount: float, expires_at: float) -> None:
        self._spawn(self.add(key, amount, expires_at))

    def record_nowait(self, entry: SpendEntry) -> None:
        self._spawn(self.record(entry))

    def _spawn(self, coro: Any) -> None:
        tasks = self.__dict__.setdefault("_tasks", set())
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)


class Meter:
    """`Store.meter`'s answer: a window's rate-limit counters, each charged 1 a request or, where `per_token`,
    the request's tokens; `count` is `count_nowait` of those amounts (the levels after, or None when one would
    go over its limit: then `reserve` answers in full), `add` an unconditional use of the token counters (the
    correction after the answer). Sync and atomic on the event loop."""

    def count(self, tokens: int) -> list[float] | None:
        raise NotImplementedError

    def add(self, tokens: float) -> None:
        raise NotImplementedError


class Account:
    """`Store.account`'s answer: a budget's windows, `hold(amount)` being `hold_nowait(keys, amount, limits,
    ends)` (a Grant that settles like any other, or None when a window would go over its limit: then
    `reserve` answers in full). Sync and atomic on the event loop."""

    def hold(self, amount: float) -> Grant | None:
        raise NotImplementedError


class StoreURLError(ConfigError):
    """A `state.url` no store understands."""


def open_store(url: str) -> Store:
    """The store for `state.url`: memory://, sqlite:///path (also sqlite:////abs/path), redis://host:port/db."""
    if url.startswith("memory://"):
        from router.state.memory import MemoryStore

        return MemoryStore()
    if url.startswith("sqlite:///"):
        from router.state.sqlite import SQLiteStore

        path = url[len("sqlite:///"):]
        if not path:
            raise StoreURLError("state.url: sqlite:/// needs a file path (sqlite:///./data/state.db)")
        return SQLiteStore(path)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from router.state.redis import RedisStore

        parts = urlsplit(url)
        q = parse_qs(parts.query)
        prefix = q.pop("prefix", ["ai-router:"])[0]
        rest = "&".join(f"{k}={v[0]}" for k, v in q.items())
        clean = parts._replace(query=rest).geturl()
        return RedisStore(clean, prefix=prefix)
    raise StoreURLError("state.url: expected memory://, sqlite:///path or redis://host:port/db")
