"""Config loading: env expansion, defaults, and errors that name the key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from router.config import ConfigError, expand_env, load, parse

BASE: dict[str, Any] = {
    "backends": [{"name": "b", "base_url": "http://x/v1", "models": [{"id": "m", "tier": "t"}]}],
    "routing": {"tiers": ["t"]},
}


def with_(path: str, value: Any) -> dict[str, Any]:
    import copy

    cfg = copy.deepcopy(BASE)
    node: Any = cfg
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return cfg


def test_shipped_configs_load() -> None:
    root = Path(__file__).resolve().parent.parent
    for name in ("router.yaml", "demo.yaml"):
        cfg = load(root / "config" / name)
        assert cfg.routing.tiers[0] == "local-small"
        assert cfg.routing.promotion.on == {"error", "timeout", "overload", "slow_first_token"}
        assert cfg.pipeline == ["auth", "ratelimit", "redact", "classify", "cache", "budget", "route", "retry"]


def test_env_expansion() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert expand_env({"x": ["${A}", "${B:-dflt}", "${EMPTY:-d2}", "p${A}q"]}, env) == {"x": ["1", "dflt", "d2", "p1q"]}


def test_defaults() -> None:
    cfg = parse(BASE)
    assert cfg.server.port == 8082
    assert cfg.server.max_body_mb == 32
    assert cfg.state_url == "memory://"
    assert cfg.routing.rules[0].tier == "t"
    assert cfg.backends[0].timeouts.first_byte_s == 60


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("backends.0.models.0.price", {"input": "cheap"}, "backends[0].models[0].price.input: expected a number"),
        ("backends.0.models.0.context", "lots", "backends[0].models[0].context: expected a number"),
        ("backends.0.models.0.capabilities", ["telepathy"], "backends[0].models[0].capabilities[0]: expected one of"),
        ("backends.0.kind", "grpc", "backends[0].kind: expected one of openai, anthropic, azure"),
        ("backends.0.base_url", "ftp://x", "backends[0].base_url: expected an http"),
        ("backends.0.timeouts", {"idle_s": -1}, "backends[0].timeouts.idle_s: must be >= 0.001"),
        ("backends.0.colour", "red", "backends[0].colour: unknown key"),
        ("routing.rules", [{"tier": "nope"}], "routing.rules[0].tier: 'nope' is not in routing.tiers"),
        ("routing.rules", [{"tier": "t", "complexity": "extreme"}], "routing.rules[0].complexity: expected one of"),
        ("routing.rules", [{"tier": "t", "min_difficulty": 1.5}], "routing.rules[0].min_difficulty: must be betw"),
        ("routing.rules", [{"tier": "t", "max_difficulty": "hard"}], "routing.rules[0].max_difficulty: expected a n"),
        ("routing.rules", [{"tier": "t", "min_difficulty": 0.7, "max_difficulty": 0.2}],
         "routing.rules[0].min_difficulty: must not exceed max_difficulty"),
        ("routing.complexity_cuts", [0.5], "routing.complexity_cuts: expected two numbers"),
        ("routing.complexity_cuts", [0.2, "x"], "routing.complexity_cuts[1]: expected a number between 0 and 1"),
        ("routing.complexity_cuts", [0.8, 0.2], "routing.complexity_cuts: the first cut must not exceed"),
        ("routing.promotion", {"on": ["boredom"]}, "routing.promotion.on[0]: expected one of"),
        ("routing.min_confidence", 2, "routing.min_confidence: must be between 0 and 1"),
        ("state", {"url": "mysql://x"}, "state.url: expected memory://"),
        ("server", {"port": "eighty"}, "server.port: expected a number"),
        ("tenants", [{"budget": {}}], "tenants[0].match: required"),
    ],
)
def test_errors_name_the_key_path(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(with_(path, value))
    assert str(e.value).startswith(message), str(e.value)


def test_model_tier_must_be_listed() -> None:
    with pytest.raises(ConfigError, match=r"routing\.tiers: model 'm'"):
        parse(with_("backends.0.models.0.tier", "other"))


def test_yaml_on_key_is_not_a_boolean(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("backends: [{name: b, base_url: 'http://x/v1', models: [{id: m, tier: t}]}]\n"
                 "routing: {tiers: [t], promotion: {on: [error], max_steps: 1}}\n")
    assert load(p).routing.promotion.on == {"error"}


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("backends: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(bad)


def test_difficulty_keys_parse() -> None:
    c = parse(with_("routing", {"tiers": ["t"], "complexity_cuts": [0.2, 0.9],
                                "rules": [{"tier": "t", "min_difficulty": 0.3, "max_difficulty": 1}]}))
    assert c.routing.complexity_cuts == (0.2, 0.9)
    assert (c.routing.rules[0].min_difficulty, c.routing.rules[0].max_difficulty) == (0.3, 1.0)
    assert parse(with_("routing", {"tiers": ["t"]})).routing.complexity_cuts == (0.35, 0.65)
