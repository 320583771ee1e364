"""Tenants and their spend policy: the `tenants`, `cache` and key `budget`/`limits` sections, validated.

Every request belongs to a tenant `org/project` (from its key; `default` when the router is open).
`tenants[]` entries are matched in order by glob (`acme/*`), first match wins. This module checks every
key of those entries (`match`, `budget`, `limits`, `steering`, `max_tier`, and `redact` through the
redaction engine's own parser, router/redaction/policy.py, which owns its meaning) and of `cache`,
naming the key path in errors, and refuses a config that sets up a feature whose stage is not in
`pipeline` (a `budget` without the `budget` stage would silently never apply, so it is an error, not a
warning). `Tenants.get(name)` answers the first match, memoised per tenant name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from router.config import Config, ConfigError, check_choice, check_keys
from router.errors import PermissionDenied
from router.redaction.policy import parse_policy

DEFAULT_TENANT = "default"
TENANT_KEYS = ("match", "budget", "limits", "redact", "steering", "max_tier")
BUDGET_KEYS = ("daily_usd", "monthly_usd", "per_request_usd", "soft_pct", "on_soft", "on_hard", "soft_max_tier")
LIMIT_KEYS = ("rpm", "tpm")
CACHE_KEYS = ("ttl_s", "max_entries", "backend", "url", "max_entry_kb")
ON_SOFT = ("downgrade", "notify")
ON_HARD = ("reject", "downgrade")


@dataclass(frozen=True, slots=True)
class Budget:
    daily_usd: float | None = None
    monthly_usd: float | None = None
    per_request_usd: float | None = None
    soft_pct: float | None = None
    on_soft: str = "downgrade"
    on_hard: str = "reject"
    soft_max_tier: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True, slots=True)
class TenantSpec:
    match: str
    budget: Budget | None = None
    limits: Limits | None = None
    redact: dict[str, Any] = field(default_factory=dict)


def _num(v: Any, where: str, *, minimum: float = 0, whole: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{where}: expected a number")
    if v < minimum or (minimum == 0 and v == 0 and whole):
        raise ConfigError(f"{where}: must be {'> 0' if whole else f'>= {minimum}'}")
    if whole and v != int(v):
        raise ConfigError(f"{where}: expected a whole number")
    return v


def _mapping(v: Any, where: str, keys: tuple[str, ...], example: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ConfigError(f"{where}: expected a mapping such as {example}")
    check_keys(v, keys, where)
    return v


def parse_budget(v: Any, where: str, tiers: list[str]) -> Budget | None:
    """A `budget:` mapping (tenant or key) → Budget; errors name the key path."""
    if v is None:
        return None
    v = _mapping(v, where, BUDGET_KEYS, "{daily_usd: 20, monthly_usd: 300}")
    amounts = {k: (None if v.get(k) is None else float(_num(v[k], f"{where}.{k}")))
               for k in ("daily_usd", "monthly_usd", "per_request_usd")}
    if all(a is None for a in amounts.values()):
        raise ConfigError(f"{where}: set at least one of daily_usd, monthly_usd, per_request_usd")
    soft = v.get("soft_pct")
    if soft is not None:
        soft = float(_num(soft, f"{where}.soft_pct"))
        if not 0 < soft < 100:
            raise ConfigError(f"{where}.soft_pct: expected a percentage between 0 and 100 (exclusive)")
    on_soft = check_choice(v, "on_soft", ON_SOFT, "downgrade", where)
    on_hard = check_choice(v, "on_hard", ON_HARD, "reject", where)
    smt = v.get("soft_max_tier")
    if smt is not None and smt not in tiers:
        raise ConfigError(f"{where}.soft_max_tier: {smt!r} is not in routing.tiers ({', '.join(tiers)})")
    if (smt is not None or "on_soft" in v) and soft is None:
        raise ConfigError(f"{where}.soft_pct: required when on_soft or soft_max_tier is set")
    return Budget(daily_usd=amounts["daily_usd"], monthly_usd=amounts["monthly_usd"],
                  per_request_usd=amounts["per_request_usd"], soft_pct=soft, on_soft=on_soft, on_hard=on_hard,
                  soft_max_tier=smt)


def parse_limits(v: Any, where: str) -> Limits | None:
    """A `limits:` mapping (tenant or key) → Limits."""
    if v is None:
        return None
    v = _mapping(v, where, LIMIT_KEYS, "{rpm: 600, tpm: 200000}")
    if not v:
        raise ConfigError(f"{where}: set rpm and/or tpm")
    rpm, tpm = v.get("rpm"), v.get("tpm")
    return Limits(rpm=None if rpm is None else int(_num(rpm, f"{where}.rpm", whole=True)),
                  tpm=None if tpm is None else int(_num(tpm, f"{where}.tpm", whole=True)))


def check_redact(v: Any, where: str) -> dict[str, Any]:
    """A tenant's `redact:`, checked by the redaction engine's own parser (it owns what the keys mean)."""
    if v is None:
        return {}
    parse_policy(v, where)
    return dict(v)


def check_cache(v: dict[str, Any]) -> dict[str, Any]:
    v = _mapping(v, "cache", CACHE_KEYS, "{ttl_s: 3600, max_entries: 10000}")
    if "ttl_s" in v:
        _num(v["ttl_s"], "cache.ttl_s", whole=True)
    if "max_entries" in v:
        _num(v["max_entries"], "cache.max_entries", whole=True)
    if "max_entry_kb" in v:
        _num(v["max_entry_kb"], "cache.max_entry_kb", whole=True)
    if v.get("backend", "memory") not in ("memory", "redis"):
        raise ConfigError(f"cache.backend: expected memory or redis, got {v.get('backend')!r}")
    if "url" in v and not (isinstance(v["url"], str) and v["url"].startswith(("redis://", "rediss://"))):
        raise ConfigError("cache.url: expected a redis:// URL")
    if v.get("backend") == "redis" and "url" not in v:
        raise ConfigError("cache.url: required with backend: redis (e.g. redis://127.0.0.1:6379/0)")
    return v


def _stage_names(pipeline: list[Any]) -> set[str]:
    return {e.get("use") if isinstance(e, dict) else e for e in pipeline}  # type: ignore[misc]


class Tenants:
    """The validated `tenants:` table; `get(name)` is the first match (memoised)."""

    def __init__(self, config: Config) -> None:
        tiers = config.routing.tiers
        stages = _stage_names(config.pipeline)
        self.specs: list[TenantSpec] = []
        for i, t in enumerate(config.tenants):
            where = f"tenants[{i}]"
            t = _mapping(t, where, TENANT_KEYS, "{match: 'acme/*', budget: {...}}")
            m = t.get("match")
            if not isinstance(m, str) or not m:
                raise ConfigError(f"{where}.match: required (a tenant glob such as 'acme/*')")
            spec = TenantSpec(match=m, budget=parse_budget(t.get("budget"), f"{where}.budget", tiers),
                              limits=parse_limits(t.get("limits"), f"{where}.limits"),
                              redact=check_redact(t.get("redact"), f"{where}.redact"))
            for key, stage in (("budget", "budget"), ("limits", "ratelimit"), ("redact", "redact")):
                if t.get(key) is not None and stage not in stages:
                    raise ConfigError(f"{where}.{key}: the `{stage}` stage is not in pipeline, so this would never "
                                      f"apply (add {stage} to pipeline or remove the key)")
            self.specs.append(spec)
        self.cache = check_cache(config.cache)
        if config.cache and "cache" not in stages:
            raise ConfigError("cache: the `cache` stage is not in pipeline, so this would never apply "
                              "(add cache to pipeline or remove the section)")
        for i, k in enumerate(config.auth.get("keys") or []):
            if not isinstance(k, dict):
                continue
            for key, stage in (("budget", "budget"), ("limits", "ratelimit")):
                if k.get(key) is not None and stage not in stages:
                    raise ConfigError(f"auth.keys[{i}].{key}: the `{stage}` stage is not in pipeline, so this "
                                      "would never apply")
            parse_budget(k.get("budget"), f"auth.keys[{i}].budget", tiers)
            parse_limits(k.get("limits"), f"auth.keys[{i}].limits")
        self._memo: dict[str, TenantSpec | None] = {}

    def get(self, tenant: str) -> TenantSpec | None:
        try:
            return self._memo[tenant]
        except KeyError:
            pass
        spec = next((s for s in self.specs if fnmatchcase(tenant, s.match)), None)
        if len(self._memo) < 100_000:
            self._memo[tenant] = spec
        return spec


class KeyAllowance:
    """A key's own `budget` or `limits` (keys also come from the store at run time), parsed once per key
    object, so a key reloaded with new allowances is read again. An unreadable one fails closed: 403."""

    def __init__(self, field: str, parse: Callable[[dict[str, Any], str], Any]) -> None:
        self.field = field
        self.parse = parse
        self._memo: dict[tuple[str, int], Any] = {}

    def get(self, key: Any) -> Any:
        raw = getattr(key, self.field, None) if key is not None else None
        if not raw:
            return None
        memo = (key.name, id(raw))
        try:
            return self._memo[memo]
        except KeyError:
            pass
        if len(self._memo) > 10_000:
            self._memo.clear()
        try:
            value = self._memo[memo] = self.parse(dict(raw), f"key '{key.name}'.{self.field}")
        except ConfigError as e:
            raise PermissionDenied(f"This key's {self.field} is misconfigured: {e}", code="key_misconfigured"
                                   ) from None
        return value
