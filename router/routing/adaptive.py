"""Adaptive routing: a per-tenant policy over task x difficulty cells, learnt from the answers' outcomes.

Where it sits in the request's journey: `Policy.decide` asks `Adaptive.adjust` whether to move the start
tier the rules chose (two dict lookups; a random draw only in cells being explored or split). The
outcomes come from router/routing/feedback.py through `observe`, which only adds to counters; `replan`
turns the counters into each cell's plan, at most once a second per tenant.

The model, per tenant:
- A cell is (task, difficulty bucket): `buckets` equal slices of `Features.difficulty` in [0, 1].
- Counters per cell: requests routed by the rules (`seen`) and how many of those the rules sent to a
  cloud tier (`rule_cloud`); weighted outcomes (count and sum of scores in [0, 1]) of answers served by
  a local tier and by a cloud tier. They are kept per day, so stores only ever add to them (several
  workers may add to the same counters); a day's weight halves every `half_life_days`.
- A cell is *known* once both locations have `min_samples` weighted outcomes. Its gain is the mean cloud
  score minus the mean local score (each smoothed by a Beta(1, 1) prior, the difference shrunk towards the
  tenant's pooled gain by `min_samples` pseudo-samples, so a few lucky answers do not decide).
- The plan: known cells, best gain first, get cloud calls while the tenant's cloud budget lasts and their
  gain is at least `min_gain`; the others go local. The budget is `cloud_share` of the tenant's volume:
  `rules` (the default) is the share the rules themselves send to cloud, so adapting moves cloud calls to
  where they pay without raising the bill; a number is that share; `free` is unbounded. The cell where the
  budget runs out is split (that fraction of its requests). Cells not yet known follow the rules and
  spend their part of the budget.
- Exploration: a cell not yet known sends `explore` of its requests to the other location, so both sides
  get measured; a known cell keeps `explore_floor`, to notice drift. Exploring never leaves the caps.
- Moves: up is from a local start tier to the cheapest cloud tier above it, down is from a cloud start
  tier to the highest local tier below it; only up to the cap the policy computed (tenant `max_tier`,
  steering, `Exchange.max_tier`). The reason says when and why a decision moved.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from router.config import Adaptive as Settings

CellKey = tuple[str, int]  # (task, difficulty bucket)
SEEN, RULE_CLOUD, N_LOCAL, S_LOCAL, N_CLOUD, S_CLOUD = range(6)
FIELDS = 6
DAY_S = 86400.0
REPLAN_S = 1.0
COMPLEXITY_BUCKET = {"low": 0, "medium": 1, "high": 2}  # used only when features carry no difficulty
DEFAULT_TENANT = "-"  # requests without a tenant (no auth) share one policy


def tenant_key(tenant: str | None) -> str:
    return tenant or DEFAULT_TENANT


@dataclass(slots=True)
class CellPlan:
    """What a known cell does: send `cloud` of its requests to cloud, explore the other side at `explore`."""

    cloud: float
    explore: float
    why: str  # the evidence, for the reason text


class TenantModel:
    """One tenant's counters (merged `base` from the store plus unsaved local `delta`) and its plan."""

    __slots__ = ("base", "delta", "last_replan", "name", "outcomes", "plan", "today", "today_day")

    def __init__(self, name: str) -> None:
        self.name = name
        self.base: dict[int, dict[CellKey, list[float]]] = {}  # day -> cell -> counters (as last loaded)
        self.delta: dict[int, dict[CellKey, list[float]]] = {}  # added here since the last save
        self.plan: dict[CellKey, CellPlan] = {}
        self.outcomes = 0  # outcomes since the last replan
        self.last_replan = 0.0
        self.today_day = -1
        self.today: dict[CellKey, list[float]] = {}

    def counters(self, day: int, key: CellKey) -> list[float]:
        if day == self.today_day:
            c = self.today.get(key)
        else:
            self.today_day = day
            self.today = self.delta.setdefault(day, {})
            c = None
        if c is None:
            c = self.today[key] = [0.0] * FIELDS
        return c

    def take_delta(self) -> dict[int, dict[CellKey, list[float]]]:
        """The unsaved increments (for the store), folded into `base` so this worker keeps seeing them."""
        delta, self.delta = self.delta, {}
        self.today_day, self.today = -1, {}
        for day, cells in delta.items():
            into = self.base.setdefault(day, {})
            for key, c in cells.items():
                b = into.get(key)
                if b is None:
                    into[key] = list(c)
                else:
                    for i in range(FIELDS):
                        b[i] += c[i]
        return delta


