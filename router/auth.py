"""Client keys: who may call the router, as which tenant, with what allowances (the `auth` section).

`KeyRing` is built once per config. It validates `auth` (errors name the key path), holds the config
keys by SHA-256 digest, and looks up run-time keys (`/admin/keys`) in the state store when one is
attached. It answers three questions for the rest of the router:

- `required`: do clients need a key? Yes when keys are configured (`auth.keys`, or the admin key is set,
  so keys are managed at run time), unless `auth.open: true` says anonymous callers are welcome.
- `identify(headers)`: the `ApiKey` a request carries (`Authorization: Bearer KEY` or `x-api-key`), None
  for an anonymous caller on an open router; 401 for a missing, wrong or expired key.
- `exposure(host)`: refuses a router that would serve anyone on a non-loopback address (no keys, no
  `auth.open: true`), and says when a router is open, for the start-up log.

Keys are never kept in clear: config keys come from the environment (`key_env`) or as a digest
(`key_sha256`), store keys are stored hashed. Nothing here imports aiohttp.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from router.admin import DEFAULT_ADMIN_KEY_ENV
from router.config import ConfigError, check_keys
from router.errors import AuthenticationFailed

AUTH_KEYS = ("admin_key_env", "open", "keys")
KEY_FIELDS = ("name", "key_env", "key_sha256", "tenant", "models", "tiers", "steering", "limits", "budget",
              "expires")
TENANT = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.*-]+$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
LIMIT_FIELDS = ("rpm", "tpm")
SEEN_MAX = 1024  # config keys remembered by the presented key (`KeyRing.identify_sync`)
NO_KEY = "You didn't provide an API key. Send it as 'Authorization: Bearer KEY' (or 'x-api-key: KEY')."


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()  # a header's non-UTF-8 bytes: 401


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One client key's identity and allowances (never the key itself)."""

    name: str
    tenant: str
    models: tuple[str, ...] = ("*",)  # what the client's `model` field may name (globs)
    tiers: tuple[str, ...] = ("*",)  # which tiers routing may send its requests to (globs)
    steering: bool = True  # may it use x-router-prefer / x-router-max-tier (the tenant may forbid too)
    limits: Mapping[str, Any] = field(default_factory=dict)  # {rpm, tpm}: enforced by `ratelimit`
    budget: Mapping[str, Any] = field(default_factory=dict)  # enforced by `budget`
    expires_at: float | None = None  # epoch seconds
    source: str = "config"  # config | store
    key_id: str | None = None  # a store key's public id

    def allows(self, model: str) -> bool:
        return self.models == ("*",) or any(fnmatchcase(model, pat) for pat in self.models)

    def allows_tier(self, tier: str | None) -> bool:
        return self.tiers == ("*",) or (tier is not None and any(fnmatchcase(tier, p) for p in self.tiers))

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (time.time() if now is None else now) >= self.expires_at


def client_key(headers: Any) -> str | None:
    """The key a request carries: `Authorization: Bearer KEY` (OpenAI SDKs) or `x-api-key` (Anthropic)."""
    auth = headers.get("Authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            return token
    return headers.get("x-api-key") or None


# ---------------------------------------------------------------- validation


def _globs(v: Any, where: str) -> tuple[str, ...]:
    if v is None:
        return ("*",)
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        raise ConfigError(f"{where}: expected a non-empty list of names or globs")
    return tuple(v)


def parse_expiry(v: Any, where: str) -> float | None:
    """`expires`: a date (`2027-01-31`, end of that day UTC), an ISO timestamp, or epoch seconds."""
    if v is None:
        return None
    if isinstance(v, bool):
        raise ConfigError(f"{where}: expected a date, an ISO timestamp or epoch seconds")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, dt.datetime):
        return (v if v.tzinfo else v.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC).timestamp() + 86400
    if isinstance(v, str):
        try:
            if len(v) == 10:
                return parse_expiry(dt.date.fromisoformat(v), where)
            return parse_expiry(dt.datetime.fromisoformat(v.replace("Z", "+00:00")), where)
        except ValueError:
            pass
    raise ConfigError(f"{where}: expected a date, an ISO timestamp or epoch seconds")


