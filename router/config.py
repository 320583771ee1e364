"""Config: YAML in, validated typed settings out, read once at start-up (and on reload).

`load(path)` expands `${VAR}` / `${VAR:-default}` from the environment in string values, checks every
key and type, and names the failing key path in its error (`backends[1].models[0].price.input:
expected a number`). Everything downstream (server, pipeline, backends, stages) reads these objects,
never the raw YAML, except the sections a stage owns (`auth`, `tenants`, `cache`, `routing.tasks`),
which arrive as plain dicts to the stage that validates them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

DEFAULT_PIPELINE = ["auth", "ratelimit", "redact", "classify", "cache", "budget", "route", "retry"]
COMPLEXITIES = ("low", "medium", "high")
PROMOTION_TRIGGERS = ("error", "timeout", "overload", "slow_first_token", "missing_model")
DEFAULT_PROMOTION = ("error", "timeout", "overload", "slow_first_token")  # missing_model only when listed
HEALTH_PROBES = ("auto", "openai", "ollama", "off")
CAPABILITIES = ("tools", "vision", "json", "responses")  # responses: the upstream serves /responses itself
BACKEND_KINDS = ("openai", "anthropic", "azure")


class ConfigError(ValueError):
    """A config that cannot be used; the message starts with the key path."""


def check_keys(mapping: Any, allowed: tuple[str, ...], where: str) -> None:
    """Refuse the first key of `mapping` not in `allowed`, naming its path: no config key is silently ignored."""
    for k in mapping:
        if k not in allowed:
            raise ConfigError(f"{f'{where}.' if where else ''}{k}: unknown key (expected one of {', '.join(allowed)})")


def check_choice(mapping: Any, key: str, choices: tuple[str, ...], default: str, where: str) -> str:
    """`mapping[key]` (else `default`) when it is one of `choices`; else an error naming the key path."""
    v = mapping.get(key, default)
    if v not in choices:
        raise ConfigError(f"{where}.{key}: expected one of {', '.join(choices)}, got {v!r}")
    return v


@dataclass(frozen=True, slots=True)
class Price:
    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None


@dataclass(slots=True)
class ModelSpec:
    id: str
    backend: str
    tier: str | None = None
    type: str = "chat"
    context: int = 8192
    capabilities: frozenset[str] = frozenset()
    price: Price = field(default_factory=Price)
    params: dict[str, Any] = field(default_factory=dict)
    force_params: dict[str, Any] = field(default_factory=dict)
    encoding: str | None = None
    location: str = "cloud"

    @property
    def is_free(self) -> bool:
        return self.price.input == 0 and self.price.output == 0


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float = 5.0
    first_byte_s: float = 60.0
    idle_s: float = 60.0
    total_s: float = 600.0


@dataclass(frozen=True, slots=True)
class BreakerSpec:
    """When a backend's circuit opens: `failures` in a row, or an `error_rate` over `window_s` once at
    least `min_requests` were seen; it stays open `cooldown_s`, then lets one probe request through."""

    failures: int = 3
    error_rate: float = 0.5
    window_s: float = 30.0
    min_requests: int = 10
    cooldown_s: float = 10.0


@dataclass(frozen=True, slots=True)
class HealthSpec:
    """Background health checks: `probe` auto | openai (GET /models) | ollama (GET /api/tags) | off;
    `check_models` None: only on `location: local` backends (where a model may never have been pulled)."""

    probe: str = "auto"
    interval_s: float = 15.0
    timeout_s: float = 5.0
    check_models: bool | None = None


@dataclass(slots=True)
class BackendSpec:
    name: str
    kind: str
    base_url: str
    location: str = "cloud"
    api_key_env: str | None = None
    max_concurrency: int = 64
    timeouts: Timeouts = field(default_factory=Timeouts)
    models: list[ModelSpec] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    api_version: str | None = None
    proxy: str | None = None  # egress proxy URL, "direct", or None: the environment decides (backends/egress.py)
    ca_file: str | None = None  # extra CA bundle for TLS to this upstream (a private CA)
    queue_ms: float = 50.0
    breaker: BreakerSpec = field(default_factory=BreakerSpec)
    health: HealthSpec = field(default_factory=HealthSpec)


@dataclass(frozen=True, slots=True)
class Rule:
    tier: str
    task: str | None = None
    max_prompt_tokens: int | None = None
    complexity: str | None = None
    tenant: str | None = None
    has_tools: bool | None = None
    has_images: bool | None = None
    min_difficulty: float | None = None
    max_difficulty: float | None = None


@dataclass(frozen=True, slots=True)
class Promotion:
    on: frozenset[str] = frozenset(DEFAULT_PROMOTION)
    first_token_ms: float = 2500.0
    max_steps: int = 2


@dataclass(frozen=True, slots=True)
class Adaptive:
    """`routing.adaptive`: the feedback-driven per-tenant policy (router/routing/adaptive.py explains it)."""

    enabled: bool = False
    min_samples: int = 20  # weighted outcomes per location before a cell's plan may move decisions
    buckets: int = 5  # difficulty buckets per task
    cloud_share: float | str = "free"  # "free", "rules" (hold the rules' share) or a share in (0, 1]
    min_gain: float = 0.1  # quality (mean score) a cloud call must buy over local
    explore: float = 0.03  # share of a cell's requests sent to the other location while it is learnt
    explore_floor: float = 0.01  # the same once it is known, to notice drift
    half_life_days: float = 7.0  # outcomes lose half their weight in this time
    implicit_weight: float = 0.5  # weight of an implicit outcome (an explicit rating weighs 1)
    reask_window_s: float = 120.0  # the same prompt again within this time marks the earlier answer bad
    remember_s: float = 86400.0  # how long a request can be rated (POST /v1/feedback)
    remember_max: int = 100_000  # at most this many requests remembered (oldest forgotten first)


@dataclass(slots=True)
class Routing:
    tiers: list[str]
    rules: list[Rule]
    min_confidence: float = 0.5
    promotion: Promotion = field(default_factory=Promotion)
    tasks: dict[str, Any] | None = None
    encoding: str = "o200k_base"
    complexity_cuts: tuple[float, float] = (0.35, 0.65)
    adaptive: Adaptive = field(default_factory=Adaptive)
    learned_difficulty: bool = True  # add the shipped learned layer to the hand-tuned difficulty
    spill: bool = True  # a saturated backend's request goes to the next candidate instead of queueing


@dataclass(frozen=True, slots=True)
class ServerSpec:
    host: str = "127.0.0.1"
    port: int = 8082
    workers: int = 1
    max_body_mb: float = 32.0
    shutdown_grace_s: float = 30.0
    max_upstream_body_mb: float = 64.0
    request_head_timeout_s: float = 10.0
    keepalive_s: float = 75.0
    write_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class LoggingSpec:
    level: str = "info"
    access_log: bool = True
    format: str = "json"  # json | text


@dataclass(frozen=True, slots=True)
class MetricsSpec:
    """`/metrics` and the dashboard (router/observe/)."""

    enabled: bool = True
    public: bool = False  # true: /metrics needs no admin key even when keys are configured
    decisions: int = 50  # how many recent decisions the dashboard shows


@dataclass(frozen=True, slots=True)
class TracingSpec:
    """Optional OpenTelemetry tracing (the `otel` extra)."""

    enabled: bool = False
    exporter: str = "otlp"  # otlp | console | none (spans made, nothing exported: for tests and overhead runs)
    endpoint: str | None = None  # OTLP/HTTP traces URL; default from OTEL_EXPORTER_OTLP_* or localhost:4318
    service_name: str = "ai-router"
    sample_ratio: float = 1.0


@dataclass(slots=True)
class Config:
    server: ServerSpec
    state_url: str
    backends: list[BackendSpec]
    routing: Routing
    pipeline: list[str]
    auth: dict[str, Any]
    tenants: list[dict[str, Any]]
    cache: dict[str, Any]
    logging: LoggingSpec
    metrics: MetricsSpec = field(default_factory=MetricsSpec)
    tracing: TracingSpec = field(default_factory=TracingSpec)
    source: str = "<memory>"

    def models(self) -> list[ModelSpec]:
        return [m for b in self.backends for m in b.models]


# ---------------------------------------------------------------- environment expansion

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, env: dict[str, str] | None = None) -> Any:
    """Expand `${VAR}` and `${VAR:-default}` in every string of a loaded YAML tree."""
    env = os.environ if env is None else env
    if isinstance(value, str):
        if "${" not in value:
            return value
        return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- typed reading with key paths


class _Node:
    """A mapping being read, with its key path for error messages."""

    __slots__ = ("data", "path", "seen")

    def __init__(self, data: Any, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path or '<root>'}: expected a mapping")
        self.data = data
        self.path = path
        self.seen: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def has(self, key: str) -> bool:
        return key in self.data

    def str(self, key: str, default: str | None = None, *, required: bool = False) -> Any:
        v = self.get(key)
        if v is None:
            if required:
                raise ConfigError(f"{self._key(key)}: required")
            return default
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise ConfigError(f"{self._key(key)}: expected a string")
        return str(v)

    def num(self, key: str, default: float | None = None, *, minimum: float | None = None) -> Any:
        v = self.get(key)
        if v is None:
            return default
        if isinstance(v, str):
            try:
                v = float(v) if any(c in v for c in ".eE") else int(v)
            except ValueError:
                raise ConfigError(f"{self._key(key)}: expected a number") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{self._key(key)}: expected a number")
        if minimum is not None and v < minimum:
            raise ConfigError(f"{self._key(key)}: must be >= {minimum}")
        return v

    def int(self, key: str, default: int | None = None, *, minimum: int | None = None) -> Any:
        v = self.num(key, default, minimum=minimum)
        if v is not None and v != int(v):
            raise ConfigError(f"{self._key(key)}: expected a whole number")
        return None if v is None else int(v)

    def bool(self, key: str, default: bool | None = None) -> Any:
        v = self.get(key)
        if v is None:
            return default
        if isinstance(v, str) and v.lower() in ("true", "false", "yes", "no", "1", "0"):
            return v.lower() in ("true", "yes", "1")
        if not isinstance(v, bool):
            raise ConfigError(f"{self._key(key)}: expected true or false")
        return v

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> Any:
        v = self.str(key, default)
        if v is not None and v not in choices:
            raise ConfigError(f"{self._key(key)}: expected one of {', '.join(choices)}, got {v!r}")
        return v

    def list(self, key: str) -> list[Any]:
        v = self.get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            raise ConfigError(f"{self._key(key)}: expected a list")
        return v

    def str_list(self, key: str) -> list[str]:
        out = []
        for i, v in enumerate(self.list(key)):
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                raise ConfigError(f"{self._key(key)}[{i}]: expected a string")
            out.append(str(v))
        return out

    def child(self, key: str) -> _Node:
        return _Node(self.get(key), self._key(key))

    def item(self, key: str, i: int, value: Any) -> _Node:
        return _Node(value, f"{self._key(key)}[{i}]")

    def mapping(self, key: str) -> dict[str, Any]:
        v = self.get(key)
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ConfigError(f"{self._key(key)}: expected a mapping")
        return v

    def no_unknown(self, allowed: tuple[str, ...]) -> None:
        check_keys(self.data, allowed, self.path)


# ---------------------------------------------------------------- sections


def _server(n: _Node) -> ServerSpec:
    n.no_unknown(("host", "port", "workers", "max_body_mb", "shutdown_grace_s", *LIMIT_KEYS))
    return ServerSpec(
        host=n.str("host", "127.0.0.1"),
        port=n.int("port", 8082, minimum=0),
        workers=n.int("workers", 1, minimum=1),
        max_body_mb=n.num("max_body_mb", 32.0, minimum=0.001),
        shutdown_grace_s=n.num("shutdown_grace_s", 30.0, minimum=0),
        **_server_limits(n),
    )


LIMIT_KEYS = ("max_upstream_body_mb", "request_head_timeout_s", "keepalive_s", "write_timeout_s")


def _server_limits(n: _Node) -> dict[str, float]:
    """The hardening limits of `server:` (issue 10): upstream body size, client head/keep-alive/write timeouts."""
    d = ServerSpec()
    return {k: n.num(k, getattr(d, k), minimum=0.001) for k in LIMIT_KEYS}


def _model(n: _Node, backend: str, location: str) -> ModelSpec:
    n.no_unknown(("id", "tier", "type", "context", "capabilities", "price", "params", "force_params", "encoding"))
    caps = n.str_list("capabilities")
    for i, c in enumerate(caps):
        if c not in CAPABILITIES:
            raise ConfigError(f"{n.path}.capabilities[{i}]: expected one of {', '.join(CAPABILITIES)}")
    p = n.child("price")
    p.no_unknown(("input", "output", "cached_input"))
    price = Price(
        input=p.num("input", 0.0, minimum=0), output=p.num("output", 0.0, minimum=0),
        cached_input=p.num("cached_input", None, minimum=0),
    )
    return ModelSpec(
        id=n.str("id", required=True),
        backend=backend,
        tier=n.str("tier"),
        type=n.choice("type", ("chat", "embedding"), "chat"),
        context=n.int("context", 8192, minimum=1),
        capabilities=frozenset(caps),
        price=price,
        params=n.mapping("params"),
        force_params=n.mapping("force_params"),
        encoding=n.str("encoding"),
        location=location,
    )


def _backend(n: _Node) -> BackendSpec:
    n.no_unknown(("name", "kind", "location", "base_url", "api_key_env", "max_concurrency", "timeouts",
                  "models", "headers", "api_version", "proxy", "ca_file", "queue_ms", "breaker", "health"))
    name = n.str("name", required=True)
    location = n.choice("location", ("local", "cloud"), "cloud")
    base_url = n.str("base_url", required=True).rstrip("/")
    if not re.match(r"^https?://[^/]", base_url):
        raise ConfigError(f"{n.path}.base_url: expected an http:// or https:// URL")
    t = n.child("timeouts")
    t.no_unknown(("connect_s", "first_byte_s", "idle_s", "total_s"))
    d = Timeouts()
    timeouts = Timeouts(
        connect_s=t.num("connect_s", d.connect_s, minimum=0.001),
        first_byte_s=t.num("first_byte_s", d.first_byte_s, minimum=0.001),
        idle_s=t.num("idle_s", d.idle_s, minimum=0.001),
        total_s=t.num("total_s", d.total_s, minimum=0.001),
    )
    headers = {str(k): str(v) for k, v in n.mapping("headers").items()}
    models = [_model(n.item("models", i, m), name, location) for i, m in enumerate(n.list("models"))]
    if not models:
        raise ConfigError(f"{n.path}.models: at least one model is required")
    kind = n.choice("kind", BACKEND_KINDS, "openai")
    if kind == "openai" and n.has("api_version"):
        raise ConfigError(f"{n.path}.api_version: only kind azure (api-version) and anthropic (anthropic-version) "
                          f"use it")
    for i, m in enumerate(models):
        if kind == "anthropic" and "responses" in m.capabilities:
            raise ConfigError(f"{n.path}.models[{i}].capabilities: 'responses' needs an OpenAI-format backend "
                              f"(an anthropic backend gets Responses requests translated)")
    return BackendSpec(
        name=name,
        kind=kind,
        base_url=base_url,
        location=location,
        api_key_env=n.str("api_key_env"),
        max_concurrency=n.int("max_concurrency", 64, minimum=1),
        timeouts=timeouts,
        models=models,
        headers=headers,
        api_version=n.str("api_version"),
        **_egress(n),
        queue_ms=n.num("queue_ms", 50.0, minimum=0),
        breaker=_breaker(n.child("breaker")),
        health=_health(n.child("health")),
    )


def _breaker(n: _Node) -> BreakerSpec:
    n.no_unknown(("failures", "error_rate", "window_s", "min_requests", "cooldown_s"))
    d = BreakerSpec()
    rate = n.num("error_rate", d.error_rate, minimum=0)
    if rate > 1:
        raise ConfigError(f"{n.path}.error_rate: must be between 0 and 1")
    return BreakerSpec(
        failures=n.int("failures", d.failures, minimum=1),
        error_rate=rate,
        window_s=n.num("window_s", d.window_s, minimum=1),
        min_requests=n.int("min_requests", d.min_requests, minimum=1),
        cooldown_s=n.num("cooldown_s", d.cooldown_s, minimum=0.01),
    )


def _health(n: _Node) -> HealthSpec:
    n.no_unknown(("probe", "interval_s", "timeout_s", "check_models"))
    d = HealthSpec()
    return HealthSpec(
        probe=n.choice("probe", HEALTH_PROBES, d.probe),
        interval_s=n.num("interval_s", d.interval_s, minimum=0.05),
        timeout_s=n.num("timeout_s", d.timeout_s, minimum=0.01),
        check_models=n.bool("check_models", d.check_models),
    )


def _egress(n: _Node) -> dict[str, Any]:
    """A backend's `proxy` (http://[user:pass@]host:port or `direct`) and `ca_file` (a readable PEM file)."""
    proxy = n.str("proxy")
    if proxy is not None and proxy not in ("", "direct"):
        u = urlsplit(proxy)
        try:
            u.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            raise ConfigError(f"{n.path}.proxy: invalid port") from None
        if u.scheme != "http" or not u.hostname:
            raise ConfigError(f"{n.path}.proxy: expected http://[user:password@]host:port or direct")
    ca_file = n.str("ca_file")
    if ca_file is not None:
        if not n.data["base_url"].startswith("https://"):
            raise ConfigError(f"{n.path}.ca_file: only used with an https:// base_url")
        if not os.access(ca_file, os.R_OK) or not os.path.isfile(ca_file):
            raise ConfigError(f"{n.path}.ca_file: {ca_file!r} is not a readable file")
    return {"proxy": proxy, "ca_file": ca_file}


