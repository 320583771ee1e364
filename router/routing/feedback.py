"""The feedback loop: what became of the answers the router gave, per tenant, fed to the adaptive policy.

In the request's journey: `route` adds `FeedbackLoop.finished` to the exchange's finish hooks, so when an
answer (or an error) has ended the loop remembers the request for `POST /v1/feedback`: its id, tenant,
cell (task x difficulty bucket), where it was served (local or cloud) and when. Never any prompt or
completion content. Memory is bounded and small: at most `remember_max` answers, each for `remember_s`, in
fixed-width slots of router/routing/answers.py (~75 bytes each, no Python object per answer); an answer's open
implicit outcome and its re-ask fingerprint live in its slot.

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
from collections.abc import Callable
from typing import Any

from router.catalog import Catalog
from router.config import Config
from router.exchange import Exchange
from router.routing.adaptive import Adaptive
from router.routing.adaptive_store import AdaptiveStore
from router.routing.answers import BAD, CLOUD, COUNTED, PENDING, RATED, Answers
from router.routing.textscan import FOLD_DROP as _WHITESPACE
from router.routing.textscan import fold
from router.state import Store

GENERATION_ENDPOINTS = frozenset(("chat", "completions", "responses", "messages"))
STORED_PREFIX = "fbr/"  # an answer's record in a shared store, for a rating that reaches another worker
FINGERPRINT_CHARS = 2048  # longer asks are fingerprinted by their head, tail and length
# _WHITESPACE (textscan.FOLD_DROP) is dropped before hashing: a re-ask that only re-spaces the text is the same ask
EXPIRE_EVERY_S = 0.25  # open outcomes and old answers are swept at most this often


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
    """Remembers recent answers (router/routing/answers.py), turns ratings and implicit signals into outcomes
    for `adaptive`."""

    def __init__(self, adaptive: Adaptive, backend_is_cloud: dict[str, bool], clock: Callable[[], float]) -> None:
        s = adaptive.settings
        self.adaptive = adaptive
        self.clock = clock
        self.backend_is_cloud = backend_is_cloud
        self.implicit_weight = s.implicit_weight
        self.window = s.reask_window_s
        self.ttl = s.remember_s
        # the answers, oldest first, by (tenant, request id) and by (tenant, last ask): ids are the client's to
        # choose, so one tenant's id never reaches (or pushes out) another's answer
        self.answers = Answers(s.remember_max, self._finalise)
        self.buckets = adaptive.buckets
        self.pending = 0  # answers before this one (a count of `answers.head`) have no open implicit outcome
        self.sync: AdaptiveStore | None = None
        self.store: Store | None = None
        # answers to write to a shared store, so any worker can rate them: (slot, id hash, request id, tenant,
        # cell, state as it ended)
        self.outbox: list[tuple[int, int, str, int, int, int]] | None = None
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
        a = self.answers
        tenant = ex.tenant
        who = a.tenant_ids.get(tenant)
        if who is None:
            who = a.tenant_id(tenant)
        h = hash((tenant, ex.request_id))
        f = ex.features
        t = ex.target
        state = CLOUD if t is not None and t.model.location == "cloud" else 0
        if f is None:
            slot = a.add(h, who, 0, state, now)
            if self.outbox is not None:
                self.outbox.append((slot, h, ex.request_id, who, 0, state))
            return
        b = int(f.difficulty * self.buckets)  # Adaptive.bucket, inlined
        cell_key = (f.task, b if b < self.buckets else self.buckets - 1)
        cell = a.cell_ids.get(cell_key) or a.cell_id(cell_key)
        w = self.implicit_weight
        if ex.attempts and (len(ex.attempts) > 1 or ex.attempts[0].outcome != "ok"):
            failed = {self.backend_is_cloud.get(x.backend, True) for x in ex.attempts if x.outcome != "ok"}
            for location in failed:  # a promotion, or an error that reached the client: that location failed
                self.adaptive.observe(tenant, a.cells[cell], location, 0.0, w)  # type: ignore[arg-type]
        if ex.status >= 400 or t is None:  # no answer to rate implicitly (an explicit rating still counts)
            slot = a.add(h, who, cell, state, now)
            if self.outbox is not None:
                self.outbox.append((slot, h, ex.request_id, who, cell, state))
            return
        slot = a.add(h, who, cell, state | PENDING | (BAD if ex.truncated else 0), now)
        fp = fingerprint(ex.endpoint, ex.body)
        if fp is not None:
            prev = a.link_ask(slot, hash((tenant, fp)))
            if prev >= 0 and a.state[prev] & PENDING and now - a.at[prev] <= self.window:
                a.state[prev] |= BAD  # asked again: the earlier answer did not do
        if self.outbox is not None:
            self.outbox.append((slot, h, ex.request_id, who, cell, a.state[slot]))
        if self.window <= 0:
            self._finalise(slot)

    # ------------------------------------------------------------ an explicit rating

    def lookup(self, request_id: str, tenant: str | None) -> int | None:
        """The slot of `tenant`'s answer `request_id`, or None when it is unknown, expired or another tenant's."""
        a = self.answers
        who = a.tenant_ids.get(tenant)
        if who is None:
            return None
        slot = a.find(hash((tenant, request_id)), who)
        if slot < 0 or self.clock() - a.at[slot] > self.ttl:
            return None
        return slot

    def rate(self, request_id: str, tenant: str | None, score: float) -> bool:
        """Record a rating from `tenant`; False when the request is unknown, expired or another tenant's."""
        slot = self.lookup(request_id, tenant)
        if slot is None:
            return False
        a = self.answers
        st = a.state[slot]
        cell = a.cells[a.cell[slot]]
        if cell is not None:  # replace what this answer counted before (an open outcome is replaced too)
            cloud = bool(st & CLOUD)
            if st & RATED:
                self.adaptive.observe(tenant, cell, cloud, a.score[slot], -1.0)
            elif st & COUNTED:
                self.adaptive.observe(tenant, cell, cloud, 0.0 if st & BAD else 1.0, -self.implicit_weight)
            self.adaptive.observe(tenant, cell, cloud, score, 1.0)
        a.score[slot] = score
        a.state[slot] = (st & ~(PENDING | COUNTED)) | RATED
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
        a = self.answers
        items = []
        for slot, h, request_id, who, cell_id, st in out:
            if a.key[slot] == h and a.who[slot] == who and a.state[slot]:  # still remembered: its state now
                st = a.state[slot]
            tenant = a.tenants[who]
            cell = a.cells[cell_id]
            rec: dict[str, Any] = {"tenant": tenant, "cell": list(cell) if cell else None, "cloud": bool(st & CLOUD)}
            if st & RATED:
                rec["rated"] = a.score[slot]
            elif st & (PENDING | COUNTED):
                rec["implicit"] = 0.0 if st & BAD else 1.0
            items.append((stored_key(tenant, request_id), rec))
        return items

    # ------------------------------------------------------------ bookkeeping

    def _finalise(self, slot: int) -> None:
        """Count the answer's open implicit outcome, if it has one."""
        a = self.answers
        st = a.state[slot]
        if st & PENDING:
            a.state[slot] = st ^ PENDING | COUNTED
            self.adaptive.observe(a.tenants[a.who[slot]], a.cells[a.cell[slot]],  # type: ignore[arg-type]
                                  bool(st & CLOUD), 0.0 if st & BAD else 1.0, self.implicit_weight)

    def _expire(self, now: float) -> None:
        a = self.answers
        cap = a.capacity
        at = a.at
        due = now - self.window  # open outcomes of answers older than the re-ask window are final
        n = max(self.pending, a.tail)
        while n < a.head and at[n % cap] < due:
            self._finalise(n % cap)
            n += 1
        self.pending = n
        due = now - self.ttl  # answers older than remember_s are forgotten
        while a.tail < a.head and at[a.tail % cap] < due:
            a.drop_oldest()

    def flush(self) -> None:
        """Finalise every pending implicit outcome now (shutdown, or a replay that ends)."""
        a = self.answers
        for n in range(max(self.pending, a.tail), a.head):
            self._finalise(n % a.capacity)
        self.pending = a.head

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
    Python's hash of the text's bytes: one pass in C (`textscan.fold`: lower-case, drop whitespace), no per-word
    objects (the finish hook runs on every answer). Salted per process, so it means nothing outside it."""
    text = last_ask(endpoint, body)
    if not text:
        return None
    n = len(text)
    if n > FINGERPRINT_CHARS:  # a long ask: its head, its tail and its length
        half = FINGERPRINT_CHARS // 2
        text = text[:half] + text[-half:]
    else:
        n = 0
    folded = fold(text)  # an ASCII text: = text.encode().lower().translate(None, _WHITESPACE), in one pass
    if folded is not None:
        return hash((folded, n))  # 64-bit, salted per process
    return hash((text.lower().encode("utf-8", "surrogatepass").translate(None, _WHITESPACE), n))
