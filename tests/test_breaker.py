"""backends/breaker.py: closed -> open -> half-open -> closed, by failures in a row or by error rate."""

from __future__ import annotations

import time

import pytest

from backends.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from router.config import BreakerSpec, ConfigError, parse


def test_consecutive_failures_open_then_probe_closes() -> None:
    b = Breaker("x", BreakerSpec(failures=3, cooldown_s=0.05))
    b.failure()
    b.failure()
    assert b.state == CLOSED
    assert b.allow()
    b.failure()
    assert b.state == OPEN
    assert not b.available
    assert not b.allow()
    assert 0 < b.retry_after() <= 0.05
    time.sleep(0.06)
    assert b.available
    assert b.allow()  # the probe
    assert b.state == HALF_OPEN
    assert not b.allow()  # only one probe at a time
    b.success()
    assert b.state == CLOSED
    assert b.allow()
    assert b.opened == 1


def test_failed_probe_opens_again() -> None:
    b = Breaker("x", BreakerSpec(failures=1, cooldown_s=0.02))
    b.failure()
    time.sleep(0.03)
    assert b.allow()
    b.failure()
    assert b.state == OPEN
    assert not b.allow()


def test_lost_probe_frees_the_next_after_cooldown() -> None:
    b = Breaker("x", BreakerSpec(failures=1, cooldown_s=0.02))
    b.failure()
    time.sleep(0.03)
    assert b.allow()  # a probe whose outcome never comes (its client left)
    assert not b.allow()
    time.sleep(0.03)
    assert b.allow()


def test_error_rate_window() -> None:
    b = Breaker("x", BreakerSpec(failures=100, error_rate=0.5, min_requests=10, window_s=30))
    for _ in range(6):
        b.success()
    for _ in range(3):
        b.failure()
        b.success()  # never 100 in a row
    assert b.state == CLOSED  # 3 of 12
    for _ in range(5):
        b.failure()
    assert b.state == CLOSED  # 8 of 17
    b.failure()
    assert b.state == OPEN  # 9 of 18
    assert "error rate" in b.reason


def test_successes_reset_the_run() -> None:
    b = Breaker("x", BreakerSpec(failures=2, min_requests=1000))
    for _ in range(10):
        b.failure()
        b.success()
    assert b.state == CLOSED


def _cfg(**backend: object) -> dict:
    return {"backends": [{"name": "a", "base_url": "http://127.0.0.1:1/v1", "models": [{"id": "m", "tier": "t"}],
                          **backend}]}


def test_config_keys() -> None:
    c = parse(_cfg(breaker={"failures": 5, "error_rate": 0.25, "window_s": 60, "min_requests": 20,
                            "cooldown_s": 3}, queue_ms=10, health={"probe": "ollama", "interval_s": 5}))
    b = c.backends[0]
    assert b.breaker == BreakerSpec(failures=5, error_rate=0.25, window_s=60, min_requests=20, cooldown_s=3)
    assert b.queue_ms == 10
    assert b.health.probe == "ollama"
    assert b.health.interval_s == 5
    assert b.health.check_models is None  # auto: local backends only
    assert c.routing.spill is True
    assert "missing_model" not in c.routing.promotion.on


@pytest.mark.parametrize(("backend", "path"), [
    ({"breaker": {"failure": 3}}, "backends[0].breaker.failure: unknown key"),
    ({"breaker": {"error_rate": 2}}, "backends[0].breaker.error_rate: must be between 0 and 1"),
    ({"breaker": {"failures": 0}}, "backends[0].breaker.failures: must be >= 1"),
    ({"queue_ms": -1}, "backends[0].queue_ms: must be >= 0"),
    ({"health": {"probe": "tcp"}}, "backends[0].health.probe: expected one of"),
    ({"health": {"interval": 3}}, "backends[0].health.interval: unknown key"),
])
def test_config_errors_name_the_key(backend: dict, path: str) -> None:
    with pytest.raises(ConfigError, match=path.replace("[", r"\[").replace("]", r"\]")):
        parse(_cfg(**backend))


def test_routing_spill_and_missing_model_trigger() -> None:
    c = parse({**_cfg(), "routing": {"spill": False, "promotion": {"on": ["error", "missing_model"]}}})
    assert c.routing.spill is False
    assert c.routing.promotion.on == frozenset({"error", "missing_model"})
    with pytest.raises(ConfigError, match=r"routing\.spill: expected true or false"):
        parse({**_cfg(), "routing": {"spill": "maybe"}})


@pytest.mark.parametrize(("config", "path"), [
    ({"backends": [{"timeouts": {"first_token_s": 1}}]}, "backends[0].timeouts.first_token_s: unknown key"),
    ({"backends": [{"timeouts": {"idle_s": 0}}]}, "backends[0].timeouts.idle_s: must be >= 0.001"),
    ({"backends": [{"health": {"check_models": "maybe"}}]}, "backends[0].health.check_models: expected true or false"),
    ({"backends": [{"max_concurrency": 0}]}, "backends[0].max_concurrency: must be >= 1"),
    ({"backends": [{"queue": 10}]}, "backends[0].queue: unknown key"),
    ({"routing": {"spil": True}}, "routing.spil: unknown key"),
    ({"routing": {"promotion": {"first_token": 100}}}, "routing.promotion.first_token: unknown key"),
    ({"routing": {"promotion": {"on": ["missing"]}}}, "routing.promotion.on[0]: expected one of"),
    ({"server": {"shutdown_grace": 5}}, "server.shutdown_grace: unknown key"),
    ({"server": {"shutdown_grace_s": -1}}, "server.shutdown_grace_s: must be >= 0"),
])
def test_resilience_keys_are_checked(config: dict, path: str) -> None:
    """Every resilience key the code reads is validated; a misspelt one is refused, never ignored."""
    cfg = _cfg()
    for section, value in config.items():
        if section == "backends":
            cfg["backends"][0].update(value[0])
        else:
            cfg[section] = value
    with pytest.raises(ConfigError, match=path.replace("[", r"\[").replace("]", r"\]")):
        parse(cfg)