def _rule(n: _Node, tiers: list[str]) -> Rule:
    n.no_unknown(("tier", "task", "max_prompt_tokens", "complexity", "tenant", "has_tools", "has_images",
                  "min_difficulty", "max_difficulty"))
    tier = n.str("tier", required=True)
    if tier not in tiers:
        raise ConfigError(f"{n.path}.tier: {tier!r} is not in routing.tiers")
    lo, hi = _unit(n, "min_difficulty"), _unit(n, "max_difficulty")
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"{n.path}.min_difficulty: must not exceed max_difficulty ({lo:g} > {hi:g})")
    return Rule(
        min_difficulty=lo,
        max_difficulty=hi,
        tier=tier,
        task=n.str("task"),
        max_prompt_tokens=n.int("max_prompt_tokens", None, minimum=0),
        complexity=n.choice("complexity", COMPLEXITIES),
        tenant=n.str("tenant"),
        has_tools=n.bool("has_tools"),
        has_images=n.bool("has_images"),
    )


def _unit(n: _Node, key: str) -> float | None:
    """An optional number in [0, 1] (a difficulty)."""
    v = n.num(key, None, minimum=0)
    if v is not None and v > 1:
        raise ConfigError(f"{n._key(key)}: must be between 0 and 1")
    return None if v is None else float(v)