def _limits(v: Any, where: str) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(f"{where}: expected a mapping such as {{rpm: 600, tpm: 200000}}")
    check_keys(v, LIMIT_FIELDS, where)
    for k, n in v.items():
        if isinstance(n, bool) or not isinstance(n, int | float) or n <= 0:
            raise ConfigError(f"{where}.{k}: expected a positive number")
    return dict(v)


def key_fields(k: Mapping[str, Any], where: str, tiers: list[str] | None = None) -> dict[str, Any]:
    """The validated allowance fields shared by config keys and `/admin/keys` bodies (not the secret)."""
    name = k.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name: required (a string)")
    tenant = k.get("tenant")
    if tenant is None:
        tenant = f"default/{name}"
    if not isinstance(tenant, str) or not TENANT.match(tenant):
        raise ConfigError(f"{where}.tenant: expected 'org/project', got {tenant!r}")
    steering = k.get("steering", True)
    if not isinstance(steering, bool):
        raise ConfigError(f"{where}.steering: expected true or false")
    key_tiers = _globs(k.get("tiers"), f"{where}.tiers")
    if tiers is not None and key_tiers != ("*",):
        for i, pat in enumerate(key_tiers):
            if not any(fnmatchcase(t, pat) for t in tiers):
                raise ConfigError(f"{where}.tiers[{i}]: {pat!r} matches no tier in routing.tiers")
    budget = k.get("budget")
    if budget is not None and not isinstance(budget, dict):
        raise ConfigError(f"{where}.budget: expected a mapping")
    return {
        "name": name,
        "tenant": tenant,
        "models": _globs(k.get("models"), f"{where}.models"),
        "tiers": key_tiers,
        "steering": steering,
        "limits": _limits(k.get("limits"), f"{where}.limits"),
        "budget": dict(budget or {}),
        "expires_at": parse_expiry(k.get("expires"), f"{where}.expires"),
    }


def _config_keys(entries: Any, env: Mapping[str, str], tiers: list[str] | None) -> dict[str, ApiKey]:
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise ConfigError("auth.keys: expected a list")
    keys: dict[str, ApiKey] = {}
    names: set[str] = set()
    for i, k in enumerate(entries):
        where = f"auth.keys[{i}]"
        if not isinstance(k, dict):
            raise ConfigError(f"{where}: expected a mapping {{name, key_env | key_sha256, tenant, ...}}")
        check_keys(k, KEY_FIELDS, where)
        fields = key_fields(k, where, tiers)
        if fields["name"] in names:
            raise ConfigError(f"{where}.name: duplicate key name {fields['name']!r}")
        names.add(fields["name"])
        if ("key_env" in k) == ("key_sha256" in k):
            raise ConfigError(f"{where}: needs exactly one of key_env (an environment variable) or key_sha256")
        if "key_env" in k:
            var = k["key_env"]
            if not isinstance(var, str) or not var:
                raise ConfigError(f"{where}.key_env: expected the name of an environment variable")
            secret = env.get(var)
            if not secret:
                raise ConfigError(f"{where}.key_env: the environment variable {var} is not set")
            digest = sha256_hex(secret)
        else:
            digest = str(k["key_sha256"]).strip().lower()
            if not HEX64.match(digest):
                raise ConfigError(f"{where}.key_sha256: expected 64 hex digits (sha256 of the key)")
        if digest in keys:
            raise ConfigError(f"{where}: the same key as auth.keys entry {keys[digest].name!r}")
        keys[digest] = ApiKey(**fields)
    return keys


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------- the key ring


KeyLookup = Callable[[str], Awaitable[ApiKey | None]]


