"""`sqlite:///path`: the embedded, persistent store, safe for `--workers N` on one host.

The database (WAL journal, `BEGIN IMMEDIATE` transactions, a 5 s busy timeout) is only ever touched from
one thread per process, so the event loop never blocks on disk or on another worker's lock.

The hot path does no I/O. Each counter has, in every process, a **lease**: a slice of the counter's
headroom that this process alone may hand out. The database invariant is

    used + sum(live leases of every process) <= limit

and a process reserves locally only within its own lease (`lease - reserved - pending >= amount`), so
the limit holds across workers without a round trip per request. When a lease runs short the process
takes a bigger one in one immediate transaction (what it needs plus a margin of 1/16 of the limit, at
most half of the headroom left after the need, never more than the headroom not leased by anyone; all
or nothing over the request's counters), or refuses; when the headroom is short only because other
workers hold leases, it waits for their next flush (at most twice FLUSH_S) before refusing. Settled use
and ledger entries are written behind, every FLUSH_S (0.25 s), in one transaction that moves them from
the lease into `used` (the sum above is unchanged, so the limit cannot be crossed in between), renews
the leases still backing in-flight holds and gives back the free rest (a closing store gives back all).

Leases expire after LEASE_TTL_S without renewal, so a killed worker's headroom comes back. A process
uses its lease locally only for half of that, timed from *before* the transaction that wrote it (the
database dates it from inside the transaction): a commit or a loop that comes back late can shorten the
local life, never stretch it past the database's, where another worker could lease the same headroom.
What no lease can cover: a worker that stops flushing for LEASE_TTL_S (10 s) while requests it admitted
are still in flight (a frozen process, a disk that fails every write) loses their holds to the others.

What a `kill -9` may lose: the spend settled in the last flush window (≤ 0.25 s) and the ledger entries
of those requests. Never more, and the database itself stays consistent (SQLite's WAL is atomic).
Records (`get`/`put`/`incr`…) are written through, one transaction per call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from router.state.base import EPS, Charge, Grant, SpendEntry, SpendRow, Store, build_rows, entry_metrics, entry_periods
from router.state.windows import period_id

log = logging.getLogger("ai_router.state")

FLUSH_S = 0.25
LEASE_TTL_S = 10.0
LEASE_FRACTION = 1 / 16
IDLE_DROP_S = 60.0
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, used REAL NOT NULL DEFAULT 0, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS leases (owner TEXT NOT NULL, key TEXT NOT NULL, amount REAL NOT NULL,
    expires_at REAL NOT NULL, PRIMARY KEY (owner, key));
CREATE INDEX IF NOT EXISTS leases_key ON leases (key);
CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, ts REAL, request_id TEXT, tenant TEXT, key TEXT,
    endpoint TEXT, model TEXT, backend TEXT, tier TEXT, cost_usd REAL, baseline_usd REAL, tokens_in INTEGER,
    tokens_out INTEGER, tokens_cached INTEGER, usage_source TEXT, cache_hit INTEGER, failed INTEGER, status INTEGER);
CREATE TABLE IF NOT EXISTS rollup (period TEXT NOT NULL, tenant TEXT NOT NULL, model TEXT NOT NULL,
    tier TEXT NOT NULL, requests REAL, cache_hits REAL, failed REAL, cost REAL, baseline REAL, tokens_in REAL,
    tokens_out REAL, PRIMARY KEY (period, tenant, model, tier));
CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL);
"""
LEDGER_COLS = ("ts", "request_id", "tenant", "key", "endpoint", "model", "backend", "tier", "cost_usd",
               "baseline_usd", "tokens_in", "tokens_out", "tokens_cached", "usage_source", "cache_hit", "failed",
               "status")
