"""router.routing.policy and the route stage: rules, capability/context/type filters, steering, tenants, the chain."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from backends.base import Backend
from middleware.classify import ClassifyStage
from middleware.route import RouteStage
from router.catalog import Catalog
from router.config import ConfigError, parse
from router.context import Context
from router.errors import InvalidRequest, PermissionDenied
from router.exchange import Exchange, Features, Reply
from router.routing.policy import Policy
from router.routing.preview import describe
from router.routing.tokens import count_exact, extract, get_encoding


class FakeBackend(Backend):
    kind = "fake"


def make_config(**over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "backends": [
            {"name": "gpu", "location": "local", "base_url": "http://gpu:1/v1", "models": [
                {"id": "small", "tier": "t-small", "context": 4096},
                {"id": "large", "tier": "t-large", "context": 8192, "capabilities": ["tools", "vision"]},
                {"id": "embed-local", "type": "embedding", "context": 512},
            ]},
            {"name": "a", "base_url": "https://a/v1", "models": [
                {"id": "mini", "tier": "t-mini", "context": 128000, "capabilities": ["tools", "vision", "json"],
                 "price": {"input": 0.25, "output": 2}},
                {"id": "high", "tier": "t-high", "context": 200000, "capabilities": ["tools", "vision", "json"],
                 "price": {"input": 1.25, "output": 10}},
                {"id": "embed-cloud", "type": "embedding", "context": 8191, "price": {"input": 0.02}},
            ]},
            {"name": "b", "base_url": "https://b/v1", "models": [
                {"id": "mini-b", "tier": "t-mini", "context": 128000, "capabilities": ["tools"],
                 "price": {"input": 0.25, "output": 2}},
                {"id": "high-b", "tier": "t-high", "context": 400000, "capabilities": ["tools", "vision"],
                 "price": {"input": 3, "output": 15}},
            ]},
        ],
        "routing": {
            "tiers": ["t-small", "t-large", "t-mini", "t-high"],
            "rules": [
                {"task": "code", "max_prompt_tokens": 400, "complexity": "medium", "tier": "t-large"},
                {"task": "code", "tier": "t-high"},
                {"task": "chat", "tenant": "vip/*", "tier": "t-mini"},
                {"task": "chat", "has_tools": True, "tier": "t-mini"},
                {"task": "chat", "max_prompt_tokens": 2000, "tier": "t-small"},
                {"tier": "t-mini"},
            ],
        },
        "tenants": [
            {"match": "locked/*", "steering": False, "max_tier": "t-mini"},
            {"match": "*", "steering": True},
        ],
    }
    raw.update(over)
    return raw


def make_ctx(raw: dict[str, Any] | None = None) -> Context:
    config = parse(raw or make_config())
    backends = {b.name: FakeBackend(b) for b in config.backends}
    return Context(config=config, backends=backends, catalog=Catalog(config, backends))


@pytest.fixture
def ctx() -> Context:
    return make_ctx()


@pytest.fixture
def policy(ctx: Context) -> Policy:
    return Policy(ctx.config.routing, ctx.catalog, ctx.config.tenants, ["code", "math", "docs", "chat"])


def feats(**kw: Any) -> Features:
    base: dict[str, Any] = {"task": "chat", "complexity": "low", "confidence": 0.9, "tokens": 100}
    base.update(kw)
    return Features(**base)


def ids(decision: Any) -> list[str]:
    return [c.model.id for c in decision.candidates]


def hdrs(**kw: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in kw.items()}))


# ---------------------------------------------------------------- rules and the chain


def test_first_matching_rule_and_full_fallback_chain(policy: Policy) -> None:
    d = policy.decide(feats())
    assert d.rule == 4
    assert ids(d) == ["small", "large", "mini", "mini-b", "high", "high-b"]
    assert [c.tier for c in d.candidates] == ["t-small", "t-large", "t-mini", "t-mini", "t-high", "t-high"]
    assert "rule 4 (task=chat, tokens<=2000) -> t-small" in d.reasons[0]


def test_complexity_is_an_upper_bound_and_tokens_too(policy: Policy) -> None:
    assert policy.decide(feats(task="code", complexity="low", tokens=300)).primary.tier == "t-large"
    assert policy.decide(feats(task="code", complexity="medium", tokens=300)).primary.tier == "t-large"
    assert policy.decide(feats(task="code", complexity="high", tokens=300)).primary.tier == "t-high"
    assert policy.decide(feats(task="code", complexity="low", tokens=401)).primary.tier == "t-high"


def test_tenant_glob_and_has_tools_rules(policy: Policy) -> None:
    assert policy.decide(feats(), tenant="vip/app").rule == 2
    assert policy.decide(feats(), tenant="other/app").rule == 4
    assert policy.decide(feats(has_tools=True)).rule == 3


def test_thresholds_are_only_those_that_could_flip(policy: Policy) -> None:
    assert policy.thresholds(feats(task="code", complexity="high"), None)[:1] == [512 - 0]  # contexts only
    t = policy.thresholds(feats(task="code", complexity="low", max_output_tokens=100), None)
    assert t[0] == 400
    assert 4096 - 100 in t
    assert 2000 not in t
    assert policy.thresholds(feats(), None, client_model="high") == []


def _thresholds_by_definition(policy: Policy, f: Features, tenant: str | None) -> list[int]:
    """The rules' `max_prompt_tokens` that could flip an auto request, up to the first rule that matches it
    whatever its size, then every context less the output reserve: what `thresholds` memoises."""
    out = []
    for r in policy.rules:
        if policy._matches(r, f, tenant, tokens=False):
            if r.max_prompt_tokens is None:
                break
            out.append(r.max_prompt_tokens)
    return out + [c - (f.max_output_tokens or 0) for c in policy.contexts]


@pytest.mark.parametrize("tenant", [None, "vip/app", "other/app"])
def test_memoised_thresholds_are_the_definitions(ctx: Context, tenant: str | None) -> None:
    """Memoised by (task, complexity, tools, images, reserve) for a task whose rules read neither the tenant
    nor difficulty bounds (code, here), computed each time for one that does (chat reads the tenant)."""
    raw = make_config()
    raw["routing"]["rules"].insert(0, {"task": "docs", "min_difficulty": 0.5, "tier": "t-high"})
    policy = Policy(parse(raw).routing, ctx.catalog, ctx.config.tenants, ["code", "math", "docs", "chat"])
    for _ in range(2):  # the second round answers from the memo where there is one
        for task in ("code", "chat", "docs", "math"):
            for complexity in ("low", "medium", "high"):
                for tools, images, reserve, difficulty in [(False, False, None, 0.2), (True, False, 100, 0.7),
                                                           (False, True, 50, 0.5)]:
                    f = feats(task=task, complexity=complexity, has_tools=tools, has_images=images,
                              max_output_tokens=reserve, difficulty=difficulty)
                    assert policy.thresholds(f, tenant) == _thresholds_by_definition(policy, f, tenant)
    assert policy._pure_rules == {"code": True, "chat": False, "docs": False, "math": True}


# ---------------------------------------------------------------- filters


def test_capability_filters(policy: Policy) -> None:
    d = policy.decide(feats(has_images=True))
    assert ids(d) == ["large", "mini", "high", "high-b"]  # small has no vision, mini-b neither
    assert any("no model in t-small" in r for r in d.reasons)
    d = policy.decide(feats(has_tools=True, wants_json=True, task="math"))
    assert ids(d) == ["mini", "high"]


def test_context_window_counts_prompt_plus_max_tokens(policy: Policy) -> None:
    d = policy.decide(feats(task="code", complexity="low", tokens=300, max_output_tokens=8000))
    assert ids(d) == ["mini", "mini-b", "high", "high-b"]  # large: 300 + 8000 > 8192; the chain goes up
    d = policy.decide(feats(tokens=250_000))
    assert ids(d) == ["high-b"]
    with pytest.raises(InvalidRequest, match="no model can take a 450000-token prompt") as e:
        policy.decide(feats(tokens=450_000))
    assert (e.value.status, e.value.code) == (400, "context_length_exceeded")  # OpenAI's answer; not a 503


def test_embeddings_go_to_embedding_models(policy: Policy) -> None:
    d = policy.decide(feats(tokens=100), endpoint="embeddings")
    assert ids(d) == ["embed-local", "embed-cloud"]
    d = policy.decide(feats(tokens=1000), endpoint="embeddings")
    assert ids(d) == ["embed-cloud"]


def test_cheapest_then_lowest_latency_then_healthy(ctx: Context, policy: Policy) -> None:
    ctx.backends["a"].latency_ms = 300.0
    ctx.backends["b"].latency_ms = 80.0
    assert ids(policy.decide(feats(tokens=5000)))[:2] == ["mini-b", "mini"]  # same price: faster first
    ctx.backends["b"].breaker.trip("test")
    d = policy.decide(feats(tokens=5000))
    assert ids(d) == ["mini", "high", "mini-b", "high-b"]  # unhealthy ones last
    assert any("unhealthy" in r for r in d.reasons)


# ---------------------------------------------------------------- confidence, steering, tenants


def test_low_confidence_starts_one_tier_higher(policy: Policy) -> None:
    d = policy.decide(feats(confidence=0.3))
    assert d.primary.tier == "t-large"
    assert any("confidence 0.30 < min_confidence 0.5: t-small -> t-large" in r for r in d.reasons)


def test_client_model_concrete_and_tier(policy: Policy) -> None:
    d = policy.decide(feats(has_images=True), model="mini-b")
    assert ids(d) == ["mini-b"]  # passthrough: no rerouting, no filtering
    assert policy.decide(feats(), model="tier:t-mini").primary.tier == "t-mini"
    assert ids(policy.decide(feats(), model="tier:t-mini")) == ["mini", "mini-b", "high", "high-b"]


def test_steering_headers(policy: Policy) -> None:
    d = policy.decide(feats(), headers=hdrs(x_router_prefer="cloud"))
    assert d.primary.model.location == "cloud"
    assert d.primary.model.id == "mini"
    d = policy.decide(feats(task="code", complexity="high"), headers=hdrs(x_router_prefer="local"))
    assert d.primary.model.id == "large"
    assert ids(d)[1:] == ["high", "high-b"]
    d = policy.decide(feats(task="code", complexity="high"), headers=hdrs(x_router_max_tier="t-mini"))
    assert ids(d) == ["mini", "mini-b"]
    with pytest.raises(InvalidRequest, match="x-router-max-tier: unknown tier 'gold'") as e:
        policy.decide(feats(), headers=hdrs(x_router_max_tier="gold"))
    assert e.value.param == "x-router-max-tier"
    assert e.value.status == 400
    with pytest.raises(InvalidRequest, match="x-router-prefer"):
        policy.decide(feats(), headers=hdrs(x_router_prefer="moon"))


def test_tenant_forbids_steering_and_caps(policy: Policy) -> None:
    d = policy.decide(feats(task="code", complexity="high"), tenant="locked/app",
                      headers=hdrs(x_router_prefer="local", x_router_max_tier="gold"))
    assert ids(d) == ["mini", "mini-b"]  # tenant max_tier caps; headers ignored (even an invalid one)
    assert any("forbids steering: ignored x-router-prefer, x-router-max-tier" in r for r in d.reasons)
    with pytest.raises(PermissionDenied):
        policy.decide(feats(), tenant="locked/app", model="high")
    assert ids(policy.decide(feats(), max_tier="t-small")) == ["small"]


def test_policy_config_errors(ctx: Context) -> None:
    with pytest.raises(ConfigError, match=r"routing.rules\[0\].task: unknown task 'legal'"):
        Policy(parse(make_config(routing={"tiers": ["t-small", "t-large", "t-mini", "t-high"],
                                          "rules": [{"task": "legal", "tier": "t-small"}]})).routing,
               ctx.catalog, [], ["code", "chat"])
    with pytest.raises(ConfigError, match=r"tenants\[0\].max_tier: 'gold' is not in routing.tiers"):
        Policy(ctx.config.routing, ctx.catalog, [{"match": "*", "max_tier": "gold"}])
    with pytest.raises(ConfigError, match=r"tenants\[0\].steering: expected true or false"):
        Policy(ctx.config.routing, ctx.catalog, [{"match": "*", "steering": "no"}])


# ---------------------------------------------------------------- the stages and the preview


async def _terminal(ex: Exchange) -> Reply:
    return Reply(200, {}, body=b"{}")


def _exchange(body: dict[str, Any], endpoint: str = "chat", **headers: str) -> Exchange:
    return Exchange("r1", endpoint, body, None, hdrs(**headers))


async def test_route_stage_alone_computes_features(ctx: Context) -> None:
    stage = RouteStage(ctx)
    ex = _exchange({"model": "auto", "messages": [{"role": "user", "content": "hi! how was your weekend?"}]})
    await stage.handle(ex, _terminal)
    assert ex.features is not None
    assert ex.features.task == "chat"
    assert ex.target is ex.decision.primary
    assert ex.target.model.id == "small"


async def test_classify_then_route_and_describe(ctx: Context) -> None:
    classify, route = ClassifyStage(ctx), RouteStage(ctx)
    body = {"model": "auto", "max_tokens": 1000, "messages": [
        {"role": "user", "content": "Fix this:\n```python\ndef f(x):\n    return x +\n```"}]}
    ex = _exchange(body)
    ex.dry_run = True

    async def chain(e: Exchange) -> Reply:
        return await route.handle(e, _terminal)

    await classify.handle(ex, chain)
    out = describe(ex)
    assert list(out) == ["model", "backend", "tier", "task", "complexity", "difficulty", "tokens", "tokens_exact",
                         "confidence", "estimated_cost_usd", "reasons", "signals", "fallbacks"]
    assert out["task"] == "code"
    assert out["model"] == "large"
    assert out["backend"] == "gpu"
    assert out["estimated_cost_usd"] == 0.0
    # The preview counts as the real call does: a small prompt far from any threshold is only estimated.
    real = _exchange(body)
    await classify.handle(real, chain)
    assert (out["tokens"], out["tokens_exact"]) == (real.features.tokens, real.features.tokens_exact)  # type: ignore[union-attr]
    assert out["tokens_exact"] is False
    assert out["fallbacks"][:2] == [{"model": "mini", "backend": "a", "tier": "t-mini"},
                                    {"model": "mini-b", "backend": "b", "tier": "t-mini"}]
    ex2 = _exchange({**body, "model": "tier:t-mini"})
    await classify.handle(ex2, chain)
    cost = describe(ex2)["estimated_cost_usd"]
    assert cost == pytest.approx((ex2.features.tokens * 0.25 + 1000 * 2) / 1e6)  # type: ignore[union-attr]


async def test_stage_rejects_unknown_encoding() -> None:
    raw = make_config()
    raw["routing"]["encoding"] = "gpt9_base"
    with pytest.raises(ConfigError, match=r"routing\.encoding: unknown encoding 'gpt9_base'"):
        RouteStage(make_ctx(raw))


async def test_concrete_model_skips_classification_without_a_classify_stage(ctx: Context) -> None:
    stage = RouteStage(ctx)
    ex = _exchange({"model": "mini-b", "messages": [{"role": "user", "content": "Fix this:\n```py\nx = 1\n```"}]})
    await stage.handle(ex, _terminal)
    assert ex.features is None  # passthrough: nothing to classify
    assert ex.target is not None
    assert ex.target.model.id == "mini-b"
    out = describe(ex)
    assert out["model"] == "mini-b"
    assert out["task"] is None
    dry = _exchange({"model": "mini-b", "messages": [{"role": "user", "content": "hi"}]})
    dry.dry_run = True
    await stage.handle(dry, _terminal)
    assert dry.features is not None  # the preview still shows features, counted as a real call would
    assert dry.features.tokens > 0
    assert dry.features.task == "chat"


async def test_tokens_are_counted_only_when_the_band_matters(ctx: Context) -> None:
    stage = RouteStage(ctx)
    chat = "Tell me something nice about the weekend and the weather in spring, please. " * 12  # ~200 tokens
    ex = _exchange({"model": "auto", "messages": [{"role": "user", "content": chat}]})
    await stage.handle(ex, _terminal)
    assert ex.features is not None
    assert not ex.features.tokens_exact
    near = "Tell me something nice about the weekend. " * 222  # ~2000 tokens: the 2000-token rule is in any band
    ex = _exchange({"model": "auto", "messages": [{"role": "user", "content": near}]})
    await stage.handle(ex, _terminal)
    assert ex.features is not None
    assert ex.features.tokens_exact
    assert ex.features.tokens == count_exact(extract("chat", ex.body), get_encoding())


def test_complexity_matters_only_when_a_reachable_rule_reads_it(ctx: Context) -> None:
    p = Policy(ctx.config.routing, ctx.catalog, ctx.config.tenants, ["code", "math", "docs", "chat"])
    assert p.complexity_matters("code")  # rule 0 has complexity: medium
    assert not p.complexity_matters("chat")  # no chat rule (nor the default) reads complexity
    assert not p.complexity_matters("docs")
    raw = make_config()
    raw["routing"]["rules"] = [{"task": "code", "tier": "t-high"}, {"complexity": "low", "tier": "t-small"},
                               {"tier": "t-mini"}]
    c2 = make_ctx(raw)
    p2 = Policy(c2.config.routing, c2.catalog, c2.config.tenants)
    assert not p2.complexity_matters("code")  # the first code rule matches every code request
    assert p2.complexity_matters("chat")


def test_complexity_band_is_recounted_only_when_a_rule_reads_it(ctx: Context) -> None:
    """A band whose ends give different complexities forces an exact count only if a rule could read it."""
    from router.routing.tokens import TokenCount

    analyzer = RouteStage(ctx).analyzer
    level = analyzer.difficulty.level
    tc = TokenCount(15000, False, 9000, 24000)  # no rule's max_prompt_tokens and no context window inside
    base = (-4.2, 0.45, 0.45)  # medium at 9000 tokens, high at 24000 (a band wider than BAND_LOGIT)
    assert level(base, tc.low)[1] != level(base, tc.high)[1]
    ex = Exchange("r", "chat", {"model": "auto", "messages": []}, None, CIMultiDictProxy(CIMultiDict()))
    code, chat = feats(task="code"), feats(task="chat")
    assert analyzer._in_band(code, base, tc, ex)  # a code rule reads complexity: count exactly
    assert not analyzer._in_band(chat, base, tc, ex)  # no chat rule does: the estimate's level will do


def test_difficulty_bounds_in_rules() -> None:
    raw = make_config()
    raw["routing"]["rules"] = [
        {"task": "chat", "max_difficulty": 0.3, "tier": "t-small"},
        {"min_difficulty": 0.8, "tier": "t-high"},
        {"tier": "t-mini"},
    ]
    c = make_ctx(raw)
    p = Policy(c.config.routing, c.catalog, c.config.tenants)
    assert p.decide(feats(difficulty=0.3)).primary.tier == "t-small"  # bounds are inclusive
    assert p.decide(feats(difficulty=0.31)).primary.tier == "t-mini"
    assert p.decide(feats(task="code", difficulty=0.8)).primary.tier == "t-high"
    d = p.decide(feats(task="code", difficulty=0.79))
    assert d.primary.tier == "t-mini"
    assert p.decide(feats(difficulty=0.9)).reasons[0] == "rule 1 (difficulty>=0.8) -> t-high"
    assert p.difficulty_bounds == [0.3, 0.35, 0.65, 0.8]  # the cuts and the rules' bounds
    assert p.complexity_matters("chat")
    assert p.complexity_matters("code")


def test_complexity_is_read_off_difficulty_through_the_cuts() -> None:
    from router.routing.difficulty import level

    assert [level(d) for d in (0.0, 0.349, 0.35, 0.649, 0.65, 1.0)] == ["low", "low", "medium", "medium", "high",
                                                                           "high"]
    assert level(0.5, (0.6, 0.9)) == "low"
    raw = make_config()
    raw["routing"]["complexity_cuts"] = [0.0, 0.0]  # everything is high
    c = make_ctx(raw)
    ex = Exchange("r", "chat", {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}, None,
                  CIMultiDictProxy(CIMultiDict()))
    f = RouteStage(c).analyzer.features(ex)[0]
    assert f.complexity == "high"
    assert 0.0 <= f.difficulty <= 1.0


def test_low_confidence_bump_reason() -> None:
    raw = make_config()
    raw["routing"]["min_confidence"] = 0.5
    c = make_ctx(raw)
    p = Policy(c.config.routing, c.catalog, c.config.tenants)
    d = p.decide(feats(confidence=0.31), model="auto")
    assert "confidence 0.31 < min_confidence 0.5: t-small -> t-large" in d.reasons
    assert d.primary.tier == "t-large"
