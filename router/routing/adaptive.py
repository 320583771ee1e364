"""Adaptive routing: a per-tenant policy over task x difficulty cells, learnt from the answers' outcomes.

Where it sits in the request's journey: `Policy.decide` asks `Adaptive.adjust` whether to move the start
tier the rules chose (two dict lookups and a random draw for exploration). The
outcomes come from router/routing/feedback.py through `observe`, which only adds to counters; `replan`
turns the counters into each cell's plan, at most once a second per tenant.

The model, per tenant:
- A cell is (task, difficulty bucket): `buckets` equal slices of `Features.difficulty` in [0, 1].
- Counters per cell: requests routed by the rules (`seen`) and how many of those the rules sent to a
  cloud tier (`rule_cloud`); weighted outcomes (count and sum of scores in [0, 1]) of answers served by
  a local tier and by a cloud tier. They are kept per day, so stores only ever add to them (several
  workers may add to the same counters); a day's weight halves every `half_life_days`.
- Until the tenant has `min_samples` weighted outcomes for each location, nothing is learnt yet: with a
  cloud budget (`rules` or a share) the hardest requests by difficulty, across all cells, get it (the
  static policy moved to that share: the dial `ai-router calibrate` sets); with `free`, the rules decide.
  Then every cell has a gain: its mean cloud score minus its mean local score (each smoothed by a Beta(1, 1)
  prior), shrunk by `min_samples` pseudo-samples towards its task's trend: a weighted line through the
  task's cell gains over the difficulty buckets, itself pulled towards the task's gain (and that towards the
  tenant's). A cell with little evidence of its own starts where the line puts it, between its neighbours as
  the difficulty score suggests, so a few lucky answers do not decide and a young cell is not stuck with the
  rules.
- The plan: known cells, best gain first, get cloud calls while the tenant's cloud budget lasts; the
  others go local. The budget, `cloud_share`: `free` (the default) has none, so a cell goes to cloud
  exactly when cloud answers there beat local ones by more than `min_gain`; `rules` is the share the
  rules themselves send to cloud, so adapting moves cloud calls to where they pay without raising the
  bill; a number is that share of the tenant's requests. A budget is spent on every cell where cloud
  does better at all (gain > 0), best first. The cell where the budget runs out is split: the hardest
  part of it (by difficulty within the bucket) goes to cloud. The tenant's `budget` (and its downgrade)
  still applies on top, as a cap.
- Exploration: before the tenant has enough outcomes, a cell sends `explore` of its requests to the other
  location, so both sides get measured; so does a cell whose gain is within two standard errors of the
  decision boundary (`min_gain`, or the gain where the budget ran out) while it has fewer than
  4 x `min_samples` outcomes on a side, so an early unlucky estimate does not stick; the others keep
  `explore_floor`, to notice drift. The standard error is that of the shrunk gain (the cell's own part
  weighs n / (n + min_samples), its task's trend's the rest, as uncertain as the task's own gain): a young
  cell that a well-measured trend puts clearly on one side does not keep exploring (on a tenant whose gains
  rise with the difficulty, as gsm8k's do, that only spent the budget on requests that gain less than those
  they displaced), while one of a task measured on one side only still does. A budget pays for exploring
  (the plan is computed for the budget less the exploration's expected net cloud calls), so the tenant's
  share is the one asked. Exploring never leaves the caps.
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
SUB = 40  # each bucket's requests are also counted in SUB slices of its difficulty range (for splitting)
FIELDS = 6 + SUB
DAY_S = 86400.0
REPLAN_S = 1.0  # a tenant's plan is recomputed at most once a second (on an outcome)
DEFAULT_TENANT = "-"  # requests without a tenant (no auth) share one policy


def tenant_key(tenant: str | None) -> str:
    return tenant or DEFAULT_TENANT


@dataclass(slots=True)
class CellPlan:
    """What a known cell does: send `cloud` of its requests to cloud (the hardest ones: difficulty at or
    above `threshold`), explore the other location at `explore`."""

    cloud: float
    threshold: float  # requests at or above it go to cloud ...
    edge: float  # ... and those in [edge, threshold) with probability `edge_p` (the slice the budget splits)
    edge_p: float
    explore: float
    why: str  # the reason's text up to the move ("adaptive (tenant, cell): evidence")


def add_cells(into: dict[CellKey, list[float]], cells: dict[CellKey, list[float]]) -> None:
    """Fold one day's cell counters into another map of that day (a copy of the cells it lacks)."""
    for key, c in cells.items():
        b = into.get(key)
        if b is None:
            into[key] = list(c)
        else:
            for i in range(FIELDS):
                b[i] += c[i]