INSERT_LEDGER = f"INSERT INTO ledger ({', '.join(LEDGER_COLS)}) VALUES ({', '.join('?' * len(LEDGER_COLS))})"
UPSERT_ROLLUP = (
    "INSERT INTO rollup VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (period, tenant, model, tier) DO UPDATE SET "
    "requests = requests + excluded.requests, cache_hits = cache_hits + excluded.cache_hits, "
    "failed = failed + excluded.failed, cost = cost + excluded.cost, baseline = baseline + excluded.baseline, "
    "tokens_in = tokens_in + excluded.tokens_in, tokens_out = tokens_out + excluded.tokens_out"
)


class _Local:
    """This process's view of one counter."""

    __slots__ = ("base", "expires_at", "flushing", "last_use", "lease", "pending", "reserved", "valid_until")

    def __init__(self, expires_at: float) -> None:
        self.lease = 0.0  # my lease, as in the database
        self.reserved = 0.0  # held locally, not settled
        self.pending = 0.0  # settled or counted, not yet flushed
        self.base = 0.0  # used + other processes' live leases, at the last contact with the database
        self.expires_at = expires_at
        self.last_use = time.monotonic()
        self.valid_until = 0.0  # the lease is used locally only while surely unexpired in the database
        self.flushing = 0.0  # use on its way to the database (a flush in progress): not in `base` yet

    @property
    def free(self) -> float:
        return self.lease - self.reserved - self.pending

    @property
    def level(self) -> float:
        return self.base + self.flushing + self.reserved + self.pending