class Adaptive:
    """The adaptive engine for one config: tier ladder facts, settings and every tenant's model."""

    def __init__(
        self,
        settings: Settings,
        tiers: list[str],
        tier_is_cloud: list[bool],
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.enabled = settings.enabled
        self.tiers = tiers
        self.is_cloud = tier_is_cloud
        self.clock = clock
        self.random = (rng or random.Random()).random
        self.buckets = settings.buckets
        self.tenants: dict[str, TenantModel] = {}
        n = len(tiers)
        # the tier a move goes to from each start tier: up to the cheapest cloud tier above a local start,
        # down to the highest local tier below a cloud start
        self.up: list[int | None] = [
            None if tier_is_cloud[s] else next((t for t in range(s + 1, n) if tier_is_cloud[t]), None)
            for s in range(n)
        ]
        self.down: list[int | None] = [
            next((t for t in range(s - 1, -1, -1) if not tier_is_cloud[t]), None) if tier_is_cloud[s] else None
            for s in range(n)
        ]
        hl = settings.half_life_days
        self.horizon_days = max(1, math.ceil(hl * 6))  # older days weigh < 1/64: dropped

    # ------------------------------------------------------------ the hot path

    def bucket(self, f: Any) -> int:
        d = getattr(f, "difficulty", None)
        if d is None:
            return COMPLEXITY_BUCKET.get(f.complexity, 0)
        b = int(d * self.buckets)
        return b if b < self.buckets else self.buckets - 1

    def tenant(self, tenant: str | None) -> TenantModel:
        name = tenant or DEFAULT_TENANT
        tm = self.tenants.get(name)
        if tm is None:
            tm = self.tenants[name] = TenantModel(name)
        return tm

    def adjust(self, tenant: str | None, f: Any, start: int, cap: int, reasons: list[str], live: bool = True) -> int:
        """The start tier index for a request the rules start at `start` (never above `cap`). `live` is
        False on a dry run: nothing is counted and nothing explored, so the preview shows the plan."""
        tm = self.tenants.get(tenant or DEFAULT_TENANT) or self.tenant(tenant)
        key = (f.task, self.bucket(f))
        rule_cloud = self.is_cloud[start]
        if live:
            c = tm.counters(int(self.clock() // DAY_S), key)
            c[SEEN] += 1.0
            if rule_cloud:
                c[RULE_CLOUD] += 1.0
        if not self.enabled:
            return start
        p = tm.plan.get(key)
        if p is None:
            want, explore = rule_cloud, self.settings.explore
        else:
            x = p.cloud
            want = x >= 1.0 or (x > 0.0 and live and self.random() < x) or (x >= 0.5 and not live)
            explore = p.explore
        explored = live and explore > 0.0 and self.random() < explore
        if explored:
            want = not want
        if want == rule_cloud:
            return start
        target = self.up[start] if want else self.down[start]
        here = f"adaptive ({tm.name}, {self.cell_text(key)})"
        if target is None:
            return start
        if target > cap:
            if not explored:
                reasons.append(f"{here}: would move to {self.tiers[target]}, capped at {self.tiers[cap]}")
            return start
        if explored:
            reasons.append(f"{here}: exploring {self.tiers[target]} instead of {self.tiers[start]}"
                           f" ({explore:.0%} of this cell's requests)")
        else:
            assert p is not None
            reasons.append(f"{here}: {p.why}: {self.tiers[start]} -> {self.tiers[target]}")
        return target

    def cell_text(self, key: CellKey) -> str:
        task, b = key
        w = 1.0 / self.buckets
        return f"{task}, difficulty {b * w:.2f}-{(b + 1) * w:.2f}"

    # ------------------------------------------------------------ outcomes

    def observe(self, tenant: str | None, key: CellKey, cloud: bool, score: float, weight: float) -> None:
        """One outcome (score in [0, 1], weight; a negative weight retracts an earlier one)."""
        tm = self.tenant(tenant)
        c = tm.counters(int(self.clock() // DAY_S), key)
        if cloud:
            c[N_CLOUD] += weight
            c[S_CLOUD] += weight * score
        else:
            c[N_LOCAL] += weight
            c[S_LOCAL] += weight * score
        tm.outcomes += 1
        now = self.clock()
        if now - tm.last_replan >= REPLAN_S:
            self.replan(tm, now)

    # ------------------------------------------------------------ planning

    def totals(self, tm: TenantModel, now: float | None = None) -> dict[CellKey, list[float]]:
        """Every cell's counters, each day weighted by its age; days past the horizon are dropped."""
        today = int((self.clock() if now is None else now) // DAY_S)
        hl = self.settings.half_life_days
        out: dict[CellKey, list[float]] = {}
        for layer in (tm.base, tm.delta):
            for day in [d for d in layer if today - d > self.horizon_days]:
                del layer[day]
            for day, cells in layer.items():
                w = 0.5 ** (max(0, today - day) / hl)
                for key, c in cells.items():
                    t = out.get(key)
                    if t is None:
                        t = out[key] = [0.0] * FIELDS
                    for i in range(FIELDS):
                        t[i] += w * c[i]
        return out

    def replan(self, tm: TenantModel, now: float | None = None) -> None:
        """Recompute a tenant's plan from its counters (see the module docstring)."""
        now = self.clock() if now is None else now
        tm.last_replan = now
        tm.outcomes = 0
        s = self.settings
        cells = self.totals(tm, now)
        ms = s.min_samples
        volume = sum(c[SEEN] for c in cells.values())
        if s.cloud_share == "rules":
            budget = sum(c[RULE_CLOUD] for c in cells.values())
        elif s.cloud_share == "free":
            budget = math.inf
        else:
            budget = float(s.cloud_share) * volume
        known: list[tuple[float, CellKey, list[float], float, float]] = []
        for key, c in cells.items():
            if c[N_LOCAL] >= ms and c[N_CLOUD] >= ms:
                q_local = (c[S_LOCAL] + 1) / (c[N_LOCAL] + 2)
                q_cloud = (c[S_CLOUD] + 1) / (c[N_CLOUD] + 2)
                known.append((q_cloud - q_local, key, c, q_local, q_cloud))
            else:
                budget -= c[RULE_CLOUD]  # not known yet: follows the rules
        pooled = _pooled_gain(known)
        ranked = []
        for raw_gain, key, c, q_local, q_cloud in known:
            n = 1.0 / (1.0 / c[N_LOCAL] + 1.0 / c[N_CLOUD])  # effective samples of the difference
            gain = (n * raw_gain + ms * pooled) / (n + ms)
            ranked.append((gain, key, c, q_local, q_cloud))
        ranked.sort(key=lambda r: -r[0])
        plan: dict[CellKey, CellPlan] = {}
        for gain, key, c, q_local, q_cloud in ranked:
            evidence = (f"cloud {q_cloud:.2f} vs local {q_local:.2f} over "
                        f"{c[N_CLOUD]:.0f}/{c[N_LOCAL]:.0f} outcomes")
            if gain < s.min_gain:
                x = 0.0
                why = f"{evidence}, gain {gain:+.2f} < min_gain {s.min_gain:g}"
            elif budget <= 0:
                x = 0.0
                why = f"{evidence}, gain {gain:+.2f} but the cloud budget is spent on cells that gain more"
            elif budget >= c[SEEN]:
                x = 1.0
                budget -= c[SEEN]
                why = f"{evidence}, gain {gain:+.2f}"
            else:
                x = budget / c[SEEN]
                budget = 0.0
                why = f"{evidence}, gain {gain:+.2f} (cloud for {x:.0%} of this cell, the budget's rest)"
            plan[key] = CellPlan(cloud=x, explore=s.explore_floor, why=why)
        tm.plan = plan

    def replan_all(self) -> None:
        for tm in self.tenants.values():
            self.replan(tm)

    # ------------------------------------------------------------ what a person or the store reads

    def describe(self, tenant: str | None) -> list[dict[str, Any]]:
        """A tenant's cells: counters (weighted) and plan, for admin views and the bench."""
        tm = self.tenants.get(tenant or DEFAULT_TENANT)
        if tm is None:
            return []
        out = []
        for key, c in sorted(self.totals(tm).items()):
            p = tm.plan.get(key)
            out.append({
                "task": key[0], "bucket": key[1], "requests": round(c[SEEN], 2),
                "rules_cloud": round(c[RULE_CLOUD], 2),
                "local": {"n": round(c[N_LOCAL], 2), "mean": _mean(c[S_LOCAL], c[N_LOCAL])},
                "cloud": {"n": round(c[N_CLOUD], 2), "mean": _mean(c[S_CLOUD], c[N_CLOUD])},
                "plan_cloud": None if p is None else round(p.cloud, 3),
            })
        return out

    def load(self, tenant: str, days: Iterable[tuple[int, CellKey, list[float]]]) -> None:
        """Replace a tenant's `base` with counters read from the store (its unsaved delta is kept)."""
        tm = self.tenant(tenant)
        base: dict[int, dict[CellKey, list[float]]] = {}
        for day, key, c in days:
            base.setdefault(day, {})[key] = list(c)
        tm.base = base
        self.replan(tm)


def _pooled_gain(known: list[tuple[float, CellKey, list[float], float, float]]) -> float:
    total = sum(1.0 / (1.0 / c[N_LOCAL] + 1.0 / c[N_CLOUD]) for _, _, c, _, _ in known)
    if total <= 0:
        return 0.0
    return sum(g / (1.0 / c[N_LOCAL] + 1.0 / c[N_CLOUD]) for g, _, c, _, _ in known) / total


def _mean(s: float, n: float) -> float | None:
    return None if n <= 0 else round(s / n, 4)