class TenantModel:
    """One tenant's counters (merged `base` from the store plus unsaved local `delta`) and its plan."""

    __slots__ = ("base", "delta", "last_replan", "name", "plan", "today", "today_day")

    def __init__(self, name: str) -> None:
        self.name = name
        self.base: dict[int, dict[CellKey, list[float]]] = {}  # day -> cell -> counters (as last loaded)
        self.delta: dict[int, dict[CellKey, list[float]]] = {}  # added here since the last save
        self.plan: dict[CellKey, CellPlan] = {}
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
            add_cells(self.base.setdefault(day, {}), cells)
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
        self.moves = [[f": {tiers[a]} -> {tiers[b]}" for b in range(n)] for a in range(n)]  # reason endings
        hl = settings.half_life_days
        self.horizon_days = max(1, math.ceil(hl * 6))  # older days weigh < 1/64: dropped

    # ------------------------------------------------------------ the hot path

    def bucket(self, f: Any) -> int:
        b = int(f.difficulty * self.buckets)
        return b if b < self.buckets else self.buckets - 1  # adjust() inlines this

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
        d = f.difficulty * self.buckets
        b = int(d)
        if b >= self.buckets:
            b, d = self.buckets - 1, self.buckets - 1e-9
        key = (f.task, b)
        rule_cloud = self.is_cloud[start]
        if live:
            day = int(self.clock() // DAY_S)
            c = tm.today.get(key) if day == tm.today_day else None
            if c is None:
                c = tm.counters(day, key)
            c[SEEN] += 1.0
            c[6 + int((d - b) * SUB)] += 1.0
            if rule_cloud:
                c[RULE_CLOUD] += 1.0
        if not self.enabled:
            return start
        p = tm.plan.get(key)
        if p is None:
            want, explore = rule_cloud, self.settings.explore
        else:
            d = f.difficulty
            want = d >= p.threshold or (d >= p.edge and (self.random() < p.edge_p if live else p.edge_p >= 0.5))
            explore = p.explore
        explored = live and explore > 0.0 and self.random() < explore
        if explored:
            want = not want
        if want == rule_cloud:
            return start
        target = self.up[start] if want else self.down[start]
        if target is None:
            return start
        if target > cap:
            if not explored:
                reasons.append(f"adaptive ({tm.name}, {self.cell_text(key)}): would move to {self.tiers[target]}, "
                               f"capped at {self.tiers[cap]}")
            return start
        if explored:
            reasons.append(f"adaptive ({tm.name}, {self.cell_text(key)}): exploring {self.tiers[target]} instead of "
                           f"{self.tiers[start]} ({explore:.0%} of this cell's requests)")
        else:
            assert p is not None
            reasons.append(p.why + self.moves[start][target])
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
        tenant_sum = _sum(cells.values())
        if tenant_sum[N_LOCAL] < ms or tenant_sum[N_CLOUD] < ms:
            # too little evidence: with a budget, the static dial at that budget (cloud for the hardest requests
            # by difficulty, across all cells: what the static policy would do at that share); else the rules
            tm.plan = {} if math.isinf(budget) else self._dial(tm.name, cells, budget, volume)
            return
        g_tenant = _Estimate(tenant_sum).gain
        estimates = {key: _Estimate(c) for key, c in cells.items()}
        # task -> (gain at bucket 0, gain per bucket, the spread of the task's own gain)
        trend: dict[str, tuple[float, float, float]] = {}
        for task in {k[0] for k in cells}:
            e_task = _Estimate(_sum(c for k, c in cells.items() if k[0] == task))
            line = _trend([(k[1], e.gain, e.n) for k, e in estimates.items() if k[0] == task],
                          e_task.shrunk(g_tenant, ms), ms)
            trend[task] = (*line, e_task.se)
        ranked = []
        for key, c in cells.items():
            est = estimates[key]
            a, b, se_task = trend[key[0]]
            ranked.append((est.shrunk(a + b * key[1], ms), key, c, est.q_local, est.q_cloud,
                           est.shrunk_se(ms, se_task)))
        ranked.sort(key=lambda r: (-r[0], -r[1][1]))  # best gain first; on a tie the harder bucket
        floor = s.min_gain if s.cloud_share == "free" else 0.0  # a budget is spent wherever cloud does better
        # exploring sends some of a cell's requests to the other location: the budget pays for it, so the
        # tenant's share is what was asked (two passes: the exploration rates depend on the allocation)
        explores = [s.explore] * len(ranked)
        for _ in range(2):
            extra = sum(c[SEEN] * e * (1.0 - 2.0 * x) for (_, _, c, *_r), e, x in
                        zip(ranked, explores, self._allocate(ranked, budget, floor)[0], strict=True))
            xs, margin = self._allocate(ranked, budget - extra, floor)
            explores = [self._explore_rate(r, x, margin) for r, x in zip(ranked, xs, strict=True)]
        plan: dict[CellKey, CellPlan] = {}
        for (gain, key, c, q_local, q_cloud, _se), x, explore in zip(ranked, xs, explores, strict=True):
            why = (f"cloud gains {gain:+.2f} here (cloud {q_cloud:.2f} vs local {q_local:.2f} over "
                   f"{c[N_CLOUD]:.0f}/{c[N_LOCAL]:.0f} outcomes, with its task's)")
            if x <= 0.0:
                why += (f", not more than {floor:g}" if gain <= floor
                        else ", but the cloud budget goes where it gains more")
            elif x < 1.0:
                why += f": cloud for the hardest {x:.0%} of this cell (the budget's rest)"
            threshold, edge, edge_p = _split(c, key[1], x, self.buckets)
            plan[key] = CellPlan(cloud=x, threshold=threshold, edge=edge, edge_p=edge_p, explore=explore,
                                 why=f"adaptive ({tm.name}, {self.cell_text(key)}): {why}")
        tm.plan = plan

    @staticmethod
    def _allocate(ranked: list[tuple[Any, ...]], budget: float, floor: float) -> tuple[list[float], float]:
        """(share of each ranked cell's requests sent to cloud, the decision boundary: `floor`, or the gain of
        the cell where the budget ran out)."""
        xs: list[float] = []
        margin = floor
        for gain, _, c, *_rest in ranked:
            if gain <= floor or budget <= 0:
                xs.append(0.0)
                continue
            x = 1.0 if budget >= c[SEEN] else budget / c[SEEN]
            budget -= x * c[SEEN]
            if budget <= 0:
                margin = gain
            xs.append(x)
        return xs, margin

    def _explore_rate(self, r: tuple[Any, ...], x: float, margin: float) -> float:
        """A known cell explores at the full rate while the evidence cannot tell it from the decision boundary
        and it has fewer than 4 x min_samples outcomes on a side; else at the floor, to notice drift. The split
        cell is the boundary: it needs no more than the floor (both locations serve it anyway)."""
        gain, _key, c, _ql, _qc, se = r
        s = self.settings
        if 0.0 < x < 1.0 or abs(gain - margin) >= 2 * se or min(c[N_LOCAL], c[N_CLOUD]) >= 4 * s.min_samples:
            return s.explore_floor
        return s.explore

    def _dial(self, name: str, cells: dict[CellKey, list[float]], budget: float,
              volume: float) -> dict[CellKey, CellPlan]:
        """Each cell's plan for sending the `budget` hardest requests (by difficulty, over the SUB slices of
        every cell) to cloud, exploring at the full rate: the starting point before outcomes say better."""
        slices = sorted(((b + (j + 0.5) / SUB) / self.buckets, key, c[6 + j])
                        for key, c in cells.items() for b in (key[1],) for j in range(SUB) if c[6 + j] > 0)
        share: dict[CellKey, float] = {}
        explore = self.settings.explore
        # exploring sends `explore` of the local requests to cloud and of the cloud ones to local: the budget pays
        left = (budget - explore * volume) / (1.0 - 2.0 * explore) if explore < 0.5 else budget
        left *= sum(x for _, _, x in slices) / volume if volume > 0 else 1.0  # in slice counts
        for _d, key, n in reversed(slices):
            if left <= 0:
                break
            take = min(n, left)
            share[key] = share.get(key, 0.0) + take
            left -= take
        plan = {}
        for key, c in cells.items():
            total = sum(c[6:])
            x = share.get(key, 0.0) / total if total > 0 else 0.0
            threshold, edge, edge_p = _split(c, key[1], x, self.buckets)
            plan[key] = CellPlan(cloud=x, threshold=threshold, edge=edge, edge_p=edge_p, explore=explore,
                                 why=f"adaptive ({name}, {self.cell_text(key)}): too few outcomes yet, cloud for "
                                     f"the hardest {budget / volume if volume else 0:.0%} of the tenant's requests")
        return plan

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


def _split(c: list[float], bucket: int, x: float, buckets: int) -> tuple[float, float, float]:
    """(threshold, edge, edge_p) sending the hardest `x` of a cell's requests to cloud, from its SUB-slice
    counts: all of the slices above `threshold`, and `edge_p` of the slice [edge, threshold) where the
    share runs out (a random part of it: difficulties within a slice are often tied)."""
    if x >= 1.0:
        return -1.0, -1.0, 0.0
    if x <= 0.0:
        return 2.0, 2.0, 0.0
    want = x * sum(c[6:])
    acc = 0.0
    for j in range(SUB - 1, -1, -1):
        n = c[6 + j]
        if n > 0 and acc + n >= want:
            lo, hi = (bucket + j / SUB) / buckets, (bucket + (j + 1) / SUB) / buckets
            return (hi if j < SUB - 1 else 2.0), lo, (want - acc) / n
        acc += n
    return bucket / buckets, bucket / buckets, 0.0


def _trend(points: list[tuple[int, float, float]], prior: float, strength: float) -> tuple[float, float]:
    """(intercept, slope) of a task's gain over its difficulty buckets: a weighted least-squares line through its
    cells' gains (weights: their effective samples), pulled towards the flat line at `prior` by `strength`
    pseudo-samples at the mean bucket. A young cell starts from the line, so it is ranked between its
    neighbours as the difficulty score suggests until its own outcomes say otherwise."""
    sw = strength
    sx = strength * sum(p[0] for p in points) / len(points) if points else 0.0
    sy = strength * prior
    for x, g, w in points:
        sw += w
        sx += w * x
        sy += w * g
    mx, my = sx / sw, sy / sw
    sxx = sum(w * (x - mx) ** 2 for x, _, w in points)
    if sxx <= 1e-9:
        return my, 0.0
    slope = sum(w * (x - mx) * (g - my) for x, g, w in points) / (sxx + strength)
    return my - slope * mx, slope


class _Estimate:
    """Mean local and cloud scores of some counters (Beta(1, 1)-smoothed), their gain and its spread."""

    __slots__ = ("gain", "n", "q_cloud", "q_local", "se")

    def __init__(self, c: list[float]) -> None:
        n_local, n_cloud = max(c[N_LOCAL], 0.0), max(c[N_CLOUD], 0.0)
        self.q_local = (max(c[S_LOCAL], 0.0) + 1) / (n_local + 2)
        self.q_cloud = (max(c[S_CLOUD], 0.0) + 1) / (n_cloud + 2)
        self.gain = self.q_cloud - self.q_local
        self.n = 1.0 / (1.0 / (n_local + 1e-9) + 1.0 / (n_cloud + 1e-9))  # effective samples of the difference
        self.se = math.sqrt(self.q_local * (1 - self.q_local) / (n_local + 2)
                            + self.q_cloud * (1 - self.q_cloud) / (n_cloud + 2))

    def shrunk_se(self, strength: float, prior_se: float) -> float:
        """The spread of `shrunk`'s gain: the cell's own part weighs n / (n + strength), its prior's (the task's
        trend, taken to be as uncertain as the task's own gain) strength / (n + strength)."""
        return math.hypot(self.n * self.se, strength * prior_se) / (self.n + strength)

    def shrunk(self, prior: float, strength: float) -> float:
        """The gain pulled towards `prior` by `strength` pseudo-samples."""
        return (self.n * self.gain + strength * prior) / (self.n + strength)


def _sum(cs: Iterable[list[float]]) -> list[float]:
    out = [0.0] * FIELDS
    for c in cs:
        for i in range(6):
            out[i] += c[i]
    return out


def _mean(s: float, n: float) -> float | None:
    return None if n <= 0 else round(s / n, 4)
