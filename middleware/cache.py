"""Stage `cache`: exact-match answer cache on aiocache (in memory, or Redis to share it between replicas).

Only deterministic requests are cached: `temperature: 0` (embeddings always), or any request sent with
`x-router-cache: force`; `x-router-cache: bypass` skips the cache. The key is a SHA-256 of the tenant,
the endpoint and the normalised request (keys sorted; `user`, `metadata` and `stream_options` left
out, since they do not change the answer), so tenants never see each other's answers. JSON answers and
streams are stored as the bytes the client received; a stream is replayed as SSE, event by event. A hit
costs 0, is never refused for budget, and goes into the ledger as a cache hit with what it would have
cost on the highest tier (the saving). Every cacheable or bypassed answer says `x-router-cache:
hit|miss|bypass`. Bounds: `ttl_s` (3600), `max_entries` (10000, least recently stored evicted) and
`max_entry_kb` (1024: larger answers are not stored). Inactive without a `cache:` section. With
`backend: redis` (`url: redis://host:6379/0[?prefix=P]`, default the state store's Redis) replicas share
one cache; keys are `{prefix}cache:…`, and its connections are named `{prefix}cache` in `CLIENT LIST`.
`aclose()` (at shutdown, or when a reload retires the stage) finishes the writes in flight and closes them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from router.cost import priced, token_counts
from router.exchange import CallNext, Exchange, Reply
from router.pipeline import Stage
from router.state import SpendEntry
from router.tenants import DEFAULT_TENANT, check_cache

log = logging.getLogger("ai_router.cache")

HEADER = "x-router-cache"
IGNORED = ("user", "metadata", "stream_options")
JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class CacheStage(Stage):
    name = "cache"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        config = ctx.config
        cfg = check_cache(dict(config.cache))
        self.active = bool(config.cache)
        if not self.active:
            return
        # aiocache (and through it redis-py, which loads OpenTelemetry when installed) is imported only
        # when a cache is configured, so a router without one pays nothing for it.
        from aiocache import RedisCache, SimpleMemoryCache
        from aiocache.serializers import BaseSerializer

        class _Bytes(BaseSerializer):
            """Values are bytes already: stored and read back as they are."""

            DEFAULT_ENCODING = None

            def dumps(self, value: Any) -> Any:
                return value

            def loads(self, value: Any) -> Any:
                return value

        self.ttl = int(cfg.get("ttl_s", 3600))
        self.max_entries = int(cfg.get("max_entries", 10000))
        self.max_bytes = int(cfg.get("max_entry_kb", 1024)) * 1024
        backend = cfg.get("backend") or ("redis" if config.state_url.startswith(("redis://", "rediss://"))
                                         else "memory")
        if backend == "redis":
            url = urlsplit(cfg.get("url") or config.state_url)
            prefix = parse_qs(url.query).get("prefix", ["ai-router:"])[0]
            self.namespace = prefix + "cache"  # aiocache adds the ":" before each key
            db = int((url.path or "/0").strip("/") or 0)
            # named in CLIENT LIST (`{prefix}cache`): an operator sees whose connections these are
            self.cache: Any = RedisCache(serializer=_Bytes(), endpoint=url.hostname or "127.0.0.1",
                                         port=url.port or 6379, db=db, password=url.password,
                                         namespace=self.namespace, timeout=None,
                                         connection_pool_kwargs={"client_name": self.namespace})
        else:
            self.namespace = "cache"
            self.cache = SimpleMemoryCache(serializer=_Bytes(), namespace=self.namespace, timeout=None)
        self.redis = backend == "redis"
        self._order: OrderedDict[str, None] = OrderedDict()  # memory: least recently stored first
        self.catalog = ctx.catalog
        self.store = ctx.store
        models = [m for m in config.models() if m.type == "chat" and m.tier == (config.routing.tiers or [None])[-1]]
        self.top = (max((m.price.input for m in models), default=0.0), max((m.price.output for m in models),
                                                                            default=0.0))
        emb = [m.price.input for m in config.models() if m.type == "embedding"]
        self.top_embedding = max(emb, default=0.0)
        self.tasks: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        """At shutdown or when a reload retires this stage: finish the writes in flight, close the cache's
        connections (Redis) or drop its entries (memory)."""
        if not self.active:
            return
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=1.0)
        try:
            if self.redis:
                await self.cache.client.aclose()  # (aiocache's close() calls redis-py's deprecated close())
            else:
                await self.cache.clear()
        except Exception as e:  # a cache that is down must not fail the shutdown
            log.warning("cache close failed (%s)", type(e).__name__)

    # ------------------------------------------------------------ the call

    def key(self, ex: Exchange) -> str:
        """The cache key of a cacheable request (`handle` tells which are)."""
        norm = {k: v for k, v in ex.body.items() if k not in IGNORED}
        digest = hashlib.sha256(orjson.dumps([ex.tenant or DEFAULT_TENANT, ex.endpoint, norm],
                                             option=orjson.OPT_SORT_KEYS)).hexdigest()
        return digest

    def handle(self, ex: Exchange, call_next: CallNext) -> Awaitable[Reply]:
        """A request that is not cacheable goes on unawaited, its `bypass` on the exchange (the server
        puts `reply_headers` on the answer); a cacheable one looks the cache up (`_lookup`)."""
        if ex.dry_run:
            return call_next(ex)
        mode = ex.headers.get(HEADER)  # cacheable: deterministic (temperature 0, or forced), not bypassed
        if mode == "bypass" or (mode != "force" and ex.endpoint != "embeddings" and ex.body.get("temperature") != 0):
            _say(ex, "bypass")
            return call_next(ex)
        return self._lookup(ex, call_next, self.key(ex))

    async def _lookup(self, ex: Exchange, call_next: CallNext, key: str) -> Reply:
        try:
            hit = await self.cache.get(key)
        except Exception as e:  # a cache that is down must not fail the request
            log.warning("cache read failed (%s); serving without it", type(e).__name__)
            hit = None
        if hit is not None:
            reply = self._replay(ex, hit)
            if reply is not None:
                ex.cache = "hit"
                return reply
        _say(ex, "miss")
        reply = await call_next(ex)
        if reply.status != 200 or ex.target is None:
            return reply
        if reply.stream is None:
            if reply.body is not None and len(reply.body) <= self.max_bytes:
                self._background(self._put(key, ex, reply.body))
        else:
            rec = Recorder(reply.stream, self.max_bytes)
            reply.stream = rec
            ex.finish_hooks.append(lambda ex: rec.done and self._background(self._put(key, ex, b"".join(rec.chunks))))
        return reply

    def _meta(self, ex: Exchange) -> bytes:
        t = ex.target
        assert t is not None
        return orjson.dumps({"model": t.model.id, "backend": t.model.backend, "tier": t.tier, "usage": ex.usage,
                             "stream": ex.stream})

    async def _put(self, key: str, ex: Exchange, payload: bytes) -> None:
        try:
            await self.cache.set(key, self._meta(ex) + b"\n" + payload, ttl=self.ttl)
            await self._bound(key)
        except Exception as e:
            log.warning("cache write failed (%s)", type(e).__name__)

    async def _bound(self, key: str) -> None:
        """Evict the least recently stored entries beyond max_entries."""
        if self.redis:
            z = self.namespace + ":lru"
            await self.cache.raw("zadd", z, {key: time.time()})
            over = await self.cache.raw("zcard", z) - self.max_entries
            if over > 0:
                old = await self.cache.raw("zpopmin", z, over)
                for member, _ in old:
                    await self.cache.delete(member.decode() if isinstance(member, bytes) else member)
            return
        self._order.pop(key, None)
        self._order[key] = None
        while len(self._order) > self.max_entries:
            old_key, _ = self._order.popitem(last=False)
            await self.cache.delete(old_key)

    def _replay(self, ex: Exchange, data: bytes) -> Reply | None:
        head, _, payload = data.partition(b"\n")
        try:
            meta = orjson.loads(head)
        except orjson.JSONDecodeError:
            return None
        cands = [c for c in self.catalog.by_id.get(meta.get("model"), []) if c.model.backend == meta.get("backend")]
        if cands:
            ex.target = cands[0]
        usage = meta.get("usage") or {}
        ex.cost_usd = 0.0
        if not meta.get("stream"):
            ex.usage = usage or None  # (a replayed stream keeps none, so the pump bills nothing)
        base = (priced(usage, self.top_embedding, 0.0) if ex.endpoint == "embeddings" else priced(usage, *self.top)
                ) if usage else 0.0
        tin, tout, cached = token_counts(usage) if usage else (0, 0, 0)
        self.store.record_nowait(SpendEntry(
            tenant=ex.tenant or DEFAULT_TENANT, model=meta.get("model") or "", tier=meta.get("tier") or "",
            cost_usd=0.0, baseline_usd=base, tokens_in=tin, tokens_out=tout, tokens_cached=cached,
            usage_source="cache", cache_hit=True, request_id=ex.request_id, key=ex.key_name or "",
            endpoint=ex.endpoint, backend=meta.get("backend") or "", ts=time.time()))
        if meta.get("stream"):
            return Reply(200, {**SSE_HEADERS, HEADER: "hit"}, stream=Replay(payload))
        return Reply(200, {**JSON_HEADERS, HEADER: "hit"}, body=payload)

    def _background(self, coro: Any) -> bool:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True


def _say(ex: Exchange, what: str) -> None:
    """`x-router-cache: miss|bypass` on whatever answer the request gets, and `ex.cache` for the metrics
    and the access log."""
    ex.cache = what
    rh = ex.reply_headers  # (`add_reply_headers` without its temporary dict: most requests pass here)
    if rh is None:
        ex.reply_headers = {HEADER: what}
    else:
        rh[HEADER] = what


class Recorder:
    """Relays a stream unchanged while keeping references to its chunks, to store it once it has ended."""

    __slots__ = ("chunks", "done", "inner", "limit", "size")

    def __init__(self, inner: Any, limit: int) -> None:
        self.inner = inner
        self.chunks: list[bytes] = []
        self.done = False
        self.limit = limit
        self.size = 0

    @property
    def usage(self) -> dict[str, Any] | None:
        return getattr(self.inner, "usage", None)

    @property
    def seen(self) -> list[bytes] | None:
        return getattr(self.inner, "seen", None)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._relay()

    async def _relay(self) -> AsyncIterator[bytes]:
        keep = True
        async for chunk in self.inner:
            if keep:
                self.size += len(chunk)
                if self.size > self.limit:
                    keep = False
                    self.chunks = []
                else:
                    self.chunks.append(chunk)
            yield chunk
        self.done = keep

    async def aclose(self) -> None:
        await self.inner.aclose()


class Replay:
    """A cached stream, replayed as SSE one event at a time."""

    __slots__ = ("payload", "usage")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.usage = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._events()

    async def _events(self) -> AsyncIterator[bytes]:
        data = self.payload
        start = 0
        while start < len(data):
            end = data.find(b"\n\n", start)
            end = len(data) if end < 0 else end + 2
            yield data[start:end]
            start = end

    async def aclose(self) -> None:
        return None
