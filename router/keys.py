"""Run-time client keys: `POST/GET/DELETE /admin/keys` and their records in the state store.

A key made here is shown once (`sk-air-…`, 256 random bits) and stored hashed (SHA-256) with its name,
tenant `org/project`, allowances (`models`, `tiers` globs, `steering`, `limits`, `budget`: the same fields as
a config key, validated the same way), created/last-used times and optional expiry. Records live in the
state store under `apikey:<sha256>`, so every worker and replica sees them (memory, SQLite, Redis).

`KeyStore.lookup(digest)` is what the `auth` stage asks for a key it does not find in the config: a record
found is cached in-process for `CACHE_S` (a key deleted through another worker stops working within that
time, through this one at once), and its last-used time is written back at most once a `TOUCH_S`, in the
background, so a request pays one dict lookup in the common case. Names are unique across config and
store keys, since per-key limits and budgets are counted by name.

    POST   /admin/keys         {name, tenant, models?, tiers?, steering?, limits?, budget?, expires?} -> 201
    GET    /admin/keys         {"keys": [...]}: config keys (source "config") and store keys, never a secret
    GET    /admin/keys/{id}    one store key
    DELETE /admin/keys/{id}    204; 404 for an unknown id; config keys are changed in the config file only
    DELETE /admin/keys         the same, the id as `?id=` or in the body `{"id": ...}`
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

import orjson
from aiohttp import web

from router.admin import AdminGate
from router.auth import ApiKey, KeyRing, key_fields, sha256_hex
from router.config import ConfigError
from router.errors import InvalidRequest, NotFound, ProxyError
from router.state import Store

log = logging.getLogger("ai_router.keys")

PREFIX = "apikey:"
KEY_PREFIX = "sk-air-"
CACHE_S = 5.0
TOUCH_S = 60.0
BODY_FIELDS = ("name", "tenant", "models", "tiers", "steering", "limits", "budget", "expires")
JSON = "application/json"


class Conflict(ProxyError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


def _record_key(r: dict[str, Any]) -> ApiKey:
    return ApiKey(name=r["name"], tenant=r["tenant"], models=tuple(r["models"]), tiers=tuple(r["tiers"]),
                  steering=bool(r["steering"]), limits=r.get("limits") or {}, budget=r.get("budget") or {},
                  expires_at=r.get("expires_at"), source="store", key_id=r["id"])


def public(r: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """A store record as the API shows it: everything but the digest."""
    out = {k: v for k, v in r.items() if k != "sha256"}
    exp = r.get("expires_at")
    out["expired"] = exp is not None and (time.time() if now is None else now) >= exp
    out["source"] = "store"
    return out


class KeyStore:
    """Client keys kept in the state store."""

    def __init__(self, store: Store, ring: KeyRing, tiers: list[str] | None = None) -> None:
        self.store = store
        self.ring = ring
        self.tiers = tiers
        self._cache: dict[str, tuple[float, ApiKey]] = {}
        self._touched: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def lookup(self, digest: str) -> ApiKey | None:
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            entry = hit[1]
        else:
            record = await self.store.get(PREFIX + digest)
            if record is None:
                self._cache.pop(digest, None)
                return None
            entry = _record_key(record)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + CACHE_S, entry)
        if now - self._touched.get(digest, -TOUCH_S) >= TOUCH_S:
            self._touched[digest] = now
            task = asyncio.get_running_loop().create_task(self._touch(digest))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return entry

    async def _touch(self, digest: str) -> None:
        try:
            record = await self.store.get(PREFIX + digest)
            if record is not None:
                record["last_used_at"] = round(time.time(), 3)
                await self.store.put(PREFIX + digest, record)
        except Exception:  # a failed write of a timestamp must not fail anything else; say so, once
            log.warning("could not record a key's last use", exc_info=True)

    async def records(self) -> list[dict[str, Any]]:
        return [r for _, r in await self.store.scan(PREFIX)]

    async def create(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidRequest("The body must be a JSON object: {name, tenant, models?, tiers?, ...}.")
        for k in body:
            if k not in BODY_FIELDS:
                raise InvalidRequest(f"{k}: unknown field (expected one of {', '.join(BODY_FIELDS)})", param=k)
        try:
            fields = key_fields(body, "key", self.tiers)
        except ConfigError as e:
            raise InvalidRequest(str(e).removeprefix("key."), param=str(e).split(":")[0].removeprefix("key.")) \
                from None
        if "tenant" not in body:
            raise InvalidRequest("tenant: required ('org/project')", param="tenant")
        if fields["expires_at"] is not None and fields["expires_at"] <= time.time():
            raise InvalidRequest("expires: must be in the future", param="expires")
        names = {k.name for k in self.ring.keys.values()} | {r["name"] for r in await self.records()}
        if fields["name"] in names:
            raise Conflict(f"A key named {fields['name']!r} exists already; names are unique.", param="name")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        digest = sha256_hex(secret)
        record = {
            "id": "key_" + secrets.token_hex(8),
            "name": fields["name"],
            "tenant": fields["tenant"],
            "models": list(fields["models"]),
            "tiers": list(fields["tiers"]),
            "steering": fields["steering"],
            "limits": fields["limits"],
            "budget": fields["budget"],
            "created_at": round(time.time(), 3),
            "last_used_at": None,
            "expires_at": fields["expires_at"],
            "sha256": digest,
        }
        await self.store.put(PREFIX + digest, record)
        log.info("key %s (%s) created for tenant %s", record["id"], record["name"], record["tenant"])
        return {**public(record), "key": secret}

    async def find(self, key_id: str) -> tuple[str, dict[str, Any]] | None:
        for k, r in await self.store.scan(PREFIX):
            if r.get("id") == key_id:
                return k, r
        return None

    async def delete(self, key_id: str) -> bool:
        found = await self.find(key_id)
        if found is None:
            return False
        k, r = found
        await self.store.delete(k)
        self._cache.pop(r["sha256"], None)
        log.info("key %s (%s) deleted", key_id, r["name"])
        return True


def config_keys(ring: KeyRing) -> list[dict[str, Any]]:
    return [{"id": None, "name": k.name, "tenant": k.tenant, "models": list(k.models), "tiers": list(k.tiers),
             "steering": k.steering, "limits": dict(k.limits), "budget": dict(k.budget), "created_at": None,
             "last_used_at": None, "expires_at": k.expires_at, "expired": k.expired(), "source": "config"}
            for k in ring.keys.values()]


class KeysAPI:
    """The `/admin/keys` handlers (admin key as Bearer); `service_getter(request)` gives the live service."""

    def __init__(self, service_getter: Any) -> None:
        self.service = service_getter

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/admin/keys", self.create)
        router.add_get("/admin/keys", self.list)
        router.add_get("/admin/keys/{key_id}", self.get)
        router.add_delete("/admin/keys/{key_id}", self.delete)
        router.add_delete("/admin/keys", self.delete)

    def _keys(self, request: web.Request) -> KeyStore:
        svc = self.service(request)
        gate: AdminGate = svc.admin
        gate.check(request.headers)
        return svc.key_store  # type: ignore[no-any-return]

    async def create(self, request: web.Request) -> web.Response:
        try:
            ks = self._keys(request)
            try:
                body = orjson.loads(await request.read())
            except orjson.JSONDecodeError:
                raise InvalidRequest("The body must be valid JSON.", code="invalid_json") from None
            out = await ks.create(body)
        except ProxyError as e:
            return _error(e)
        return web.Response(status=201, body=orjson.dumps(out), content_type=JSON)

    async def list(self, request: web.Request) -> web.Response:
        try:
            ks = self._keys(request)
            now = time.time()
            stored = sorted((public(r, now) for r in await ks.records()), key=lambda r: r["created_at"])
        except ProxyError as e:
            return _error(e)
        return web.Response(body=orjson.dumps({"keys": config_keys(ks.ring) + stored}), content_type=JSON)

    async def get(self, request: web.Request) -> web.Response:
        try:
            found = await self._keys(request).find(request.match_info["key_id"])
            if found is None:
                raise NotFound(f"No key with id {request.match_info['key_id']!r}.", code="key_not_found")
        except ProxyError as e:
            return _error(e)
        return web.Response(body=orjson.dumps(public(found[1])), content_type=JSON)

    async def delete(self, request: web.Request) -> web.Response:
        try:
            ks = self._keys(request)
            key_id = request.match_info.get("key_id") or request.query.get("id")
            if key_id is None:
                raw = await request.read()
                try:
                    body = orjson.loads(raw) if raw else {}
                except orjson.JSONDecodeError:
                    body = {}
                key_id = body.get("id") if isinstance(body, dict) else None
            if not isinstance(key_id, str) or not key_id:
                raise InvalidRequest("Name the key to delete: DELETE /admin/keys/{id} or {\"id\": ...}.", param="id")
            if not await ks.delete(key_id):
                raise NotFound(f"No key with id {key_id!r} (config keys are removed from the config file).",
                               code="key_not_found")
        except ProxyError as e:
            return _error(e)
        return web.Response(status=204)


def _error(e: ProxyError) -> web.Response:
    return web.Response(status=e.status, body=e.body(), content_type=JSON)