def _cuts(n: _Node) -> tuple[float, float]:
    """`routing.complexity_cuts`: two difficulties, low < first <= medium < second <= high."""
    raw = n.get("complexity_cuts")
    if raw is None:
        return (0.35, 0.65)
    if not isinstance(raw, list) or len(raw) != 2:
        raise ConfigError("routing.complexity_cuts: expected two numbers [low_below, high_from] in [0, 1]")
    cuts = []
    for i, v in enumerate(raw):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise ConfigError(f"routing.complexity_cuts[{i}]: expected a number between 0 and 1")
        cuts.append(float(v))
    if cuts[0] > cuts[1]:
        raise ConfigError("routing.complexity_cuts: the first cut must not exceed the second")
    return (cuts[0], cuts[1])


def _routing(n: _Node, models: list[ModelSpec]) -> Routing:
    n.no_unknown(("tiers", "rules", "min_confidence", "promotion", "tasks", "encoding", "complexity_cuts",
                  "adaptive",
                  "learned_difficulty", "spill"))
    tiers = n.str_list("tiers")
    if not tiers:
        seen: list[str] = []
        for m in models:
            if m.tier and m.tier not in seen:
                seen.append(m.tier)
        tiers = seen
    for i, m in enumerate(models):
        if m.tier and m.tier not in tiers:
            raise ConfigError(f"routing.tiers: model {m.id!r} (#{i}) has tier {m.tier!r}, which is not listed")
    rules = [_rule(n.item("rules", i, r), tiers) for i, r in enumerate(n.list("rules"))]
    if not rules and tiers:
        rules = [Rule(tier=tiers[0])]
    p = n.child("promotion")
    p.no_unknown(("on", "first_token_ms", "max_steps"))
    on = p.str_list("on") if p.has("on") else list(DEFAULT_PROMOTION)
    for i, o in enumerate(on):
        if o not in PROMOTION_TRIGGERS:
            raise ConfigError(f"routing.promotion.on[{i}]: expected one of {', '.join(PROMOTION_TRIGGERS)}")
    tasks = n.get("tasks")
    if tasks is not None and not isinstance(tasks, dict):
        raise ConfigError("routing.tasks: expected a mapping")
    mc = n.num("min_confidence", 0.5, minimum=0)
    if mc > 1:
        raise ConfigError("routing.min_confidence: must be between 0 and 1")
    return Routing(
        tiers=tiers,
        rules=rules,
        min_confidence=mc,
        promotion=Promotion(
            on=frozenset(on),
            first_token_ms=p.num("first_token_ms", 2500.0, minimum=1),
            max_steps=p.int("max_steps", 2, minimum=0),
        ),
        tasks=tasks,
        encoding=n.str("encoding", "o200k_base"),
        complexity_cuts=_cuts(n),
        learned_difficulty=n.bool("learned_difficulty", True),
        adaptive=_adaptive(n.child("adaptive")),
        spill=n.bool("spill", True),
    )