class SQLiteStore(Store):
    def __init__(self, path: str) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self.owner = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._exec: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._local: dict[str, _Local] = {}
        self._entries: list[SpendEntry] = []
        self._lock: asyncio.Lock | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._exec is not None:
            return
        self._exec = ThreadPoolExecutor(1, thread_name_prefix="ai-router-sqlite")
        self._lock = asyncio.Lock()
        await self._run(self._open)
        self._schedule()

    def _open(self) -> None:
        Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(Path(self.path).expanduser(), timeout=5.0, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(SCHEMA)
        self._db = db

    async def aclose(self) -> None:
        if self._exec is None or self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._flushing is not None:
            await self._flushing
        await self._flush(release_all=True)
        await self._run(self._close_db)
        self._exec.shutdown(wait=True)

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._exec is None:
            await self.start()
        return await asyncio.get_running_loop().run_in_executor(self._exec, fn, *args)

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in one immediate transaction (in the store's thread)."""
        db = self._db
        assert db is not None
        db.execute("BEGIN IMMEDIATE")
        try:
            out = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return out

    # ------------------------------------------------------------ counters: the fast path

    def _get(self, key: str, expires_at: float) -> _Local:
        loc = self._local.get(key)
        if loc is None:
            loc = self._local[key] = _Local(expires_at)
        return loc

    def _try_local(self, charges: tuple[Charge, ...], grace: float = 0.0) -> Grant | None:
        """Reserve from the leases without I/O, or None if some lease is short.

        A lease is used while `valid_until` (half its life in the database) has not passed; `grace`
        stretches that for the reservation a lease request was made for, answered just now."""
        local = self._local
        now = time.monotonic()
        locs = []
        for c in charges:
            loc = local.get(c.key)
            if loc is None:
                loc = local[c.key] = _Local(c.expires_at)
            if loc.lease - loc.reserved - loc.pending + EPS < c.amount or loc.valid_until + grace <= now:
                return None
            locs.append(loc)
        levels = []
        for c, loc in zip(charges, locs, strict=True):
            if c.hold:
                loc.reserved += c.amount
            else:
                loc.pending += c.amount
            loc.last_use = now
            levels.append(loc.base + loc.flushing + loc.reserved + loc.pending)
        return Grant(True, charges, levels)

    settles_now = True  # settle/add/record only touch the local leases and the write-behind queue

    def reserve_nowait(self, charges: tuple[Charge, ...] | list[Charge]) -> Grant | None:
        return self._try_local(tuple(charges))

    def levels_nowait(self, keys: list[str]) -> list[float] | None:
        local = self._local
        out = []
        for k in keys:
            loc = local.get(k)
            if loc is None:
                return None
            out.append(loc.base + loc.flushing + loc.reserved + loc.pending)
        return out

    async def reserve(self, charges: tuple[Charge, ...] | list[Charge]) -> Grant:
        charges = tuple(charges)
        g = self._try_local(charges)
        if g is not None:
            return g
        if self._lock is None:
            await self.start()
        assert self._lock is not None
        for attempt in range(3):
            async with self._lock:  # one lease request (or flush) at a time per process
                g = self._try_local(charges)
                if g is not None:
                    return g
                needs = []
                for c in charges:
                    loc = self._get(c.key, c.expires_at)
                    if loc.free + EPS < c.amount or loc.valid_until <= time.monotonic():
                        needs.append((c.key, loc.reserved + loc.pending + c.amount, c.limit, c.expires_at))
                # The database dates the lease from its transaction, which runs after this point; timing
                # its local life from here (not from when the answer comes back: a slow commit or a
                # starved loop may take seconds) keeps it at least LEASE_TTL_S / 2 inside its life there.
                asked = time.monotonic()
                leases, bases, denied, others_hold = await self._run(
                    self._tx, lambda db, n=needs: self._acquire(db, n))
                valid = asked + LEASE_TTL_S / 2
                for (key, *_), lease, base in zip(needs, leases, bases, strict=True):
                    loc = self._local[key]
                    if lease is not None:
                        loc.lease = lease
                        loc.valid_until = valid
                    if base is not None:
                        loc.base = base
                if denied is None:
                    # This reservation is in the lease just written, which the database keeps for at
                    # least LEASE_TTL_S from `asked`: granting it up to 3/4 of that leaves the next
                    # flushes ample time to renew the lease before the hold could lapse.
                    g = self._try_local(charges, grace=LEASE_TTL_S / 4)
                    if g is not None:
                        return g
                    continue
            if not others_hold or attempt == 2:
                break
            await asyncio.sleep(FLUSH_S)  # other workers hold leases: their next flush gives back the rest
        levels = [self._local[c.key].level for c in charges]
        denied_key = needs[denied][0] if denied is not None else None
        idx = next((i for i, c in enumerate(charges) if c.key == denied_key), 0)
        return Grant(False, charges, levels, denied=idx)

    def _acquire(self, db: sqlite3.Connection, needs: list[tuple[str, float, float, float]]
                 ) -> tuple[list[float | None], list[float | None], int | None, bool]:
        """In a transaction: make this process's lease on each counter cover `need` (what it has reserved,
        settled but not flushed, and now asks for), growing it from the headroom nobody has leased; all or
        nothing (a refusal writes no lease). The lease written is authoritative (an expired one counts as 0).

        A lease grows by what is needed plus a margin for the next requests: 1/16 of the limit, but never
        more than half of the headroom left after the need, so that near the limit the workers' unused
        margins shrink towards zero instead of holding back what another worker needs."""
        now = time.time()
        plan: list[tuple[str, float, float, float]] = []  # key, lease, base, expires_at
        bases: list[float | None] = []
        for i, (key, need, limit, _expires_at) in enumerate(needs):
            row = db.execute("SELECT used FROM counters WHERE key = ?", (key,)).fetchone()
            used = row[0] if row else 0.0
            others, mine = db.execute(
                "SELECT COALESCE(SUM(CASE WHEN owner != ? THEN amount END), 0), "
                "COALESCE(SUM(CASE WHEN owner = ? THEN amount END), 0) FROM leases "
                "WHERE key = ? AND expires_at > ?", (self.owner, self.owner, key, now)).fetchone()
            base = used + others
            bases.append(base)
            headroom = limit - base - mine
            extra = need - mine
            if extra > headroom + EPS:
                rest = len(needs) - i - 1
                return [None] * len(needs), bases + [None] * rest, i, extra <= headroom + others + EPS
            if extra > 0:
                extra = min(headroom, extra + min(limit * LEASE_FRACTION, max(headroom - extra, 0.0) / 2))
            plan.append((key, mine + max(extra, 0.0), base, _expires_at))
        for key, lease, _, expires_at in plan:
            db.execute("INSERT INTO counters (key, used, expires_at) VALUES (?, 0, ?) ON CONFLICT (key) DO NOTHING",
                       (key, expires_at))
            db.execute(
                "INSERT INTO leases (owner, key, amount, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (owner, key) "
                "DO UPDATE SET amount = excluded.amount, expires_at = excluded.expires_at",
                (self.owner, key, lease, now + LEASE_TTL_S))
        return [p[1] for p in plan], bases, None, False

    async def settle(self, grant: Grant, actual: float, entry: SpendEntry | None = None) -> None:
        self.settle_nowait(grant, actual, entry)

    def settle_nowait(self, grant: Grant, actual: float, entry: SpendEntry | None = None) -> None:
        if grant.ok and not grant.settled:
            grant.settled = True
            now = time.monotonic()
            for c in grant.charges:
                if c.hold:
                    loc = self._get(c.key, c.expires_at)
                    loc.reserved -= c.amount
                    loc.pending += actual
                    loc.last_use = now
        if entry is not None:
            self._add_entry(entry)

    async def add(self, key: str, amount: float, expires_at: float) -> None:
        self.add_nowait(key, amount, expires_at)

    def add_nowait(self, key: str, amount: float, expires_at: float) -> None:
        loc = self._get(key, expires_at)
        loc.pending += amount
        loc.last_use = time.monotonic()

    async def levels(self, keys: list[str]) -> list[float]:
        missing = [k for k in keys if k not in self._local]
        if missing:
            bases = await self._run(self._read_bases, missing)
            for k, b in zip(missing, bases, strict=True):
                self._get(k, time.time() + 60).base = b
        return [self._local[k].level for k in keys]

    def _read_bases(self, keys: list[str]) -> list[float]:
        db = self._db
        assert db is not None
        now = time.time()
        out = []
        for k in keys:
            row = db.execute("SELECT used FROM counters WHERE key = ?", (k,)).fetchone()
            others = db.execute("SELECT COALESCE(SUM(amount), 0) FROM leases WHERE key = ? AND owner != ? "
                                "AND expires_at > ?", (k, self.owner, now)).fetchone()[0]
            out.append((row[0] if row else 0.0) + others)
        return out

    # ------------------------------------------------------------ write-behind

    def _schedule(self) -> None:
        if not self._closed:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_S, self._tick)

    def _tick(self) -> None:
        if self._local or self._entries:
            self._flushing = asyncio.get_running_loop().create_task(self._flush_then_schedule())
        else:
            self._schedule()

    async def _flush_then_schedule(self) -> None:
        try:
            await self._flush()
        except Exception:
            log.exception("state store flush failed (will retry)")
        finally:
            self._flushing = None
            self._schedule()

    async def _flush(self, release_all: bool = False) -> None:
        """Move settled use and ledger entries to the database; renew leases; give back their free part.

        Under the lease lock: a flush writes each lease's new amount, so no lease request may run between
        computing it and writing it."""
        if self._db is None or self._lock is None:
            return
        async with self._lock:
            await self._flush_locked(release_all)

    async def _flush_locked(self, release_all: bool) -> None:
        now_m = time.monotonic()
        now = time.time()
        deltas: list[tuple[str, float, float, float]] = []  # key, used delta, new lease, expires_at
        for key, loc in list(self._local.items()):
            used = loc.pending
            had_lease = loc.lease > 0
            loc.pending = 0.0
            loc.flushing += used
            loc.lease = max(loc.reserved, 0.0)  # give back the free part: other workers may need it
            if used or loc.lease or loc.reserved:
                deltas.append((key, used, max(loc.lease, 0.0), loc.expires_at))
            elif now_m - loc.last_use > IDLE_DROP_S or loc.expires_at < now or release_all:
                del self._local[key]
                if had_lease:  # dropped here, but its lease in the database goes too (not left to expire)
                    deltas.append((key, 0.0, 0.0, loc.expires_at))
            else:
                deltas.append((key, 0.0, 0.0, loc.expires_at))
        entries, self._entries = self._entries, []
        if not deltas and not entries:
            return
        try:
            bases = await self._run(self._tx, lambda db: self._write(db, deltas, entries))
        except Exception:
            for key, used, _, exp in deltas:  # keep them for the next flush
                if not used and key not in self._local:
                    continue  # dropped: nothing to keep (its lease expires in the database instead)
                loc = self._get(key, exp)
                loc.flushing -= used
                loc.pending += used
                loc.lease += used
            self._entries[:0] = entries
            raise
        valid = now_m + LEASE_TTL_S / 2
        for (key, used, *_), base in zip(deltas, bases, strict=True):
            loc = self._local.get(key)
            if loc is not None:
                loc.base = base  # now includes what this flush wrote
                loc.flushing -= used
                loc.valid_until = valid  # renewed just now

    def _write(self, db: sqlite3.Connection, deltas: list[tuple[str, float, float, float]],
               entries: list[SpendEntry]) -> list[float]:
        now = time.time()
        bases = []
        for key, used, lease, expires_at in deltas:
            if used:
                db.execute("INSERT INTO counters (key, used, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) "
                           "DO UPDATE SET used = used + excluded.used", (key, used, expires_at))
            if lease > 0:
                db.execute("UPDATE leases SET amount = ?, expires_at = ? WHERE owner = ? AND key = ?",
                           (lease, now + LEASE_TTL_S, self.owner, key))
            else:
                db.execute("DELETE FROM leases WHERE owner = ? AND key = ?", (self.owner, key))
            row = db.execute("SELECT used FROM counters WHERE key = ?", (key,)).fetchone()
            others = db.execute("SELECT COALESCE(SUM(amount), 0) FROM leases WHERE key = ? AND owner != ? "
                                "AND expires_at > ?", (key, self.owner, now)).fetchone()[0]
            bases.append((row[0] if row else 0.0) + others)
        if entries:
            db.executemany(INSERT_LEDGER, [tuple(_col(e, c) for c in LEDGER_COLS) for e in entries])
            rows = []
            for e in entries:
                inc = entry_metrics(e)
                for period in entry_periods(e):
                    rows.append((period, e.tenant, e.model, e.tier, *inc))
            db.executemany(UPSERT_ROLLUP, rows)
        if int(now) % 60 == 0:
            db.execute("DELETE FROM leases WHERE expires_at < ?", (now - 60,))
            db.execute("DELETE FROM counters WHERE expires_at < ?", (now - 3600,))
            db.execute("DELETE FROM records WHERE expires_at IS NOT NULL AND expires_at < ?", (now,))
        return bases

    # ------------------------------------------------------------ ledger

    def _add_entry(self, entry: SpendEntry) -> None:
        if not entry.ts:
            entry.ts = time.time()
        self._entries.append(entry)

    async def record(self, entry: SpendEntry) -> None:
        self._add_entry(entry)

    def record_nowait(self, entry: SpendEntry) -> None:
        self._add_entry(entry)

    async def spend(self, window: str = "day", period: str | None = None, tenant: str | None = None
                    ) -> list[SpendRow]:
        await self._flush()
        pid = period_id(window, period)

        def query() -> list[SpendRow]:
            db = self._db
            assert db is not None
            sql = ("SELECT tenant, model, tier, requests, cache_hits, failed, cost, baseline, tokens_in, tokens_out "
                   "FROM rollup WHERE period = ?")
            args: tuple[Any, ...] = (pid,)
            if tenant is not None:
                sql += " AND tenant = ?"
                args += (tenant,)
            parts = {(r[0], r[1], r[2]): list(r[3:]) for r in db.execute(sql, args)}
            return build_rows(window, pid, parts)

        return await self._run(query)

    async def ledger_count(self) -> int:
        """Rows in the raw ledger (tests and reports)."""
        await self._flush()
        return await self._run(lambda: self._db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])  # type: ignore[union-attr]

    # ------------------------------------------------------------ records (write-through)

    async def get(self, key: str) -> dict[str, Any] | None:
        def q() -> dict[str, Any] | None:
            row = self._db.execute("SELECT value, expires_at FROM records WHERE key = ?", (key,)).fetchone()  # type: ignore[union-attr]
            if row is None or (row[1] is not None and row[1] <= time.time()):
                return None
            return orjson.loads(row[0])  # type: ignore[no-any-return]

        return await self._run(q)

    async def put(self, key: str, value: dict[str, Any], ttl_s: float | None = None) -> None:
        data = orjson.dumps(value)
        exp = None if ttl_s is None else time.time() + ttl_s
        await self._run(self._tx, lambda db: db.execute(
            "INSERT INTO records (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
            "value = excluded.value, expires_at = excluded.expires_at", (key, data, exp)))

    async def put_many(self, items: list[tuple[str, dict[str, Any]]], ttl_s: float | None = None) -> None:
        exp = None if ttl_s is None else time.time() + ttl_s
        rows = [(key, orjson.dumps(value), exp) for key, value in items]
        await self._run(self._tx, lambda db: db.executemany(
            "INSERT INTO records (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
            "value = excluded.value, expires_at = excluded.expires_at", rows))

    async def delete(self, key: str) -> bool:
        def d(db: sqlite3.Connection) -> bool:
            cur = db.execute("DELETE FROM records WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
                             (key, time.time()))
            return cur.rowcount > 0

        return await self._run(self._tx, d)

    async def scan(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        def q() -> list[tuple[str, dict[str, Any]]]:
            hi = prefix + "\U0010ffff"
            rows = self._db.execute(  # type: ignore[union-attr]
                "SELECT key, value FROM records WHERE key >= ? AND key < ? AND (expires_at IS NULL OR expires_at > ?)"
                " ORDER BY key", (prefix, hi, time.time())).fetchall()
            return [(k, orjson.loads(v)) for k, v in rows]

        return await self._run(q)

    async def incr(self, key: str, field: str, by: float = 1, ttl_s: float | None = None) -> float:
        def inc(db: sqlite3.Connection) -> float:
            now = time.time()
            row = db.execute("SELECT value, expires_at FROM records WHERE key = ?", (key,)).fetchone()
            live = row is not None and (row[1] is None or row[1] > now)
            value = orjson.loads(row[0]) if live else {}
            exp = (now + ttl_s) if ttl_s is not None else (row[1] if live else None)
            n = value.get(field, 0) + by
            value[field] = n
            db.execute("INSERT INTO records (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
                       "SET value = excluded.value, expires_at = excluded.expires_at", (key, orjson.dumps(value), exp))
            return float(n)

        return await self._run(self._tx, inc)

    async def incr_many(self, key: str, deltas: dict[str, float], ttl_s: float | None = None) -> None:
        def inc(db: sqlite3.Connection) -> None:
            now = time.time()
            row = db.execute("SELECT value, expires_at FROM records WHERE key = ?", (key,)).fetchone()
            live = row is not None and (row[1] is None or row[1] > now)
            value = orjson.loads(row[0]) if live else {}
            exp = (now + ttl_s) if ttl_s is not None else (row[1] if live else None)
            for field, by in deltas.items():
                value[field] = value.get(field, 0) + by
            db.execute("INSERT INTO records (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
                       "SET value = excluded.value, expires_at = excluded.expires_at", (key, orjson.dumps(value), exp))

        await self._run(self._tx, inc)


def _col(e: SpendEntry, name: str) -> Any:
    v = getattr(e, name)
    return int(v) if isinstance(v, bool) else v
