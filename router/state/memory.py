"""`memory://`: the store in one process's memory. Exact and fast; nothing survives a restart.

For a single worker, tests and the demo. Each call runs without awaiting anything, so it is atomic on
the event loop. A counter is one `[used, held, expires_at]` cell (one lookup per charge). Expired
counters (once nothing is held on them) and records are swept lazily (every SWEEP_EVERY writes).

The spend ledger is two things: the per-day rollups (`base.Rollup`: every entry ever recorded, summed per
tenant, model and tier), which `spend()` reads, so `/admin/spend` and `ai-router spend` are exact however
long the process runs; and the most recent `LEDGER_MAX` raw entries (`self.ledger`, a ring), kept for
inspection and bounded, so memory stays flat under any load (it held up to 100,000, ~35 MB, before).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from router.state.base import EPS, Charge, Grant, Rollup, SpendEntry, SpendRow, Store, granted
from router.state.base import Account as BaseAccount
from router.state.base import Meter as BaseMeter
from router.state.windows import period_id

_new = object.__new__
SWEEP_EVERY = 4096
# recent raw entries kept for inspection (~345 bytes each: ~3.5 MB at most); the rollups, which /admin/spend
# and `ai-router spend` read, keep every entry
LEDGER_MAX = 10_000


class Held(Grant):
    """`hold_nowait`'s Grant: the same amount held on each of `keys` (its Charges are made only if asked for)."""

    __slots__ = ("amount", "ends", "keys", "limits")

    @property  # type: ignore[override]
    def charges(self) -> tuple[Charge, ...]:  # type: ignore[override]
        return tuple(Charge(k, self.amount, lim, end) for k, lim, end in zip(self.keys, self.limits, self.ends,
                                                                             strict=True))


class Meter(BaseMeter):
    """`MemoryStore.meter`'s: the counters' cells held directly, so counting looks no key up. The cells are the
    store's own (`counters`), made at once for the window: while it lasts (its requests' corrections included)
    the sweep, which drops only expired cells, cannot take them. Counts stay ints when every amount is one."""

    __slots__ = ("cells", "limits", "per_token", "r", "r_limit", "t", "t_limit")

    def __init__(self, cells: list[list[Any]], limits: list[float], per_token: tuple[bool, ...]) -> None:
        self.cells = cells
        self.limits = [lim + EPS for lim in limits]  # (a level within EPS of its limit still fits)
        self.per_token = per_token
        self.r: list[Any] | None = None
        if per_token == (False, True):  # the usual shape (an rpm and a tpm counter): unrolled in count
            self.r, self.t = cells
            self.r_limit, self.t_limit = self.limits

    def count(self, tokens: int) -> list[float] | None:
        r = self.r
        if r is not None:
            t = self.t
            lr = r[0] + r[1] + 1
            lt = t[0] + t[1] + tokens
            if lr > self.r_limit or lt > self.t_limit:
                return None
            r[0] += 1
            t[0] += tokens
            return [lr, lt]
        levels = []
        for cell, limit, per_token in zip(self.cells, self.limits, self.per_token, strict=True):
            level = cell[0] + cell[1] + (tokens if per_token else 1)
            if level > limit:
                return None
            levels.append(level)
        for cell, per_token in zip(self.cells, self.per_token, strict=True):
            cell[0] += tokens if per_token else 1
        return levels

    def add(self, tokens: float) -> None:
        if self.r is not None:
            self.t[0] += tokens
            return
        for cell, per_token in zip(self.cells, self.per_token, strict=True):
            if per_token:
                cell[0] += tokens


class Hold(Grant):
    """`Account.hold`'s Grant: the same amount held on each of the account's cells."""

    __slots__ = ("account", "amount")

    @property  # type: ignore[override]
    def charges(self) -> tuple[Charge, ...]:  # type: ignore[override]
        a = self.account
        return tuple(Charge(k, self.amount, lim, end) for k, lim, end in zip(a.keys, a.limits, a.ends, strict=True))