def _fraction(n: _Node, key: str, default: float, top: float = 1.0) -> float:
    v = n.num(key, default, minimum=0)
    if v > top:
        raise ConfigError(f"{n._key(key)}: must be between 0 and {top:g}")
    return float(v)


def _adaptive(n: _Node) -> Adaptive:
    n.no_unknown(tuple(Adaptive.__dataclass_fields__))
    d = Adaptive()
    share = n.get("cloud_share", d.cloud_share)
    cloud_share: float | str = share
    if share not in ("rules", "free"):
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
            raise ConfigError(f"{n._key('cloud_share')}: expected free, rules or a share in (0, 1], got {share!r}")
        cloud_share = float(share)
    return Adaptive(
        enabled=n.bool("enabled", d.enabled),
        min_samples=n.int("min_samples", d.min_samples, minimum=1),
        buckets=n.int("buckets", d.buckets, minimum=1),
        cloud_share=cloud_share,
        min_gain=_fraction(n, "min_gain", d.min_gain),
        explore=_fraction(n, "explore", d.explore, 0.5),
        explore_floor=_fraction(n, "explore_floor", d.explore_floor, 0.5),
        half_life_days=n.num("half_life_days", d.half_life_days, minimum=0.01),
        implicit_weight=_fraction(n, "implicit_weight", d.implicit_weight),
        reask_window_s=n.num("reask_window_s", d.reask_window_s, minimum=0),
        remember_s=n.num("remember_s", d.remember_s, minimum=1),
        remember_max=n.int("remember_max", d.remember_max, minimum=1),
    )


