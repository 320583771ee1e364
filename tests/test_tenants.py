"""Config of spend control is never silently ignored: tenants, budgets, limits, redact shape, cache."""

from __future__ import annotations

from typing import Any

import pytest

from router.config import ConfigError, parse
from router.tenants import Tenants
from tests.conftest import make_config


def tenants_of(**overrides: Any) -> Tenants:
    return Tenants(parse(make_config("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", **overrides)))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"tenants": [{"match": "acme/*", "max_teir": "cloud-mini"}]}, "tenants[0].max_teir: unknown key"),
    # per-tenant adaptive settings do not exist (routing.adaptive is global): refused, not silently ignored
    ({"tenants": [{"match": "acme/*", "adaptive": {"enabled": True}}]}, "tenants[0].adaptive: unknown key"),
    ({"tenants": [{"match": "acme/*", "limits": 7}]}, "tenants[0].limits: expected a mapping"),
    ({"tenants": [{"match": "acme/*", "limits": {"rpm": 0}}]}, "tenants[0].limits.rpm: must be > 0"),
    ({"tenants": [{"match": "acme/*", "limits": {"rqm": 5}}]}, "tenants[0].limits.rqm: unknown key"),
    ({"tenants": [{"match": "acme/*", "budget": {"daily": 5}}]}, "tenants[0].budget.daily: unknown key"),
    ({"tenants": [{"match": "acme/*", "budget": {"daily_usd": "lots"}}]}, "budget.daily_usd: expected a number"),
    ({"tenants": [{"match": "acme/*", "budget": {"daily_usd": 5, "soft_pct": 120}}]}, "soft_pct: expected a perc"),
    ({"tenants": [{"match": "acme/*", "budget": {"daily_usd": 5, "on_soft": "downgrade"}}]},
     "budget.soft_pct: required"),
    ({"tenants": [{"match": "acme/*", "budget": {"daily_usd": 5, "on_hard": "explode"}}]}, "on_hard: expected one"),
    ({"tenants": [{"match": "acme/*", "budget": {}}]}, "set at least one of daily_usd"),
    ({"tenants": [{"match": "acme/*", "redact": {"policy": "scrub"}}]}, "tenants[0].redact.policy: expected one"),
    ({"tenants": [{"match": "acme/*", "redact": 3}]}, "tenants[0].redact: expected a mapping"),
    ({"tenants": [{"match": "acme/*", "redact": {"restore": "yes"}}]}, "redact.restore: expected true or false"),
    ({"tenants": [{"match": "acme/*", "redact": {"polcy": "redact"}}]}, "redact.polcy: unknown key"),
    ({"tenants": [{"budget": {"daily_usd": 1}}]}, "tenants[0].match: required"),
    ({"cache": {"wibble": 1}}, "cache.wibble: unknown key"),
    ({"cache": {"ttl_s": -1}}, "cache.ttl_s"),
    ({"cache": {"backend": "redis"}}, "cache.url: required"),
    ({"tenants": [{"match": "a/*", "budget": {"daily_usd": 1}}], "pipeline": ["route", "retry"]},
     "tenants[0].budget: the `budget` stage is not in pipeline"),
    ({"tenants": [{"match": "a/*", "limits": {"rpm": 1}}], "pipeline": ["budget", "route", "retry"]},
     "tenants[0].limits: the `ratelimit` stage is not in pipeline"),
    ({"cache": {"ttl_s": 60}, "pipeline": ["route", "retry"]}, "cache: the `cache` stage is not in pipeline"),
])
def test_refused_with_the_key_path(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        tenants_of(**overrides)


def test_first_match_wins_and_budget_parsed() -> None:
    t = tenants_of(tenants=[
        {"match": "acme/web", "budget": {"daily_usd": 0.01}},
        {"match": "acme/*", "budget": {"daily_usd": 20, "monthly_usd": 300, "per_request_usd": 0.5, "soft_pct": 80,
                                       "on_soft": "downgrade", "on_hard": "reject"}, "limits": {"rpm": 3000}},
    ])
    web, batch = t.get("acme/web"), t.get("acme/batch")
    assert web is not None
    assert web.budget is not None
    assert web.budget.daily_usd == 0.01
    assert batch is not None
    assert batch.budget is not None
    assert batch.budget.soft_pct == 80
    assert batch.limits is not None
    assert batch.limits.rpm == 3000
    assert t.get("other/x") is None