class Account(BaseAccount):
    """`MemoryStore.account`'s: the windows' cells held directly, so holding looks no key up. The cells are
    the store's own (`counters`), made at once; the sweep drops a cell only once it has expired and holds
    nothing, and a budget's plan is for one UTC day, so a live account's cells stay the store's."""

    __slots__ = ("cells", "d", "d_limit", "ends", "keys", "limits", "m", "m_limit", "over")

    def __init__(self, keys: list[str], cells: list[list[float]], limits: list[float], ends: list[float]) -> None:
        self.keys, self.cells, self.limits, self.ends = keys, cells, limits, ends
        self.over = [lim + EPS for lim in limits]  # (a level within EPS of its limit still fits)
        self.d: list[float] | None = None
        if len(cells) == 2:  # the usual shape (a daily and a monthly window): unrolled in hold
            self.d, self.m = cells
            self.d_limit, self.m_limit = self.over

    def hold(self, amount: float) -> Grant | None:
        d = self.d
        if d is not None:
            m = self.m
            ld = d[0] + d[1] + amount
            lm = m[0] + m[1] + amount
            if ld > self.d_limit or lm > self.m_limit:
                return None
            d[1] += amount
            m[1] += amount
            levels = [ld, lm]
        else:
            levels = []
            for cell, over in zip(self.cells, self.over, strict=True):
                level = cell[0] + cell[1] + amount
                if level > over:
                    return None
                levels.append(level)
            for cell in self.cells:
                cell[1] += amount
        g = _new(Hold)
        g.ok = True  # (one by one: a tuple assignment builds the tuple first)
        g.levels = levels
        g.denied = None
        g.settled = False
        g._id = ""
        g.account = self
        g.amount = amount
        return g