def _logging(n: _Node) -> LoggingSpec:
    n.no_unknown(("level", "access_log", "format"))
    return LoggingSpec(
        level=n.choice("level", ("debug", "info", "warning", "error"), "info"),
        access_log=n.bool("access_log", True),
        format=n.choice("format", ("json", "text"), "json"),
    )


def _metrics(n: _Node) -> MetricsSpec:
    n.no_unknown(("enabled", "public", "decisions"))
    return MetricsSpec(
        enabled=n.bool("enabled", True),
        public=n.bool("public", False),
        decisions=n.int("decisions", 50, minimum=0),
    )


def _tracing(n: _Node) -> TracingSpec:
    n.no_unknown(("enabled", "exporter", "endpoint", "service_name", "sample_ratio"))
    ratio = n.num("sample_ratio", 1.0, minimum=0)
    if ratio > 1:
        raise ConfigError("tracing.sample_ratio: must be between 0 and 1")
    return TracingSpec(
        enabled=n.bool("enabled", False),
        exporter=n.choice("exporter", ("otlp", "console", "none"), "otlp"),
        endpoint=n.str("endpoint"),
        service_name=n.str("service_name", "ai-router"),
        sample_ratio=float(ratio),
    )


TOP_KEYS = ("server", "state", "backends", "routing", "auth", "tenants", "cache", "pipeline", "logging",
            "metrics", "tracing")


