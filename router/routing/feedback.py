"""The feedback loop: what became of the answers the router gave, per tenant, fed to the adaptive policy.

In the request's journey: `route` adds `FeedbackLoop.finished` to the exchange's finish hooks, so when an
answer (or an error) has ended the loop remembers the request for `POST /v1/feedback`: its id, tenant,
cell (task x difficulty bucket), where it was served (local or cloud) and when. Never any prompt or
completion content. Memory is bounded: at most `remember_max` requests, each for `remember_s`; the answers whose
implicit outcome is still open and the re-ask fingerprints are capped at `remember_max` too.

Outcomes, each a score in [0, 1] for one location of one tenant's cell:
- explicit: `rate()` (the endpoint's `score`, or `rating` up = 1 / down = 0), weight 1; a later rating of
  the same request replaces the earlier one;
- implicit, weight `implicit_weight`:
  - a promotion: each attempt that failed before the one that answered scores 0 for its location;
  - an upstream error that reached the client scores 0;
  - `finish_reason: length` (the backend sets `Exchange.truncated` with a byte search) scores 0;
  - a re-ask: the same tenant sending the same normalised last user message (case and whitespace
    ignored) again within `reask_window_s` scores the earlier answer 0 (only a 64-bit fingerprint of the
    text is kept, for that window);
  - an answer with none of these and no explicit rating within `reask_window_s` scores 1 (no complaint).
  An explicit rating replaces its request's implicit outcome, even after the window.

The adaptive counters persist through the state store (`start`/`aclose`, router/routing/adaptive_store.py).
With a store shared by other processes, the remembered answers are written there too (every 2 s, `fbr/TENANT/ID`
records that expire with `remember_s`), so `rate_anywhere` also takes a rating of an answer another
worker, replica or earlier run gave; it then replaces what that process counted for it.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from router.catalog import Catalog
from router.config import Config
from router.exchange import Exchange
from router.routing.adaptive import Adaptive, CellKey
from router.routing.adaptive_store import AdaptiveStore
from router.state import Store

GENERATION_ENDPOINTS = frozenset(("chat", "completions", "responses", "messages"))
STORED_PREFIX = "fbr/"  # an answer's record in a shared store, for a rating that reaches another worker
FINGERPRINT_CHARS = 2048  # longer asks are fingerprinted by their head, tail and length
_WHITESPACE = b" \t\n\r\x0b\x0c"  # dropped before hashing: a re-ask that only re-spaces the text is the same ask
# bytes.lower() as a translate table, so lower-casing and dropping whitespace are one pass over an ASCII text
_LOWER_ASCII = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
EXPIRE_EVERY_S = 0.25  # pending outcomes and old records are swept at most this often


class Record:
    """One remembered request: who, which cell, where it was served, and what has been counted for it."""

    __slots__ = ("cloud", "counted", "done_at", "explicit", "key", "request_id", "tenant", "verdict")

    def __init__(self, request_id: str, tenant: str | None, key: CellKey | None, cloud: bool, done_at: float) -> None:
        self.request_id = request_id
        self.tenant = tenant
        self.key = key
        self.cloud = cloud
        self.done_at = done_at
        self.verdict: float | None = 1.0  # the implicit outcome so far; None once final
        self.explicit: float | None = None
        self.counted: tuple[float, float] | None = None  # (score, weight) already observed for this answer


def stored_key(tenant: str | None, request_id: str) -> str:
    return f"{STORED_PREFIX}{tenant or '-'}/{request_id}"


def build_feedback(config: Config, catalog: Catalog, clock: Callable[[], float] = time.time,
                   rng: random.Random | None = None) -> FeedbackLoop:
    """The feedback loop and adaptive engine of one config (its tiers, where each tier's models run)."""
    tier_is_cloud = []
    for t in catalog.tiers:
        chat = [c for c in catalog.by_tier.get(t, ()) if c.model.type == "chat"]
        tier_is_cloud.append(bool(chat) and all(c.model.location == "cloud" for c in chat))
    adaptive = Adaptive(config.routing.adaptive, list(catalog.tiers), tier_is_cloud, clock=clock, rng=rng)
    return FeedbackLoop(adaptive, {b.name: b.location == "cloud" for b in config.backends}, clock)


class FeedbackLoop:
    """Remembers recent requests, turns ratings and implicit signals into outcomes for `adaptive`."""

    def __init__(self, adaptive: Adaptive, backend_is_cloud: dict[str, bool], clock: Callable[[], float]) -> None:
        s = adaptive.settings
        self.adaptive = adaptive
        self.clock = clock
        self.backend_is_cloud = backend_is_cloud
        self.implicit_weight = s.implicit_weight
        self.window = s.reask_window_s
        self.ttl = s.remember_s
        self.max = s.remember_max
        # (tenant, request id) -> answer, by time of the answer's end: ids are the client's to choose, so
        # one tenant's id never reaches (or pushes out) another's answer
        self.records: OrderedDict[tuple[str | None, str], Record] = OrderedDict()
        self.pending: deque[Record] = deque()  # answers whose implicit outcome is not final yet
        self.asks: OrderedDict[tuple[str | None, int], Record] = OrderedDict()  # fingerprint -> last answer
        self.sync: AdaptiveStore | None = None
        self.store: Store | None = None
        self.outbox: list[Record] | None = None  # answers to write to a shared store, so any worker can rate them
        self._next_expiry = 0.0

    # ------------------------------------------------------------ the answer ended

    def finished(self, ex: Exchange) -> None:
        """Finish hook: remember the request and note its implicit signals."""
        if ex.dry_run or ex.endpoint not in GENERATION_ENDPOINTS:
            return
        now = self.clock()
        if now >= self._next_expiry:
            self._expire(now)
            self._next_expiry = now + EXPIRE_EVERY_S
        f = ex.features
        key = (f.task, self.adaptive.bucket(f)) if f is not None else None
        t = ex.target
        cloud = t is not None and t.model.location == "cloud"
        rec = Record(ex.request_id, ex.tenant, key, cloud, now)
        rk = (ex.tenant, ex.request_id)
        old = self.records.pop(rk, None)
        if old is not None:  # a reused request id: the earlier answer can no longer be rated
            self._finalise(old)
        self.records[rk] = rec
        if len(self.records) > self.max:
            self._finalise(self.records.popitem(last=False)[1])
        if key is None:
            rec.verdict = None
            if self.outbox is not None:
                self.outbox.append(rec)
            return
        w = self.implicit_weight
        if ex.attempts and (len(ex.attempts) > 1 or ex.attempts[0].outcome != "ok"):
            failed = {self.backend_is_cloud.get(a.backend, True) for a in ex.attempts if a.outcome != "ok"}
            for location in failed:  # a promotion, or an error that reached the client: that location failed
                self.adaptive.observe(ex.tenant, key, location, 0.0, w)
        if ex.status >= 400 or t is None:
            rec.verdict = None  # no answer to rate implicitly (an explicit rating still counts)
            if self.outbox is not None:
                self.outbox.append(rec)
            return
        if ex.truncated:
            rec.verdict = 0.0
        fp = fingerprint(ex.endpoint, ex.body)
        if fp is not None:
            ask = (ex.tenant, fp)
            prev = self.asks.pop(ask, None)
            if prev is not None and prev.verdict is not None and now - prev.done_at <= self.window:
                prev.verdict = 0.0  # asked again: the earlier answer did not do
            self.asks[ask] = rec
            if len(self.asks) > self.max:  # bounded by count too, not only by the re-ask window
                self.asks.popitem(last=False)
        if self.outbox is not None:
            self.outbox.append(rec)
        if self.window > 0:
            self.pending.append(rec)
            if len(self.pending) > self.max:  # at high rates the window alone would not bound memory
                self._finalise(self.pending.popleft())
        else:
            self._finalise(rec)

    # ------------------------------------------------------------ an explicit rating

    def lookup(self, request_id: str, tenant: str | None) -> Record | None:
        rec = self.records.get((tenant, request_id))
        if rec is None or self.clock() - rec.done_at > self.ttl:
            return None
        return rec

    def rate(self, request_id: str, tenant: str | None, score: float) -> bool:
        """Record a rating from `tenant`; False when the request is unknown, expired or another tenant's."""
        rec = self.lookup(request_id, tenant)
        if rec is None:
            return False
        rec.explicit = score
        if rec.key is None:
            return True
        if rec.verdict is not None:  # still pending: the rating is its outcome, counted now
            rec.verdict = None
        self._count(rec, score, 1.0)
        return True

    async def rate_anywhere(self, request_id: str, tenant: str | None, score: float) -> bool:
        """`rate`, and for an answer another worker (or an earlier run) gave, its record in the store."""
        if self.lookup(request_id, tenant) is not None or self.store is None or self.outbox is None:
            return self.rate(request_id, tenant, score)
        key = stored_key(tenant, request_id)
        stored = await self.store.get(key)
        if stored is None or stored.get("tenant") != tenant:
            return False
        cell = stored.get("cell")
        if isinstance(cell, list) and len(cell) == 2:
            cell_key = (str(cell[0]), int(cell[1]))
            cloud = bool(stored.get("cloud"))
            before = stored.get("rated")
            if isinstance(before, int | float):  # rated before: replace that rating
                self.adaptive.observe(tenant, cell_key, cloud, float(before), -1.0)
            elif isinstance(stored.get("implicit"), int | float):  # the worker that served it counts this
                self.adaptive.observe(tenant, cell_key, cloud, float(stored["implicit"]), -self.implicit_weight)
            self.adaptive.observe(tenant, cell_key, cloud, score, 1.0)
        await self.store.put(key, {**stored, "rated": score}, ttl_s=self.ttl)
        return True

    def take_outbox(self) -> list[tuple[str, dict[str, Any]]]:
        """The answers finished since the last call, as store records (`fbr/{tenant}/{id}`): tenant, cell,
        location, and what this process counts (or will count) for it: `implicit` (a score, weight
        `implicit_weight`) or `rated` (a rating, weight 1), so a rating elsewhere can replace it."""
        if not self.outbox:
            return []
        out, self.outbox = self.outbox, []
        items = []
        for r in out:
            rec: dict[str, Any] = {"tenant": r.tenant, "cell": list(r.key) if r.key else None, "cloud": r.cloud}
            if r.explicit is not None:
                rec["rated"] = r.explicit
            elif r.verdict is not None or r.counted is not None:
                rec["implicit"] = r.verdict if r.verdict is not None else r.counted[0]  # type: ignore[index]
            items.append((stored_key(r.tenant, r.request_id), rec))
        return items

    # ------------------------------------------------------------ bookkeeping

    def _count(self, rec: Record, score: float, weight: float) -> None:
        assert rec.key is not None
        if rec.counted is not None:  # replace what this answer counted before
            old_score, old_weight = rec.counted
            self.adaptive.observe(rec.tenant, rec.key, rec.cloud, old_score, -old_weight)
        rec.counted = (score, weight)
        self.adaptive.observe(rec.tenant, rec.key, rec.cloud, score, weight)

    def _finalise(self, rec: Record) -> None:
        if rec.verdict is None or rec.key is None:
            return
        verdict, rec.verdict = rec.verdict, None
        self._count(rec, verdict, self.implicit_weight)

    def _expire(self, now: float) -> None:
        pending = self.pending
        window = self.window
        while pending and now - pending[0].done_at > window:
            self._finalise(pending.popleft())
        asks = self.asks
        while asks:
            first = next(iter(asks.values()))
            if now - first.done_at <= window:
                break
            asks.popitem(last=False)
        records = self.records
        ttl = self.ttl
        while records:
            first = next(iter(records.values()))
            if now - first.done_at <= ttl:
                break
            self._finalise(records.popitem(last=False)[1])

    def flush(self) -> None:
        """Finalise every pending implicit outcome now (shutdown, or a replay that ends)."""
        while self.pending:
            self._finalise(self.pending.popleft())

    # ------------------------------------------------------------ persistence

    async def start(self, store: Store) -> None:
        """Read the adaptive counters from the state store and keep them in sync with it; with a store
        shared by other processes (not memory://), also write each answer's record there."""
        self.store = store
        if not store.url.startswith("memory:"):
            self.outbox = []
        self.sync = AdaptiveStore(self.adaptive, store, self.take_outbox, self.ttl)
        await self.sync.start()

    async def aclose(self) -> None:
        """Count what is pending and write it to the store."""
        self.flush()
        if self.sync is not None:
            await self.sync.aclose()
            self.sync = None


# ---------------------------------------------------------------- re-ask fingerprints


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text") or "" for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def last_ask(endpoint: str, body: dict[str, Any]) -> str:
    """The last thing the user asked: the last user message (chat, responses, messages) or the prompt."""
    if endpoint == "completions":
        p = body.get("prompt")
        return p if isinstance(p, str) else ""
    msgs = body.get("messages")
    if msgs is None and endpoint == "responses":
        inp = body.get("input")
        if isinstance(inp, str):
            return inp
        msgs = inp
    if isinstance(msgs, list):
        for m in reversed(msgs):
            if isinstance(m, dict) and m.get("role", "user") == "user":
                return _text(m.get("content"))
    return ""


def fingerprint(endpoint: str, body: dict[str, Any]) -> int | None:
    """A 64-bit hash of the normalised last ask (lower-cased, whitespace dropped), or None when there is none.
    Python's hash of the text's bytes: one translate in C (lower-case, drop whitespace), no per-word objects (the
    finish hook runs on every answer). Salted per process, so it means nothing outside it."""
    text = last_ask(endpoint, body)
    if not text:
        return None
    n = len(text)
    if n > FINGERPRINT_CHARS:  # a long ask: its head, its tail and its length
        half = FINGERPRINT_CHARS // 2
        text = text[:half] + text[-half:]
    else:
        n = 0
    if text.isascii():  # = text.encode().lower().translate(None, _WHITESPACE), in one pass
        return hash((text.encode().translate(_LOWER_ASCII, _WHITESPACE), n))  # 64-bit, salted per process
    return hash((text.lower().encode("utf-8", "surrogatepass").translate(None, _WHITESPACE), n))
