"""Stage `ratelimit`: requests and tokens per minute, per key (`auth.keys[].limits`) and per tenant
(`tenants[].limits`), counted in the state store so every worker and replica shares one limit.

Before the call it counts the request and its tokens (the prompt estimate plus `max_tokens` when given,
as OpenAI does) against each limit's current minute, in one atomic store call; over any limit the
answer is 429 `rate_limit_exceeded` with `retry-after` = the minute's reset. After the answer the
token counters are corrected with the real usage. Every reply of a limited caller carries OpenAI's
`x-ratelimit-limit-requests`, `-remaining-requests`, `-reset-requests` and the `-tokens` trio (the
tightest of the key's and the tenant's limits). Inactive when no limit is configured anywhere.
"""

from __future__ import annotations

import math
import time
from typing import Any

from router.cost import token_counts
from router.errors import RateLimited
from router.exchange import CallNext, Exchange, Reply
from router.pipeline import Stage
from router.routing.tokens import estimate, extract
from router.state import Charge, Store, windows
from router.tenants import DEFAULT_TENANT, KeyAllowance, Limits, Tenants, parse_limits


def _reset(end: float) -> str:
    s = max(0.0, end - time.time())
    return f"{s:.3f}s" if s < 60 else "60s"


class RateLimitStage(Stage):
    name = "ratelimit"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.store: Store = ctx.store
        self.tenants = Tenants(ctx.config)
        keys = ctx.config.auth.get("keys") or []
        # keys may carry limits (also keys added at run time through /admin/keys): active whenever keys exist
        self.active = any(s.limits for s in self.tenants.specs) or bool(keys)
        self.key_limits = KeyAllowance("limits", parse_limits)

    def limits(self, ex: Exchange) -> list[tuple[str, Limits]]:
        out = []
        key = ex.key
        lim = self.key_limits.get(key)
        if lim is not None:
            out.append((f"k:{key.name}", lim))  # type: ignore[union-attr]
        tenant = ex.tenant or DEFAULT_TENANT
        spec = self.tenants.get(tenant)
        if spec is not None and spec.limits is not None:
            out.append((f"t:{tenant}", spec.limits))
        return out

    async def handle(self, ex: Exchange, call_next: CallNext) -> Reply:
        limits = self.limits(ex)
        if not limits or ex.dry_run:
            return await call_next(ex)
        minute, end = windows.minute(time.time())
        tokens = 0
        if any(lim.tpm for _, lim in limits):  # a cheap estimate (about 4 bytes a token), corrected after
            raw = ex.raw
            tokens = len(raw) // 4 if raw is not None else estimate(extract(ex.endpoint, ex.body)).tokens
            mt = ex.body.get("max_tokens") or ex.body.get("max_completion_tokens") or ex.body.get("max_output_tokens")
            if isinstance(mt, int) and not isinstance(mt, bool):
                tokens += mt
        charges: list[Charge] = []
        kinds: list[str] = []
        for scope, lim in limits:
            if lim.rpm:
                charges.append(Charge(f"rl:r:{scope}:{minute}", 1, lim.rpm, end, hold=False))
                kinds.append("requests")
            if lim.tpm:
                charges.append(Charge(f"rl:t:{scope}:{minute}", tokens, lim.tpm, end, hold=False))
                kinds.append("tokens")
        grant = await self.store.reserve(charges)
        headers = _headers(charges, kinds, grant.levels, end)
        if not grant.ok:
            i = grant.denied or 0
            headers["Retry-After"] = str(max(1, math.ceil(end - time.time())))
            raise RateLimited(f"Rate limit reached: {int(charges[i].limit)} {kinds[i]} per minute. "
                              f"Try again in {headers['Retry-After']} s.", headers=headers)
        reply = await call_next(ex)
        reply.headers = {**reply.headers, **headers}
        if tokens and any(k == "tokens" for k in kinds):
            ex.finish_hooks.append(lambda ex: self._correct(ex, charges, kinds, tokens, end))
        return reply

    def _correct(self, ex: Exchange, charges: list[Charge], kinds: list[str], estimated: int, end: float) -> None:
        if not ex.usage:
            return
        tin, tout, _ = token_counts(ex.usage)
        delta = tin + tout - estimated
        if delta:
            for c, k in zip(charges, kinds, strict=True):
                if k == "tokens":
                    self.store.add_nowait(c.key, delta, end)


def _headers(charges: list[Charge], kinds: list[str], levels: list[float], end: float) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers: the tightest limit of each kind."""
    h: dict[str, str] = {}
    best: dict[str, tuple[float, float]] = {}
    for c, k, lvl in zip(charges, kinds, levels, strict=True):
        remaining = max(0.0, c.limit - lvl)
        if k not in best or remaining < best[k][1]:
            best[k] = (c.limit, remaining)
    reset = _reset(end)
    for k, (limit, remaining) in best.items():
        h[f"x-ratelimit-limit-{k}"] = str(int(limit))
        h[f"x-ratelimit-remaining-{k}"] = str(int(remaining))
        h[f"x-ratelimit-reset-{k}"] = reset
    return h
