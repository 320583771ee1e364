"""The adaptive engine alone: outcomes move a tenant's decisions up or down, within the caps and budgets."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from router.config import Adaptive as Settings
from router.config import ConfigError, parse
from router.exchange import Features
from router.routing.adaptive import DAY_S, Adaptive

TIERS = ["local-small", "local-large", "cloud-mini", "cloud-code", "cloud-high"]
CLOUD = [False, False, True, True, True]
LS, LL, CM, CC, CH = range(5)


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def engine(**kw: Any) -> tuple[Adaptive, Clock]:
    clock = Clock()
    settings = dataclasses.replace(Settings(enabled=True, min_samples=5, explore=0.0, explore_floor=0.0), **kw)
    return Adaptive(settings, TIERS, CLOUD, clock=clock, rng=random.Random(1)), clock


def feed(a: Adaptive, clock: Clock, tenant: str, f: Features, cloud: bool, score: float, n: int) -> None:
    key = (f.task, a.bucket(f))
    for _ in range(n):
        clock.t += 61.0  # past the replan pause: every outcome replans
        a.observe(tenant, key, cloud, score, 1.0)


def route(a: Adaptive, tenant: str, f: Features, start: int, cap: int = CH, live: bool = True) -> tuple[int, list[str]]:
    reasons: list[str] = []
    return a.adjust(tenant, f, start, cap, reasons, live), reasons


MATH = Features(task="math", difficulty=0.5)
CHAT = Features(task="chat", difficulty=0.1)


def test_moves_up_where_local_answers_are_bad() -> None:
    a, clock = engine()
    assert route(a, "t", MATH, LL)[0] == LL  # nothing learnt yet: the rules' tier
    feed(a, clock, "t", MATH, cloud=False, score=0.2, n=20)
    feed(a, clock, "t", MATH, cloud=True, score=0.9, n=20)
    tier, reasons = route(a, "t", MATH, LL)
    assert tier == CM  # the cheapest cloud tier above the start
    assert len(reasons) == 1
    assert reasons[0].startswith("adaptive (t, math, difficulty 0.40-0.60): cloud gains +")
    assert reasons[0].endswith("local-large -> cloud-mini")
    assert route(a, "other", MATH, LL)[0] == LL  # per tenant


def test_moves_down_where_cloud_was_not_needed() -> None:
    a, clock = engine()
    feed(a, clock, "t", MATH, cloud=False, score=0.9, n=20)
    feed(a, clock, "t", MATH, cloud=True, score=0.92, n=20)
    tier, reasons = route(a, "t", MATH, CH)
    assert tier == LL  # the highest local tier below the start
    assert "cloud-high -> local-large" in reasons[0]
    assert route(a, "t", MATH, LS)[0] == LS  # a local start stays local


def test_never_above_the_cap() -> None:
    a, clock = engine()
    feed(a, clock, "t", MATH, cloud=False, score=0.0, n=20)
    feed(a, clock, "t", MATH, cloud=True, score=1.0, n=20)
    tier, reasons = route(a, "t", MATH, LS, cap=LL)
    assert tier == LS
    assert reasons == ["adaptive (t, math, difficulty 0.40-0.60): would move to cloud-mini, capped at local-large"]


def test_min_samples_gate() -> None:
    a, clock = engine(min_samples=30)
    feed(a, clock, "t", MATH, cloud=False, score=0.0, n=29)
    feed(a, clock, "t", MATH, cloud=True, score=1.0, n=40)
    assert route(a, "t", MATH, LL)[0] == LL
    feed(a, clock, "t", MATH, cloud=False, score=0.0, n=1)
    assert route(a, "t", MATH, LL)[0] == CM


def test_disabled_never_moves_but_keeps_counting() -> None:
    a, clock = engine(enabled=False)
    feed(a, clock, "t", MATH, cloud=False, score=0.0, n=20)
    feed(a, clock, "t", MATH, cloud=True, score=1.0, n=20)
    assert route(a, "t", MATH, LL) == (LL, [])
    assert a.describe("t")[0]["requests"] == 1.0


def test_cells_are_task_by_difficulty() -> None:
    a, clock = engine()
    hard, easy = Features(task="math", difficulty=0.9), Features(task="math", difficulty=0.1)
    feed(a, clock, "t", hard, cloud=False, score=0.1, n=40)
    feed(a, clock, "t", hard, cloud=True, score=0.9, n=40)
    feed(a, clock, "t", easy, cloud=False, score=0.9, n=40)
    feed(a, clock, "t", easy, cloud=True, score=0.9, n=40)
    assert route(a, "t", hard, LL)[0] == CM
    assert route(a, "t", easy, LL)[0] == LL
    assert route(a, "t", easy, CH)[0] == LL


def test_a_young_cell_starts_from_its_task() -> None:
    a, clock = engine()
    feed(a, clock, "t", MATH, cloud=False, score=0.1, n=40)
    feed(a, clock, "t", MATH, cloud=True, score=0.9, n=40)
    route(a, "t", Features(task="math", difficulty=0.95), LL)  # first seen: counted, then planned
    clock.t += 120
    feed(a, clock, "t", MATH, cloud=True, score=0.9, n=1)
    assert route(a, "t", Features(task="math", difficulty=0.95), LL)[0] == CM


def test_rules_budget_goes_where_cloud_gains_most() -> None:
    a, clock = engine(cloud_share="rules")
    hard, easy = Features(task="math", difficulty=0.9), Features(task="chat", difficulty=0.1)
    for _ in range(50):  # the rules send the easy chat to cloud and the hard math to local
        route(a, "t", easy, CM)
        route(a, "t", hard, LL)
    feed(a, clock, "t", hard, cloud=False, score=0.1, n=40)
    feed(a, clock, "t", hard, cloud=True, score=0.9, n=40)
    feed(a, clock, "t", easy, cloud=False, score=0.8, n=40)
    feed(a, clock, "t", easy, cloud=True, score=0.85, n=40)
    assert route(a, "t", hard, LL, live=False)[0] == CM  # up where it pays ...
    assert route(a, "t", easy, CM, live=False)[0] == LL  # ... paid for by moving the other cell down
    served = [route(a, "t", hard, LL)[0] >= CM for _ in range(200)] + [route(a, "t", easy, CM)[0] >= CM
                                                                      for _ in range(200)]
    assert sum(served) == 200  # the rules' cloud share (half), held


def test_fixed_share_splits_a_cell_by_difficulty() -> None:
    a, clock = engine(cloud_share=0.25)
    feats = [Features(task="math", difficulty=0.4 + i * 0.19 / 100) for i in range(100)]
    for f in feats:
        route(a, "t", f, LL)
    feed(a, clock, "t", feats[0], cloud=False, score=0.2, n=40)
    feed(a, clock, "t", feats[0], cloud=True, score=0.9, n=40)
    up = [route(a, "t", f, LL, live=False)[0] == CM for f in feats]
    assert 20 <= sum(up) <= 30
    assert up[-1]
    assert not up[0]


def test_outcomes_decay() -> None:
    a, clock = engine(half_life_days=1.0)
    feed(a, clock, "t", MATH, cloud=False, score=0.0, n=20)
    feed(a, clock, "t", MATH, cloud=True, score=1.0, n=20)
    assert route(a, "t", MATH, LL)[0] == CM
    clock.t += 10 * DAY_S  # ten half-lives later the old evidence weighs 1/1024: below min_samples again
    a.replan(a.tenant("t"))
    assert route(a, "t", MATH, LL)[0] == LL
    assert a.describe("t")[0]["local"]["n"] < 0.1


def test_retracting_an_outcome() -> None:
    a, _clock = engine()
    key = ("math", a.bucket(MATH))
    a.observe("t", key, False, 0.0, 1.0)
    a.observe("t", key, False, 0.0, -1.0)
    a.observe("t", key, False, 1.0, 1.0)
    assert a.describe("t")[0]["local"] == {"n": 1.0, "mean": 1.0}


def test_exploration_is_bounded_and_not_on_dry_runs() -> None:
    a, _ = engine(explore=0.2)
    moved = [route(a, "t", MATH, LL)[0] for _ in range(2000)]
    share = sum(t == CM for t in moved) / len(moved)
    assert 0.15 < share < 0.25
    assert route(a, "t", MATH, LL, live=False) == (LL, [])
    capped = [route(a, "t", MATH, LL, cap=LL)[0] for _ in range(200)]
    assert set(capped) == {LL}


@pytest.mark.parametrize(
    ("adaptive", "message"),
    [
        ({"enabled": "sometimes"}, "routing.adaptive.enabled: expected true or false"),
        ({"min_samples": 0}, "routing.adaptive.min_samples: must be >= 1"),
        ({"explore": 0.9}, "routing.adaptive.explore: must be between 0 and 0.5"),
        ({"min_gain": -1}, "routing.adaptive.min_gain: must be >= 0"),
        ({"cloud_share": "lots"}, "routing.adaptive.cloud_share: expected free, rules or a share in (0, 1]"),
        ({"cloud_share": 1.5}, "routing.adaptive.cloud_share: expected free, rules or a share in (0, 1]"),
        ({"half_life_days": "x"}, "routing.adaptive.half_life_days: expected a number"),
        ({"bogus": 1}, "routing.adaptive.bogus: unknown key"),
        ([1], "routing.adaptive: expected a mapping"),
    ],
)
def test_config_errors_name_the_key(adaptive: Any, message: str) -> None:
    cfg = {"backends": [{"name": "b", "base_url": "http://x/v1", "models": [{"id": "m", "tier": "t"}]}],
           "routing": {"tiers": ["t"], "adaptive": adaptive}}
    with pytest.raises(ConfigError) as e:
        parse(cfg)
    assert str(e.value).startswith(message)


def test_config_defaults() -> None:
    cfg = parse({"backends": [{"name": "b", "base_url": "http://x/v1", "models": [{"id": "m", "tier": "t"}]}],
                 "routing": {"tiers": ["t"], "adaptive": {"enabled": True, "min_samples": 20, "cloud_share": 0.3}}})
    a = cfg.routing.adaptive
    assert (a.enabled, a.min_samples, a.cloud_share, a.buckets) == (True, 20, 0.3, 5)


def test_policy_keeps_every_cap() -> None:
    """Through `Policy.decide`: the tenant's max_tier and a stage's `Exchange.max_tier` (a budget downgrade)
    cap an adaptive move; a client-chosen tier is never moved."""
    from router.routing.feedback import build_feedback
    from router.server import RouterService
    from tests.conftest import make_config

    cfg = make_config("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1",
                      tenants=[{"match": "acme/capped", "max_tier": "local-large"}])
    cfg["routing"]["adaptive"] = {"enabled": True, "min_samples": 3, "explore": 0, "explore_floor": 0}
    svc = RouterService(parse(cfg))
    clock = Clock()
    fb = build_feedback(svc.config, svc.catalog, clock)
    route = next(s for s in svc.pipeline.stages if s.name == "route")
    policy = route.policy
    policy.adaptive = fb.adaptive
    f = Features(task="chat", difficulty=0.1, tokens=10)
    for tenant in ("acme/free", "acme/capped"):
        feed(fb.adaptive, clock, tenant, f, cloud=False, score=0.0, n=10)
        feed(fb.adaptive, clock, tenant, f, cloud=True, score=1.0, n=10)
    assert policy.decide(f, tenant="acme/free").primary.tier == "cloud-mini"
    capped = policy.decide(f, tenant="acme/capped")
    assert capped.primary.tier == "local-small"
    assert any("capped at local-large" in r for r in capped.reasons)
    downgraded = policy.decide(f, tenant="acme/free", max_tier="local-large")
    assert downgraded.primary.tier == "local-small"
    assert all(c.tier in ("local-small", "local-large") for c in downgraded.candidates)
    assert policy.decide(f, tenant="acme/free", model="tier:local-small").primary.tier == "local-small"


def test_a_young_cell_far_below_the_boundary_stops_exploring() -> None:
    """A cell with few cloud outcomes of its own is judged with its task's trend: when that puts it clearly
    below the cell the budget ends in, it explores at the floor (exploring there only spends the budget on
    requests that gain less than those it displaces)."""
    a, clock = engine(explore=0.05, explore_floor=0.01, cloud_share=0.3, min_samples=5)
    hard, easy = Features(task="math", difficulty=0.9), Features(task="math", difficulty=0.1)
    for _ in range(60):  # the rules' traffic: what the budget is a share of
        route(a, "t", hard, LL)
        route(a, "t", easy, LL)
    feed(a, clock, "t", hard, cloud=True, score=0.6, n=40)
    feed(a, clock, "t", hard, cloud=False, score=0.4, n=40)
    feed(a, clock, "t", easy, cloud=False, score=0.9, n=40)
    feed(a, clock, "t", easy, cloud=True, score=0.9, n=3)  # three draws of its own, in line with the trend
    plan = a.tenants["t"].plan
    assert plan[("math", a.bucket(hard))].cloud > 0.5
    assert plan[("math", a.bucket(easy))].cloud == 0.0
    assert plan[("math", a.bucket(easy))].explore == 0.01