class KeyRing:
    """The config's client keys (and the run-time key store, once attached), checked per request."""

    def __init__(self, auth: Mapping[str, Any], pipeline: list[Any], tiers: list[str] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        if not isinstance(auth, Mapping):
            raise ConfigError("auth: expected a mapping")
        check_keys(auth, AUTH_KEYS, "auth")
        admin_env = auth.get("admin_key_env", DEFAULT_ADMIN_KEY_ENV)
        if not isinstance(admin_env, str) or not admin_env:
            raise ConfigError("auth.admin_key_env: expected the name of an environment variable")
        self.open = auth.get("open", False)
        if not isinstance(self.open, bool):
            raise ConfigError("auth.open: expected true or false")
        self.keys = _config_keys(auth.get("keys"), env, tiers)
        self.admin_set = bool(env.get(admin_env))
        self.admin_env = admin_env
        in_pipeline = any(_stage_name(e) == "auth" for e in pipeline)
        if self.keys and not in_pipeline:
            raise ConfigError("pipeline: auth.keys are configured but `auth` is not in the pipeline, so they "
                              "would not be checked; add auth (first) or remove the keys")
        self.enforced = in_pipeline  # can the pipeline check keys at all
        self.keyed = bool(self.keys) or self.admin_set  # keys exist or can be created (/admin/keys)
        self.required = in_pipeline and self.keyed and not self.open
        self.lookup: KeyLookup | None = None  # the run-time key store, attached by the server
        # config keys by the key a client presented, so a client that sends the same key with every request
        # pays the SHA-256 once (bounded; only keys that matched a config key are kept)
        self._seen: dict[str, ApiKey] = {}
        # and by the whole `Authorization` header that carried one that never expires: the usual request is one
        # header lookup and one dict lookup (bounded like `_seen`)
        self._headers: dict[str, ApiKey] = {}

    def attach(self, lookup: KeyLookup | None) -> None:
        self.lookup = lookup

    def identify_sync(self, headers: Any) -> tuple[ApiKey | None, str | None]:
        """Resolve from config keys alone: (key, None), or (None, digest) when the store must be asked,
        or (None, None) for an anonymous caller allowed in. Raises 401 when no key is allowed."""
        auth = headers.get("Authorization")
        if auth is not None:
            hit = self._headers.get(auth)
            if hit is not None:
                return hit, None
        key = client_key(headers)
        if key is None:
            if self.required:
                raise AuthenticationFailed(NO_KEY, code="missing_api_key")
            return None, None
        if not self.keyed:  # an open router without keys: whatever the SDK sends as api_key is ignored
            return None, None
        entry = self._seen.get(key)
        if entry is None:
            digest = sha256_hex(key)
            entry = self.keys.get(digest)
            if entry is None:
                if self.lookup is None:
                    raise AuthenticationFailed("Incorrect API key provided.")
                return None, digest
            if len(self._seen) >= SEEN_MAX:
                self._seen.clear()
            self._seen[key] = entry
        if auth is not None and entry.expires_at is None and client_key({"Authorization": auth}) is not None:
            # the key came from this header (client_key reads it first): a config key, which no run-time change
            # removes, and which never expires
            if len(self._headers) >= SEEN_MAX:
                self._headers.clear()
            self._headers[auth] = entry
        return _valid(entry), None

    async def identify(self, headers: Any) -> ApiKey | None:
        entry, digest = self.identify_sync(headers)
        if digest is None:
            return entry
        return await self.from_store(digest)

    async def from_store(self, digest: str) -> ApiKey:
        assert self.lookup is not None
        entry = await self.lookup(digest)
        if entry is None:
            raise AuthenticationFailed("Incorrect API key provided.")
        return _valid(entry)

    def exposure(self, host: str) -> str | None:
        """Raise ConfigError for a router that would serve anyone on a non-loopback host; return the
        warning for the start-up log when the router is open (None when keys are required)."""
        if self.required:
            return None
        if not self.enforced and self.keyed:
            why = f"the admin key (${self.admin_env}) is set but `auth` is not in the pipeline"
        elif self.open:
            why = "auth.open: true"
        else:
            why = "no client keys are configured (auth.keys) and no admin key is set"
        if not is_loopback(host) and not self.open:
            raise ConfigError(
                f"server.host: refusing to serve on {host}, a non-loopback address, with no client keys: "
                f"{why}, so anyone who can reach the port could spend your upstream keys. Configure "
                "auth.keys (or set the admin key and create keys at /admin/keys), bind 127.0.0.1, or set "
                "auth.open: true to serve without keys on purpose."
            )
        return f"the router is OPEN: {why}; anyone who can reach it may use it without a key"


def _valid(entry: ApiKey) -> ApiKey:
    if entry.expired():
        raise AuthenticationFailed("This API key has expired.", code="expired_api_key")
    return entry


def _stage_name(entry: Any) -> Any:
    return entry.get("use") if isinstance(entry, dict) else entry
