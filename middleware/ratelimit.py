"""Stage `ratelimit`: requests and tokens per minute, per key (`auth.keys[].limits`) and per tenant
(`tenants[].limits`), counted in the state store so every worker and replica shares one limit.

Before the call it counts the request and its tokens (the prompt estimate plus `max_tokens` when given,
as OpenAI does) against each limit's current minute, in one atomic store call; over any limit the
answer is 429 `rate_limit_exceeded` with `retry-after` = the minute's reset. After the answer the
token counters are corrected with the real usage. Every reply of a limited caller carries OpenAI's
`x-ratelimit-limit-requests`, `-remaining-requests`, `-reset-requests` and the `-tokens` trio (the
tightest of the key's and the tenant's limits; resets in whole seconds, rounded up: `13s`). Inactive
when no limit is configured anywhere.

The limits that apply to a tenant and key are resolved once into a `LimitPlan` (memoised), which
also keeps the current minute's counter keys and its request charges, so a request formats no key, and,
on a store that has them (memory), the minute's `Meter` (its counters held directly) and the second's
headers with only the two remaining counts left to fill.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable
from functools import partial
from typing import Any

from router.cost import usage_counts
from router.errors import RateLimited
from router.exchange import CallNext, Exchange, Reply
from router.pipeline import Stage
from router.routing.tokens import estimate, extract
from router.state import Charge, Grant, Store
from router.state.base import Meter
from router.tenants import DEFAULT_TENANT, KeyAllowance, Limits, Tenants, parse_limits

MEMO_MAX = 10_000


RESET = tuple(f"{s}s" for s in range(61))  # x-ratelimit-reset-*: whole seconds to the minute's end, rounded up


class LimitPlan:
    """The rpm/tpm counters of one tenant and key: what a request charges, this minute."""

    __slots__ = ("end", "groups", "keys", "kinds", "limit_text", "limits", "meter", "names", "per_token",
                 "request_charges", "rpm_int", "second", "start", "template", "token_idx", "tpm", "tpm_int", "two")

    def __init__(self, scoped: list[tuple[str, Limits]]) -> None:
        self.names: list[str] = []  # counter key prefixes, `rl:r:k:web:`
        self.kinds: list[str] = []  # requests | tokens, per counter
        self.limits: list[float] = []
        for scope, lim in scoped:
            if lim.rpm:
                self.names.append(f"rl:r:{scope}:")
                self.kinds.append("requests")
                self.limits.append(float(lim.rpm))
            if lim.tpm:
                self.names.append(f"rl:t:{scope}:")
                self.kinds.append("tokens")
                self.limits.append(float(lim.tpm))
        self.tpm = "tokens" in self.kinds
        self.token_idx = tuple(i for i, kind in enumerate(self.kinds) if kind == "tokens")
        # per kind (in order of first appearance): its three header names, its first counter's index and the
        # indices of its other counters (a key's and a tenant's limit of the same kind)
        groups: dict[str, list[int]] = {}
        for i, kind in enumerate(self.kinds):
            groups.setdefault(kind, []).append(i)
        self.groups = [(f"x-ratelimit-limit-{kind}", f"x-ratelimit-remaining-{kind}", f"x-ratelimit-reset-{kind}",
                        indices[0], tuple(indices[1:])) for kind, indices in groups.items()]
        self.limit_text = [str(int(x)) for x in self.limits]
        self.two = self.kinds == ["requests", "tokens"]  # the usual shape: one rpm and one tpm counter
        if self.two:
            self.rpm_int, self.tpm_int = (int(x) for x in self.limits)  # (ints: the meter's counts stay ints)
        self.per_token = tuple(kind == "tokens" for kind in self.kinds)
        self.start = self.end = 0.0  # the minute the keys are for
        self.keys: list[str] = []
        self.request_charges: list[Charge | None] = []
        self.meter: Meter | None = None  # the minute's counters, when the store has meters
        self.second = -1.0  # the second `template` is for (`two` only)
        self.template: dict[str, str] = {}

    def _minute(self, now: float, store: Store | None = None) -> None:
        """Start the minute `now` is in: new counters (windows.minute's ids, `t29345678`), and their meter
        (`store`'s; none without)."""
        n = int(now // 60)
        self.start, self.end = float(n * 60), float((n + 1) * 60)
        self.keys = [f"{name}t{n}" for name in self.names]
        self.request_charges = [Charge(k, 1, lim, self.end, hold=False) if kind == "requests" else None
                                for k, kind, lim in zip(self.keys, self.kinds, self.limits, strict=True)]
        self.meter = store.meter(self.keys, self.limits, self.end, self.per_token) if store is not None else None
        self.second = -1.0

    def _second(self, second: float) -> None:
        """The headers of the second starting at `second` (`two` only), the remaining counts left blank: the
        reset is the same all second (`end` is whole, so ceil(end - now) = end - floor(now))."""
        s = int(self.end - second)
        reset = RESET[s] if 0 < s <= 60 else RESET[60 if s > 60 else 1]
        self.second = second
        self.template = {"x-ratelimit-limit-requests": self.limit_text[0], "x-ratelimit-remaining-requests": "",
                         "x-ratelimit-reset-requests": reset, "x-ratelimit-limit-tokens": self.limit_text[1],
                         "x-ratelimit-remaining-tokens": "", "x-ratelimit-reset-tokens": reset}

    def amounts(self, now: float, tokens: int) -> list[float]:
        """What a request adds to each of this minute's counters (`keys`): 1 request, its tokens."""
        if not self.start <= now < self.end:
            self._minute(now)
        if self.two:
            return [1, tokens]
        out: list[float] = [1 if kind == "requests" else tokens for kind in self.kinds]
        return out

    def charges(self, now: float, tokens: int) -> list[Charge]:
        if not self.start <= now < self.end:
            self._minute(now)
        out: list[Any] = self.request_charges.copy()  # the request counters' charges are the same all minute
        for i in self.token_idx:
            out[i] = Charge(self.keys[i], tokens, self.limits[i], self.end, False)
        return out

    def headers(self, levels: list[float], now: float, end: float) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers: the tightest limit of each kind; the reset in whole seconds,
        rounded up (`13s`: the counters start over within that time)."""
        s = math.ceil(end - now)
        reset = RESET[s] if 0 < s <= 60 else RESET[60 if s > 60 else 1]
        limits = self.limits
        if self.two:  # one counter of each kind: no tightest to find
            r, t = limits[0] - levels[0], limits[1] - levels[1]
            return {"x-ratelimit-limit-requests": self.limit_text[0],
                    "x-ratelimit-remaining-requests": "%d" % r if r > 0 else "0",  # noqa: UP031 (str(int()) is two calls)
                    "x-ratelimit-reset-requests": reset,
                    "x-ratelimit-limit-tokens": self.limit_text[1],
                    "x-ratelimit-remaining-tokens": "%d" % t if t > 0 else "0",  # noqa: UP031
                    "x-ratelimit-reset-tokens": reset}
        h: dict[str, str] = {}
        for limit_h, remaining_h, reset_h, i, others in self.groups:
            remaining = limits[i] - levels[i]
            for j in others:
                r = limits[j] - levels[j]
                if r < remaining:
                    i, remaining = j, r
            h[limit_h] = self.limit_text[i]
            h[remaining_h] = str(int(remaining)) if remaining > 0 else "0"
            h[reset_h] = reset
        return h


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
        self.counts_now = self.store.counts_now  # the store counts without Charge and Grant objects
        self._plans: dict[tuple[str, str | None, int], LimitPlan | None] = {}
        self._metered = self._correct_metered  # bound once: the finish hook of every metered request

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

    def plan(self, ex: Exchange) -> LimitPlan | None:
        """The request's LimitPlan (None: no limit applies), memoised per tenant and key object."""
        key = ex.key
        memo = (ex.tenant or DEFAULT_TENANT, ex.key_name, id(getattr(key, "limits", None)))
        try:
            return self._plans[memo]
        except KeyError:
            pass
        scoped = self.limits(ex)
        if len(self._plans) > MEMO_MAX:
            self._plans.clear()
        p = self._plans[memo] = LimitPlan(scoped) if scoped else None
        return p

    def handle(self, ex: Exchange, call_next: CallNext) -> Awaitable[Reply]:
        """Counts the request before the rest of the pipeline, which it returns unawaited: the headers go
        on the exchange (`reply_headers`, merged into the answer by the server), the correction into a
        finish hook, so nothing is left to do after the answer."""
        plan = self.plan(ex)
        if plan is None or ex.dry_run:
            return call_next(ex)
        now = time.time()
        tokens = 0
        if plan.tpm:  # a cheap estimate (about 4 bytes a token), corrected after
            raw = ex.raw
            tokens = len(raw) // 4 if raw is not None else estimate(extract(ex.endpoint, ex.body)).tokens
            body = ex.body
            mt = body.get("max_tokens") or body.get("max_completion_tokens") or body.get("max_output_tokens")
            if isinstance(mt, int) and not isinstance(mt, bool):
                tokens += mt
        if not plan.start <= now < plan.end:
            plan._minute(now, self.store)
        meter = plan.meter
        if meter is not None:  # the usual path (memory): counted at once, no key looked up
            levels = meter.count(tokens)
            if levels is not None:
                if plan.two:
                    second = now // 1
                    if second != plan.second:
                        plan._second(second)
                    h = plan.template.copy()  # (order kept: the remaining counts are set in place)
                    r, t = plan.rpm_int - levels[0], plan.tpm_int - levels[1]
                    # (ints, as the meter counts them, format as f"{}"; a float as "%d" would)
                    h["x-ratelimit-remaining-requests"] = ("0" if r <= 0 else f"{r}" if r.__class__ is int
                                                           else "%d" % r)  # noqa: UP031
                    h["x-ratelimit-remaining-tokens"] = ("0" if t <= 0 else f"{t}" if t.__class__ is int
                                                         else "%d" % t)  # noqa: UP031
                else:
                    h = plan.headers(levels, now, plan.end)
                rh = ex.reply_headers
                if rh is None:
                    ex.reply_headers = h
                else:
                    rh.update(h)
                if tokens:
                    ex.ratelimit = (meter, tokens)
                    ex.finish_hooks.append(self._metered)
                return call_next(ex)
        elif self.counts_now:  # counted at once, no Charge or Grant objects
            amounts = plan.amounts(now, tokens)
            keys, end = plan.keys, plan.end
            levels = self.store.count_nowait(keys, amounts, plan.limits, end)
            if levels is not None:
                ex.add_reply_headers(plan.headers(levels, now, end))
                if tokens:
                    ex.finish_hooks.append(partial(self._correct, plan.token_idx, keys, end, tokens))
                return call_next(ex)
        charges = plan.charges(now, tokens)  # refused above, or a store that answers as Charges and a Grant
        # (read now: another request may start the next minute while this one waits)
        keys, end = plan.keys, plan.end
        grant = self.store.reserve_nowait(charges)
        if grant is None:
            return self._reserve(ex, call_next, plan, charges, keys, tokens, now, end)
        self._admit(ex, plan, grant, keys, tokens, now, end)
        return call_next(ex)

    async def _reserve(self, ex: Exchange, call_next: CallNext, plan: LimitPlan, charges: list[Charge],
                       keys: list[str], tokens: int, now: float, end: float) -> Reply:
        """`handle` for a store that must be awaited (Redis)."""
        self._admit(ex, plan, await self.store.reserve(charges), keys, tokens, now, end)
        return await call_next(ex)

    def _admit(self, ex: Exchange, plan: LimitPlan, grant: Grant, keys: list[str], tokens: int, now: float,
               end: float) -> None:
        """The answer's headers, or the refusal (429 with retry-after); the token correction when the
        answer is in."""
        headers = plan.headers(grant.levels, now, end)
        if not grant.ok:
            i = grant.denied or 0
            headers["Retry-After"] = str(max(1, math.ceil(end - now)))
            raise RateLimited(f"Rate limit reached: {plan.limit_text[i]} {plan.kinds[i]} per minute. "
                              f"Try again in {headers['Retry-After']} s.", headers=headers)
        ex.add_reply_headers(headers)
        if tokens:
            ex.finish_hooks.append(partial(self._correct, plan.token_idx, keys, end, tokens))

    def _correct_metered(self, ex: Exchange) -> None:
        """`_correct` of a metered request (`ex.ratelimit`: its minute's meter and the tokens it charged)."""
        usage = ex.usage
        if not usage:
            return
        meter, estimated = ex.ratelimit
        memo = ex.counts  # (usage_counts' memo, read inline)
        counts = memo[1] if memo is not None and memo[0] is usage else usage_counts(ex)
        delta = counts[0] + counts[1] - estimated  # type: ignore[index]
        if delta:
            meter.add(delta)

    def _correct(self, token_idx: tuple[int, ...], keys: list[str], end: float, estimated: int, ex: Exchange
                 ) -> None:
        """Once the answer is in: the token counters of the request's minute (`keys`, ending at `end`) get the
        difference between the usage and the estimate they were charged."""
        counts = usage_counts(ex)
        if counts is None:
            return
        delta = counts[0] + counts[1] - estimated
        if delta:
            add = self.store.add_nowait
            for i in token_idx:
                add(keys[i], delta, end)