class MemoryStore(Store):
    url = "memory://"

    def __init__(self) -> None:
        self.counters: dict[str, list[float]] = {}  # key -> [used, held, expires_at]: one lookup per charge
        self.rollup = Rollup()
        self.ledger: deque[SpendEntry] = deque(maxlen=LEDGER_MAX)  # the oldest drops off as a new one comes
        self.records: dict[str, tuple[dict[str, Any], float | None]] = {}
        self._writes = 0

    # ------------------------------------------------------------ counters

    def _level(self, key: str) -> float:
        cell = self.counters.get(key)
        return 0.0 if cell is None else cell[0] + cell[1]

    settles_now = True

    async def reserve(self, charges: tuple[Charge, ...] | list[Charge]) -> Grant:
        return self.reserve_nowait(charges)

    def reserve_nowait(self, charges: tuple[Charge, ...] | list[Charge]) -> Grant:
        counters = self.counters
        get = counters.get
        levels = []
        cells = []
        for c in charges:
            cell = get(c.key)
            lvl = 0.0 if cell is None else cell[0] + cell[1]
            if lvl + c.amount > c.limit + EPS:
                i = len(levels)
                levels.extend(self._level(x.key) for x in charges[i:])
                return Grant(False, tuple(charges), levels, denied=i)
            levels.append(lvl)
            cells.append(cell)
        for i, c in enumerate(charges):
            cell = cells[i]
            if cell is None:  # a new counter (a refused reservation above created none)
                cell = counters[c.key] = [0.0, 0.0, c.expires_at]
            else:
                cell[2] = c.expires_at
            if c.hold:
                cell[1] += c.amount
            else:
                cell[0] += c.amount
            levels[i] += c.amount
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            self._sweep()
        return granted(tuple(charges), levels)

    counts_now = True

    def count_nowait(self, keys: list[str], amounts: list[float], limits: list[float], expires_at: float
                     ) -> list[float] | None:
        counters = self.counters
        get = counters.get
        if len(keys) == 2:  # the usual shape (an rpm and a tpm counter): unrolled, no loops nor lists to fill
            k0, k1 = keys
            c0, c1 = get(k0), get(k1)
            a0, a1 = amounts
            l0 = (0.0 if c0 is None else c0[0] + c0[1]) + a0
            l1 = (0.0 if c1 is None else c1[0] + c1[1]) + a1
            if l0 > limits[0] + EPS or l1 > limits[1] + EPS:
                return None  # reserve() gives the refusal in full
            if c0 is None:
                counters[k0] = [a0 + 0.0, 0.0, expires_at]
            else:
                c0[0] += a0
                c0[2] = expires_at
            if c1 is None:
                counters[k1] = [a1 + 0.0, 0.0, expires_at]
            else:
                c1[0] += a1
                c1[2] = expires_at
            self._writes += 1
            if self._writes % SWEEP_EVERY == 0:
                self._sweep()
            return [l0, l1]
        levels = []
        cells = []
        for i, key in enumerate(keys):
            cell = get(key)
            lvl = 0.0 if cell is None else cell[0] + cell[1]
            if lvl + amounts[i] > limits[i] + EPS:
                return None  # reserve() gives the refusal in full
            levels.append(lvl)
            cells.append(cell)
        for i, cell in enumerate(cells):
            amount = amounts[i]
            if cell is None:
                counters[keys[i]] = [amount + 0.0, 0.0, expires_at]
            else:
                cell[0] += amount
                cell[2] = expires_at
            levels[i] += amount
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            self._sweep()
        return levels

    def meter(self, keys: list[str], limits: list[float], expires_at: float, per_token: tuple[bool, ...]) -> Meter:
        counters = self.counters
        cells = []
        for key in keys:
            cell = counters.get(key)
            if cell is None:
                cell = counters[key] = [0, 0, expires_at]
                self._wrote()
            cells.append(cell)
        return Meter(cells, limits, per_token)

    def account(self, keys: list[str], limits: list[float], ends: list[float]) -> Account:
        counters = self.counters
        cells = []
        for key, end in zip(keys, ends, strict=True):
            cell = counters.get(key)
            if cell is None:
                cell = counters[key] = [0.0, 0.0, end]
                self._wrote()
            else:
                cell[2] = end  # (as each hold_nowait sets it)
            cells.append(cell)
        return Account(keys, cells, limits, ends)

    def hold_nowait(self, keys: list[str], amount: float, limits: list[float], ends: list[float]) -> Grant | None:
        counters = self.counters
        get = counters.get
        if len(keys) == 2:  # the usual shape (a daily and a monthly window): unrolled, as in count_nowait
            k0, k1 = keys
            c0, c1 = get(k0), get(k1)
            l0 = (0.0 if c0 is None else c0[0] + c0[1]) + amount
            l1 = (0.0 if c1 is None else c1[0] + c1[1]) + amount
            if l0 > limits[0] + EPS or l1 > limits[1] + EPS:
                return None  # reserve() gives the refusal in full
            if c0 is None:
                counters[k0] = [0.0, 0.0 + amount, ends[0]]
            else:
                c0[1] += amount
                c0[2] = ends[0]
            if c1 is None:
                counters[k1] = [0.0, 0.0 + amount, ends[1]]
            else:
                c1[1] += amount
                c1[2] = ends[1]
            levels = [l0, l1]
        else:
            levels = []
            cells = []
            for i, key in enumerate(keys):
                cell = get(key)
                lvl = 0.0 if cell is None else cell[0] + cell[1]
                if lvl + amount > limits[i] + EPS:
                    return None  # reserve() gives the refusal in full
                levels.append(lvl + amount)
                cells.append(cell)
            for i, cell in enumerate(cells):
                if cell is None:
                    counters[keys[i]] = [0.0, 0.0 + amount, ends[i]]
                else:
                    cell[1] += amount
                    cell[2] = ends[i]
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            self._sweep()
        g = _new(Held)
        g.ok, g.levels, g.denied, g.settled, g._id = True, levels, None, False, ""
        g.keys, g.amount, g.limits, g.ends = keys, amount, limits, ends
        return g

    async def settle(self, grant: Grant, actual: float, entry: SpendEntry | None = None) -> None:
        self.settle_nowait(grant, actual, entry)

    def settle_nowait(self, grant: Grant, actual: float, entry: SpendEntry | None = None) -> None:
        if grant.ok and not grant.settled:
            grant.settled = True
            cls = grant.__class__
            if cls is Hold:  # an account's: one amount on each of its cells
                amount = grant.amount  # type: ignore[attr-defined]
                account = grant.account  # type: ignore[attr-defined]
                d = account.d
                if d is not None:  # (unrolled, as in hold)
                    m = account.m
                    d[1] -= amount
                    d[0] += actual
                    m[1] -= amount
                    m[0] += actual
                else:
                    for cell in account.cells:
                        cell[1] -= amount
                        cell[0] += actual
                if entry is not None:
                    if not entry.ts:  # (`_record`, inline)
                        entry.ts = time.time()
                    self.rollup.add(entry)
                    self.ledger.append(entry)
                return
            if cls is Held:  # hold_nowait's: one amount on every key
                get = self.counters.get
                amount = grant.amount  # type: ignore[attr-defined]
                for key in grant.keys:  # type: ignore[attr-defined]
                    cell = get(key)
                    if cell is not None:
                        cell[1] -= amount
                        cell[0] += actual
                if entry is not None:
                    self._record(entry)
                return
            counters = self.counters
            for c in grant.charges:
                if c.hold:
                    cell = counters.get(c.key)
                    if cell is not None:  # (the sweep keeps a counter while it holds anything)
                        cell[1] -= c.amount
                        cell[0] += actual
        if entry is not None:
            self._record(entry)

    async def add(self, key: str, amount: float, expires_at: float) -> None:
        self.add_nowait(key, amount, expires_at)

    def add_nowait(self, key: str, amount: float, expires_at: float) -> None:
        cell = self.counters.get(key)
        if cell is None:
            self.counters[key] = [amount, 0.0, expires_at]
        else:
            cell[0] += amount
            if expires_at > cell[2]:
                cell[2] = expires_at

    async def levels(self, keys: list[str]) -> list[float]:
        return self.levels_nowait(keys)

    def levels_nowait(self, keys: list[str]) -> list[float]:
        get = self.counters.get
        out = []
        for k in keys:
            cell = get(k)
            out.append(0.0 if cell is None else cell[0] + cell[1])
        return out

    # ------------------------------------------------------------ ledger

    def _record(self, entry: SpendEntry) -> None:
        if not entry.ts:
            entry.ts = time.time()
        self.rollup.add(entry)
        self.ledger.append(entry)

    async def record(self, entry: SpendEntry) -> None:
        self._record(entry)

    def record_nowait(self, entry: SpendEntry) -> None:
        self._record(entry)

    async def spend(self, window: str = "day", period: str | None = None, tenant: str | None = None
                    ) -> list[SpendRow]:
        return self.rollup.rows(window, period_id(window, period), tenant)

    # ------------------------------------------------------------ records

    def _live(self, key: str) -> dict[str, Any] | None:
        r = self.records.get(key)
        if r is None:
            return None
        if r[1] is not None and r[1] <= time.time():
            del self.records[key]
            return None
        return r[0]

    async def get(self, key: str) -> dict[str, Any] | None:
        v = self._live(key)
        return None if v is None else dict(v)

    async def put(self, key: str, value: dict[str, Any], ttl_s: float | None = None) -> None:
        self.records[key] = (dict(value), None if ttl_s is None else time.time() + ttl_s)
        self._wrote()

    async def put_many(self, items: list[tuple[str, dict[str, Any]]], ttl_s: float | None = None) -> None:
        for key, value in items:
            await self.put(key, value, ttl_s)

    async def delete(self, key: str) -> bool:
        return self._live(key) is not None and self.records.pop(key, None) is not None

    async def scan(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for k in sorted(k for k in self.records if k.startswith(prefix)):
            v = self._live(k)
            if v is not None:
                out.append((k, dict(v)))
        return out

    async def incr(self, key: str, field: str, by: float = 1, ttl_s: float | None = None) -> float:
        v = self._live(key)
        if v is None:
            v = {}
            self.records[key] = (v, None if ttl_s is None else time.time() + ttl_s)
        elif ttl_s is not None:
            self.records[key] = (v, time.time() + ttl_s)
        n = v.get(field, 0) + by
        v[field] = n
        return float(n)

    async def incr_many(self, key: str, deltas: dict[str, float], ttl_s: float | None = None) -> None:
        for field, by in deltas.items():
            await self.incr(key, field, by, ttl_s)

    # ------------------------------------------------------------ housekeeping

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            self._sweep()

    def _sweep(self) -> None:
        now = time.time()
        counters = self.counters
        for k in [k for k, cell in counters.items() if cell[2] < now and abs(cell[1]) < EPS]:
            del counters[k]
        for k in [k for k, (_, t) in self.records.items() if t is not None and t <= now]:
            del self.records[k]
