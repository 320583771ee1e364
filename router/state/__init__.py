"""The state store: money, limits, the spend ledger and small records, shared by every worker and replica.

One small async interface (`Store`, in router/state/base.py), three implementations chosen by `state.url`:
`memory://` (one process), `sqlite:///path` (persistent, several `--workers` on one host),
`redis://host:6379/0[?prefix=P]` (many replicas). `open_store(url)` builds one; call `await store.start()`
once the event loop runs and `await store.aclose()` at shutdown. Engines only: no aiohttp, no middleware.

The contract, in full (every method is a coroutine unless marked sync):

Windowed counters (budgets, rate limits). A counter is named by a string key that includes its window
(`windows.py` builds them: `budget:tenant:acme/web:d2026-12-01`, `rl:req:key:web:t29345678`) and dies
after `expires_at` (epoch seconds, the window's end). Its level is `used + held`.
  reserve(charges) -> Grant     all-or-nothing: every `Charge(key, amount, limit, expires_at, hold)` is
                                applied only if each counter stays <= its limit. `hold=True` holds the
                                amount until `settle` (money: reserve the worst case); `hold=False`
                                counts it as used at once (requests per minute). `Grant.ok`, `.denied`
                                (index of the first charge over its limit), `.levels` (each counter's level
                                after the call, or its current level when refused).
  settle(grant, actual, entry=None)
                                releases the grant's holds and adds `actual` as used to each held counter
                                (exactly once: settling twice is a no-op); with `entry`, also records it in
                                the ledger, in the same round trip.
  add(key, amount, expires_at)  unconditional use (a correction after the fact, e.g. real output tokens).
  levels(keys) -> list[float]   current levels (advisory: the atomic check is `reserve`).
Spend ledger.
  record(entry)                 append a `SpendEntry` (one per answered request, cache hits included, and
                                one per failed upstream attempt) and update the per-tenant rollups.
  spend(window, period=None, tenant=None) -> list[SpendRow]
                                rollups per tenant for `window` "day" | "month" (period: "2026-12-01" /
                                "2026-12"; default the current UTC one), with per-model and per-tier parts.
Small records (JSON-able dicts; other issues' keys, feedback, adaptive stats).
  get(key) -> dict | None       put(key, value, ttl_s=None)      delete(key) -> bool
  scan(prefix) -> list[(key, dict)]                              incr(key, field, by=1, ttl_s=None) -> float
  incr_many(key, {field: by}, ttl_s=None)                         put_many([(key, value)], ttl_s=None)
                                `incr` adds to one numeric field of a record atomically (creating both),
                                `incr_many` to several at once, in one round trip (adaptive counters);
                                `put_many` writes many records in one round trip (answers to be rated);
                                `ttl_s` (on put/incr) makes the record expire; expired records are never
                                returned.

Guarantees: a refused reserve changes nothing; limits hold under any concurrency, across workers (SQLite)
and replicas (Redis); holds of a crashed process are released after `HOLD_TTL_S` (Redis) or its lease
expires (SQLite), so a crash never leaks budget for good. SQLite keeps an in-process fast path: each
worker leases a slice of every counter's headroom and serves reservations from it without I/O, and
writes settled use and the ledger behind, at most `FLUSH_S` (0.25 s) later; a `kill -9` loses at most
that window of settled spend (see sqlite.py). Memory and Redis write through.
"""

from __future__ import annotations

from router.state.base import Charge, Grant, SpendEntry, SpendRow, Store, open_store

__all__ = ["Charge", "Grant", "SpendEntry", "SpendRow", "Store", "open_store"]
