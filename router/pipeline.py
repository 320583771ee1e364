"""The middleware pipeline: the ordered stages every proxied request passes, built once from `pipeline:`.

The contract, in full:

    class MyStage(Stage):
        def __init__(self, ctx: Context, **options): ...        # built once; validate and precompute here
        async def handle(self, ex: Exchange, call_next: CallNext) -> Reply:
            ...                                                  # before the rest of the pipeline
            reply = await call_next(ex)                          # exactly once (only `retry` may repeat)
            ...                                                  # after (usage, cost, headers)
            return reply

A stage refuses by raising a `router.errors.ProxyError`, or answers early by returning a `Reply`. A stage
that acts only before the rest may be a plain `def handle(...)` that returns `call_next(ex)` unawaited:
it then adds no frame to the await chain (auth, classify and route do this). A stage whose `active` is
False after construction (nothing configured for it) is left out of the chain. A stage that holds
connections or tasks releases them in an optional `async def aclose(self)`, called once at shutdown
or when a reload retires the pipeline.
Stages are named in config by built-in name (`auth`, `route`, …) or by import path
(`"mycompany.guards:ProfanityFilter"`), optionally with options: `{use: NAME, options: {...}}`.
The terminal step after the last stage sends the exchange to the chosen backend.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from router.config import ConfigError
from router.exchange import CallNext, Exchange, Reply

if TYPE_CHECKING:
    from router.context import Context

BUILTIN_STAGES = {
    "auth": "middleware.auth:AuthStage",
    "ratelimit": "middleware.ratelimit:RateLimitStage",
    "redact": "middleware.redact:RedactStage",
    "classify": "middleware.classify:ClassifyStage",
    "cache": "middleware.cache:CacheStage",
    "budget": "middleware.budget:BudgetStage",
    "route": "middleware.route:RouteStage",
    "retry": "middleware.retry:RetryStage",
}


class Stage:
    """Base class of a pipeline stage (subclassing is optional: `handle` is the whole contract)."""

    name = "stage"
    active = True

    def __init__(self, ctx: Context, **options: Any) -> None:
        if options:
            raise TypeError(f"stage {self.name!r} takes no options, got {sorted(options)}")
        self.ctx = ctx

    async def handle(self, ex: Exchange, call_next: CallNext) -> Reply:
        return await call_next(ex)

    async def aclose(self) -> None:
        """Optional: release what the stage holds (connections, tasks); called once, at shutdown or when
        a reload retires the pipeline."""


def _import(path: str, where: str) -> type:
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ConfigError(f"{where}: {path!r} is neither a built-in stage nor 'module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"{where}: cannot import {module_name!r} ({e})") from None
    try:
        return getattr(module, attr)  # type: ignore[no-any-return]
    except AttributeError:
        raise ConfigError(f"{where}: {module_name!r} has no {attr!r}") from None


def load_stage(entry: Any, ctx: Context, where: str) -> Any:
    """Build one stage from a pipeline entry: a name, an import path, or {use, options}."""
    options: dict[str, Any] = {}
    if isinstance(entry, dict):
        unknown = set(entry) - {"use", "options"}
        if unknown or not isinstance(entry.get("use"), str):
            raise ConfigError(f"{where}: expected a stage name or {{use: NAME, options: {{...}}}}")
        options = entry.get("options") or {}
        if not isinstance(options, dict):
            raise ConfigError(f"{where}.options: expected a mapping")
        entry = entry["use"]
    if not isinstance(entry, str):
        raise ConfigError(f"{where}: expected a stage name or import path")
    cls = _import(BUILTIN_STAGES.get(entry, entry), where)
    if not callable(getattr(cls, "handle", None)):
        raise ConfigError(f"{where}: {entry!r} has no async handle(exchange, call_next) method")
    try:
        stage = cls(ctx, **options)
    except TypeError as e:
        raise ConfigError(f"{where}: cannot build {entry!r} ({e})") from None
    if not getattr(stage, "name", None) or stage.name == "stage":
        stage.name = entry
    return stage


def _link(handle: Any, call_next: CallNext) -> CallNext:
    """One link of the chain: a plain function returning the stage's coroutine (no extra await frame)."""

    def step(ex: Exchange) -> Any:
        return handle(ex, call_next)

    return step


class Pipeline:
    """The chain of stages, composed once: `await pipeline(ex)` runs it and returns the Reply."""

    def __init__(self, stages: list[Any], terminal: CallNext) -> None:
        self.stages = stages
        self.active = [s for s in stages if getattr(s, "active", True)]
        handler: CallNext = terminal
        for stage in reversed(self.active):
            handler = _link(stage.handle, handler)
        self._handler = handler

    @classmethod
    def from_config(cls, entries: list[Any], ctx: Context, terminal: CallNext) -> Pipeline:
        stages = [load_stage(e, ctx, f"pipeline[{i}]") for i, e in enumerate(entries)]
        return cls(stages, terminal)

    def __call__(self, ex: Exchange) -> Any:
        return self._handler(ex)

    async def aclose(self) -> None:
        """Each stage's optional `aclose()`, last stage first (like the chain unwinds)."""
        for stage in reversed(self.stages):
            close = getattr(stage, "aclose", None)
            if close is not None:
                await close()
