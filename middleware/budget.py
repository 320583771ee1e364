"""Stage `budget`: spend per tenant and per key against daily, monthly and per-request budgets, and the
spend ledger of every request.

Before routing it reads the tenant's and the key's windows (UTC day and month, `router.state.windows`)
and, above `soft_pct` with `on_soft: downgrade` (or at any level with `on_hard: downgrade`, or when a
`per_request_usd` ceiling is set), caps the tier to the highest one whose worst case fits: it sets
`Exchange.max_tier`, which `route` honours, and the answer says so (`x-router-budget`,
`x-router-downgraded`, and a reason in `/v1/route`).

Then it gates every upstream attempt (`Exchange.gate`, called by the server's terminal step, so each
promotion step is gated too): a paid attempt first **reserves** its worst case (prompt tokens times input
price + `max_tokens`, else the model's output room, times output price) on every window, atomically in the
store; a refusal is 429 `budget_exceeded` with `retry-after` = the window's reset. After the answer it
**settles** the real cost (usage from the upstream, else counted locally) and releases the rest; a failed
attempt releases its hold and is recorded as failed. Free attempts (no price: local models) reserve
nothing and are never refused. Streams settle when the pump finishes (a finish hook). Every answer,
priced or free, goes into the ledger with what it would have cost on the highest tier (the savings).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from router.cost import Baseline, local_usage, tier_prices, token_counts, usage_cost, worst_case_usd
from router.errors import BudgetExceeded, UpstreamFailure
from router.exchange import CallNext, Candidate, Exchange, Reply
from router.pipeline import Stage
from router.routing.tokens import estimate, extract
from router.state import Charge, Grant, SpendEntry, Store, windows
from router.state.base import Account
from router.tenants import DEFAULT_TENANT, Budget, KeyAllowance, Tenants, parse_budget

log = logging.getLogger("ai_router.budget")

NO_GRANT = Grant(True, (), [], settled=True)
_new = object.__new__
Send = Callable[[Exchange, Candidate], Awaitable[Reply]]


def _reset_in(expires_at: float) -> str:
    return str(max(1, math.ceil(expires_at - time.time())))


class Window:
    """One budget window of one scope: its counter key, limit and end."""

    __slots__ = ("end", "key", "label", "limit", "name", "soft")

    def __init__(self, key: str, label: str, name: str, limit: float, end: float, soft: float | None) -> None:
        self.key, self.label, self.name, self.limit, self.end = key, label, name, limit, end
        self.soft = None if soft is None else limit * soft / 100


class Plan:
    """The budget windows of one tenant and key on one UTC day, and whether routing may need a cap."""

    __slots__ = ("account", "budgets", "ceiling", "ends", "hard_downgrade", "keys", "limits", "needs_cap",
                 "needs_levels", "priced", "windows")

    def __init__(self, budgets: list[tuple[str, str, Budget]], now: float) -> None:
        self.budgets = budgets
        self.windows: list[Window] = []
        self.ceiling: float | None = None
        day, day_end = windows.day(now)
        month, month_end = windows.month(now)
        for scope, label, b in budgets:
            if b.daily_usd is not None:
                self.windows.append(Window(f"budget:{scope}:{day}", label, "daily", b.daily_usd, day_end, b.soft_pct))
            if b.monthly_usd is not None:
                self.windows.append(Window(f"budget:{scope}:{month}", label, "monthly", b.monthly_usd, month_end,
                                           b.soft_pct))
            if b.per_request_usd is not None:
                self.ceiling = b.per_request_usd if self.ceiling is None else min(self.ceiling, b.per_request_usd)
        self.keys = [w.key for w in self.windows]
        self.limits = [w.limit for w in self.windows]  # keys, limits and ends: what a reservation charges
        self.ends = [w.end for w in self.windows]
        self.priced = bool(self.windows) or self.ceiling is not None  # may a paid attempt be refused
        self.hard_downgrade = any(b.on_hard == "downgrade" for _, _, b in budgets)
        # the levels matter only to a soft threshold or a hard downgrade; a per-request ceiling alone needs none
        self.needs_levels = self.hard_downgrade or any(b.soft_pct is not None for _, _, b in budgets)
        self.needs_cap = self.ceiling is not None or self.needs_levels
        self.account: Account | None = None  # the windows held in process (Store.account), when the store can


class Spend:
    """One request's budget state, on `Exchange.spend` (a throwaway object: nothing per request lives on the
    stage, and nothing here refers back to the exchange)."""

    __slots__ = ("downgraded", "max_out", "plan", "tenant", "tokens")

    plan: Plan
    tenant: str
    tokens: int
    max_out: int | None
    downgraded: str | None  # the tier cap the budget set, if any


def _say(ex: Exchange, name: str, value: str) -> None:
    """A budget header (`x-router-budget`, `x-router-downgraded`) for the answer or the refusal."""
    ex.add_reply_headers({name: value})


class BudgetStage(Stage):
    name = "budget"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        config = ctx.config
        self.store: Store = ctx.store
        self.tenants = Tenants(config)
        self.tiers: list[str] = config.routing.tiers
        self.prices = tier_prices(config.models(), self.tiers)
        self.top_tier_price = self.prices[self.tiers[-1]] if self.tiers else (0.0, 0.0)  # (cap's first try)
        self.savings_baseline = Baseline(config.models(), self.tiers)  # the same rule the metrics price with
        self.key_budgets = KeyAllowance("budget", lambda raw, where: parse_budget(raw, where, self.tiers))
        self._plans: dict[tuple[str, str | None, int], Plan] = {}
        self._day_end = 0.0  # the plans are for the UTC day ending then
        self._gate = self.attempt  # bound once: every request's gate (its state on Exchange.spend)

    # ------------------------------------------------------------ before routing

    def budgets(self, ex: Exchange, tenant: str) -> list[tuple[str, str, Budget]]:
        """(scope key, label, Budget) for the tenant's and the key's budgets."""
        out = []
        spec = self.tenants.get(tenant)
        if spec is not None and spec.budget is not None:
            out.append((f"t:{tenant}", f"tenant '{tenant}'", spec.budget))
        key = ex.key
        b = self.key_budgets.get(key)
        if b is not None:
            out.append((f"k:{key.name}", f"key '{key.name}'", b))  # type: ignore[union-attr]
        return out

    def handle(self, ex: Exchange, call_next: CallNext) -> Awaitable[Reply]:
        """Sets the gate and caps the tier, then returns the rest of the pipeline unawaited (the budget's
        headers go on the exchange, `reply_headers`, which the server puts on the answer or the refusal)."""
        tenant = ex.tenant or DEFAULT_TENANT
        now = time.time()  # (`plan`, inline: its memo's hit)
        plan = self._plans.get((tenant, ex.key_name, id(getattr(ex.key, "budget", None))))
        if plan is None or now >= self._day_end:
            plan = self.plan(ex, tenant)
        f = ex.features
        if f is not None:  # an upper bound, with room for the upstream's tokenizer counting differently
            tokens = int(f.tokens * (1.1 if f.tokens_exact else 1.3)) + 16
            max_out = f.max_output_tokens
        else:
            tokens = int(estimate(extract(ex.endpoint, ex.body)).high * 1.1) + 16 if plan.budgets else 0
            b = ex.body
            v = b.get("max_tokens") or b.get("max_completion_tokens") or b.get("max_output_tokens")
            max_out = v if isinstance(v, int) and not isinstance(v, bool) else None
        spend = ex.spend = _new(Spend)  # (slot by slot: no __init__ call)
        spend.plan = plan
        spend.tenant = tenant
        spend.tokens = tokens
        spend.max_out = max_out
        spend.downgraded = None
        ex.gate = self._gate
        if plan.needs_cap:
            if plan.needs_levels:
                levels = self.store.levels_nowait(plan.keys)
                if levels is None:
                    return self._capped(ex, call_next, spend)
                self.cap(ex, spend, levels)
            else:
                self.cap(ex, spend, None)
        return call_next(ex)

    async def _capped(self, ex: Exchange, call_next: CallNext, spend: Spend) -> Reply:
        """`handle` for a store that must be awaited for the levels."""
        self.cap(ex, spend, await self.store.levels(spend.plan.keys))
        return await call_next(ex)

    def plan(self, ex: Exchange, tenant: str) -> Plan:
        """The request's windows, memoised per tenant and key for the UTC day (all dropped when it ends)."""
        now = time.time()
        if now >= self._day_end:
            self._plans.clear()
            self._day_end = windows.day(now)[1]
        k = (tenant, ex.key_name, id(getattr(ex.key, "budget", None)))
        p = self._plans.get(k)
        if p is None:
            if len(self._plans) > 10_000:
                self._plans.clear()
            p = self._plans[k] = Plan(self.budgets(ex, tenant), now)
            p.account = self.store.account(p.keys, p.limits, p.ends) if p.keys else None
        return p

    def baseline(self, ex: Exchange, tokens_in: int, tokens_out: int) -> float:
        """What this usage would have cost on the highest tier (the savings baseline: `cost.Baseline`)."""
        return self.savings_baseline.tokens(ex.endpoint, tokens_in, tokens_out)

    # ------------------------------------------------------------ after routing: the cap, each attempt

    def cap(self, ex: Exchange, spend: Spend, levels: list[float] | None) -> None:
        """Cap the tier (Exchange.max_tier) when the budget calls for a downgrade (`levels`: plan.keys', read
        when `plan.needs_levels`; without, only the per-request ceiling can cap)."""
        plan = spend.plan
        ceiling = plan.ceiling
        if levels is None and ceiling is not None and ex.max_tier is None:
            # only the per-request ceiling can cap: when the highest tier fits (as the loop below would
            # find first), there is nothing to cap
            pi, po = self.top_tier_price
            if ((spend.tokens or 1) * pi + (spend.max_out or 4096) * po) / 1_000_000 <= ceiling + 1e-12:
                return
        soft = False
        remaining = math.inf
        if levels is not None:
            pairs = list(zip(plan.windows, levels, strict=True))
            soft = any(w.soft is not None and lvl >= w.soft for w, lvl in pairs)
            if plan.ceiling is None and not plan.hard_downgrade and not soft:
                return  # below every soft threshold: nothing to cap
            remaining = min((w.limit - lvl for w, lvl in pairs), default=math.inf)
        downgrade = False
        top: str | None = None
        for _, _, b in plan.budgets:
            if soft and b.soft_pct is not None:
                _say(ex, "x-router-budget", "soft")
                if b.on_soft == "downgrade":
                    downgrade = True
                    top = _lower(self.tiers, top, b.soft_max_tier)
            if b.on_hard == "downgrade":
                downgrade = True
        room = remaining if downgrade else math.inf
        if plan.ceiling is not None:
            room = min(room, plan.ceiling)
        if room == math.inf and top is None:
            return
        max_out = spend.max_out
        tokens = spend.tokens or 1
        allowed: str | None = None
        tiers = self.tiers
        limit_i = tiers.index(top) if top in tiers else len(tiers) - 1
        prices = self.prices
        out = max_out or 4096
        for i in range(limit_i, -1, -1):  # the highest tier that fits
            pi, po = prices[tiers[i]]
            if (tokens * pi + out * po) / 1_000_000 <= room + 1e-12 or (pi == 0 and po == 0):
                allowed = tiers[i]
                break
        if allowed is None:
            return  # nothing fits, not even a free tier: the gate refuses paid attempts
        new = _lower(tiers, ex.max_tier, allowed)
        if new != ex.max_tier and new != tiers[-1]:
            ex.max_tier = new
            spend.downgraded = new
            _say(ex, "x-router-downgraded", new)

    async def attempt(self, ex: Exchange, target: Candidate, send: Send) -> Reply:
        """`Exchange.gate`: reserve the attempt's worst case, send it, settle what it cost."""
        spend: Spend = ex.spend
        model = target.model
        grant = NO_GRANT
        if ex.dry_run:
            if ex.decision is not None and spend.downgraded:
                ex.decision.reasons.append(f"budget: tier capped to {spend.downgraded}")
            return await send(ex, target)
        plan = spend.plan
        store = self.store
        p = model.price
        if plan.priced and (p.input != 0 or p.output != 0):  # (not `model.is_free`: a property is a call)
            ceiling = plan.ceiling
            worst = worst_case_usd(model, spend.tokens or 1, spend.max_out)
            if ceiling is not None and worst > ceiling + 1e-12:
                raise BudgetExceeded(
                    f"This request may cost up to ${worst:.4f} on {model.id}, above the per-request budget of "
                    f"${ceiling:.4f}; lower max_tokens or ask for a cheaper model.", code="budget_exceeded")
            if plan.keys:
                account = plan.account
                g = (account.hold(worst) if account is not None  # (no Charge objects, no key lookups)
                     else store.hold_nowait(plan.keys, worst, plan.limits, plan.ends))
                if g is not None:
                    grant = g
                else:  # refused, or a store that answers as Charges (and may have to wait)
                    charges = []  # (a loop: a comprehension is a function call in 3.11)
                    for key, limit, end in zip(plan.keys, plan.limits, plan.ends, strict=True):
                        charges.append(Charge(key, worst, limit, end))
                    g = store.reserve_nowait(charges)
                    grant = g if g is not None else await store.reserve(charges)
                if not grant.ok:
                    w = plan.windows[grant.denied or 0]
                    raise BudgetExceeded(
                        f"The {w.name} budget of {w.label} (${w.limit:.2f}) does not cover this request "
                        f"(up to ${worst:.4f} on {model.id}); it resets in {_reset_in(w.end)} s.",
                        headers={"Retry-After": _reset_in(w.end)})
        try:
            reply = await send(ex, target)
        except UpstreamFailure as e:
            await store.settle(grant, 0.0, self._entry(ex, spend, target, None, e.status, failed=True))
            raise
        except BaseException:
            if grant is not NO_GRANT:
                await asyncio.shield(store.settle(grant, 0.0))
            raise
        if reply.stream is None:
            cost, counts = self._bill(ex, target, reply.body, None, reply.status)
            entry = self._entry(ex, spend, target, counts, reply.status)
            if store.settles_now:
                store.settle_nowait(grant, cost, entry)
            else:
                await store.settle(grant, cost, entry)
        else:
            stream = reply.stream
            ex.finish_hooks.append(lambda ex: self._finish_stream(ex, spend, target, grant, stream))
        return reply

    def _bill(self, ex: Exchange, target: Candidate, body: bytes | None, chunks: list[bytes] | None, status: int
              ) -> tuple[float, tuple[int, int, int] | None]:
        """The exchange's usage (counted locally if the upstream sent none) and cost, set on the exchange;
        returns the cost and the usage's `token_counts` (None when not computed)."""
        if status >= 400:
            ex.cost_usd = 0.0
            return 0.0, None
        usage = ex.usage
        if not usage:
            usage = ex.usage = local_usage(ex, body, chunks)
            log.info("request %s: %s sent no usage; counted locally (%d prompt, %d completion tokens)",
                     ex.request_id, target.model.backend, usage["prompt_tokens"], usage["completion_tokens"])
        memo = ex.counts  # (usage_cost's memo, read inline: the backend has priced this usage already)
        if memo is None or memo[0] is not usage or memo[2] is not target.model:
            usage_cost(ex, target.model)
            memo = ex.counts
        cost = ex.cost_usd = memo[3]  # type: ignore[index]
        return cost, memo[1]  # type: ignore[index]

    def _finish_stream(self, ex: Exchange, spend: Spend, target: Candidate, grant: Grant, stream: Any) -> None:
        cost, counts = self._bill(ex, target, None, getattr(stream, "seen", None), ex.status)
        self.store.settle_nowait(grant, cost, self._entry(ex, spend, target, counts, ex.status))

    def _entry(self, ex: Exchange, spend: Spend, target: Candidate, counts: tuple[int, int, int] | None,
               status: int, *, failed: bool = False) -> SpendEntry:
        """The ledger entry of an answer (`counts`: its usage's `token_counts`, when `_bill` has them) or of a
        failed attempt."""
        usage = None if failed else ex.usage
        if not usage:
            tin = tout = cached = 0
            source = "none"
            base = 0.0
        else:
            tin, tout, cached = counts if counts is not None else token_counts(usage)
            source = "local" if usage.get("x_router_counted") else "upstream"
            sb = self.savings_baseline  # (`cost.Baseline.tokens`, inline)
            if ex.endpoint == "embeddings":
                base = tin * sb.embedding / 1_000_000
            else:
                pi, po = sb.top
                base = (tin * pi + tout * po) / 1_000_000
        model = target.model
        # slot by slot, without the dataclass __init__'s call (a third of the request's ledger time)
        e = _new(SpendEntry)
        e.tenant = spend.tenant
        e.model = model.id
        e.tier = target.tier or ""
        e.cost_usd = 0.0 if failed else (ex.cost_usd or 0.0)
        e.baseline_usd = base
        e.tokens_in = tin
        e.tokens_out = tout
        e.tokens_cached = cached
        e.usage_source = source
        e.cache_hit = False
        e.failed = failed
        e.request_id = ex.request_id
        e.key = ex.key_name or ""
        e.endpoint = ex.endpoint
        e.backend = model.backend
        e.status = status
        e.ts = time.time()
        return e


def _lower(tiers: list[str], a: str | None, b: str | None) -> str | None:
    """The lower of two tier caps (None: no cap)."""
    if a is None or a not in tiers:
        return b
    if b is None or b not in tiers:
        return a
    return a if tiers.index(a) <= tiers.index(b) else b