def parse(raw: Any, source: str = "<memory>") -> Config:
    """Validate an already-loaded (and env-expanded) YAML tree into a Config."""
    root = _Node(raw, "")
    root.no_unknown(TOP_KEYS)
    backends = [_backend(root.item("backends", i, b)) for i, b in enumerate(root.list("backends"))]
    if not backends:
        raise ConfigError("backends: at least one backend is required")
    names = [b.name for b in backends]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise ConfigError(f"backends[{i}].name: duplicate backend name {name!r}")
    models = [m for b in backends for m in b.models]
    state = root.child("state")
    state.no_unknown(("url",))
    state_url = state.str("url", "memory://")
    if not re.match(r"^(memory://|sqlite:///|redis://|rediss://)", state_url):
        raise ConfigError("state.url: expected memory://, sqlite:///path or redis://host:port/db")
    pipeline = root.str_list("pipeline") if root.has("pipeline") else list(DEFAULT_PIPELINE)
    tenants = root.list("tenants")
    for i, t in enumerate(tenants):
        if not isinstance(t, dict) or not isinstance(t.get("match"), str):
            raise ConfigError(f"tenants[{i}].match: required (a tenant glob such as 'acme/*')")
    return Config(
        server=_server(root.child("server")),
        state_url=state_url,
        backends=backends,
        routing=_routing(root.child("routing"), models),
        pipeline=pipeline,
        auth=root.mapping("auth"),
        tenants=tenants,
        cache=root.mapping("cache"),
        logging=_logging(root.child("logging")),
        metrics=_metrics(root.child("metrics")),
        tracing=_tracing(root.child("tracing")),
        source=source,
    )


class _Loader(yaml.SafeLoader):
    """YAML 1.2-style booleans: only true/false, so `on:` (promotion.on) stays a key, not True."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def load(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> Config:
    """Read, expand and validate a YAML config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read ({e.strerror})") from None
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({e})") from None
    return parse(expand_env(raw, env), source=str(p))


def default_path() -> str:
    return os.environ.get("AI_ROUTER_CONFIG") or "config/router.yaml"
