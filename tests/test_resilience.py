"""Capacity and spill-over, readiness, breakers and health checks, missing models: over real sockets."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from router.observe.accesslog import AccessLog
from tests.conftest import Stack, make_config, unused_port

MSG = [{"role": "user", "content": "hello there"}]
ADMIN_ENV = "AI_ROUTER_TEST_RESILIENCE_ADMIN"
os.environ.setdefault(ADMIN_ENV, "admin-key-for-readyz")


def resilient_config(local: str, cloud: str, **routing: Any) -> dict[str, Any]:
    cfg = make_config(local, cloud)
    lb, cb = cfg["backends"]
    lb.update(max_concurrency=1, queue_ms=30, health={"interval_s": 0.2, "timeout_s": 1},
              breaker={"failures": 2, "cooldown_s": 0.5})
    cb["health"] = {"interval_s": 0.2, "timeout_s": 1}
    cfg["backends"].append({
        "name": "nokey", "base_url": cloud, "api_key_env": "AI_ROUTER_TEST_UNSET_KEY",
        "models": [{"id": "gpt-nokey", "tier": "cloud-high", "context": 400000, "price": {"input": 9, "output": 9}}],
    })
    cfg["routing"]["promotion"]["on"].append("missing_model")
    cfg["routing"].update(routing)
    cfg["auth"] = {"admin_key_env": ADMIN_ENV, "open": True}  # /readyz details are for the operator
    cfg["pipeline"] = ["tests.stages_for_tests:LocalOnly", *cfg["pipeline"]]
    return cfg


@pytest.fixture(scope="module")
def rstack() -> Iterator[Stack]:
    s = Stack(resilient_config).start()
    yield s
    s.stop()


@pytest.fixture
def res(rstack: Stack) -> Iterator[Stack]:
    rstack.reset()
    rstack.local.max_in_flight = 0
    yield rstack
    rstack.reset()


def post(s: Stack, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(timeout=30) as c:
        return c.post(s.url + "/v1/chat/completions", json=body, headers=headers or {})


def readyz(s: Stack) -> tuple[int, dict[str, Any]]:
    with httpx.Client(timeout=10) as c:
        r = c.get(s.url + "/readyz", headers={"authorization": f"Bearer {os.environ[ADMIN_ENV]}"})
    return r.status_code, r.json()


def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


class Holder:
    """A slow stream on the local backend, holding its only slot while the test runs.

    The stream lasts `seconds` unless the test ends first: on exit the rest of its tokens flow at once, so
    a long default hold costs no test time and a loaded machine cannot end the hold before the test's
    request arrives."""

    def __init__(self, s: Stack, seconds: float = 3.0) -> None:
        s.local.behavior.token_delay_s = seconds / 10
        s.local.behavior.reply_tokens = 10
        self.s = s
        self.result: httpx.Response | None = None
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        self.result = post(self.s, {"model": "qwen3:8b", "messages": MSG, "stream": True})

    def __enter__(self) -> Holder:
        self.thread.start()
        wait_for(lambda: self.s.local.in_flight == 1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.s.local.behavior.token_delay_s = 0  # the simulated stream reads the delay before each token
        self.thread.join(10)
        assert self.result is not None
        assert self.result.status_code == 200


def local_backend(s: Stack) -> Any:
    assert s.service is not None
    return s.service.backends["local"]


# ---------------------------------------------------------------- capacity and spill-over


def test_saturated_local_spills_to_the_next_tier(res: Stack) -> None:
    with Holder(res):
        r = post(res, {"model": "tier:local-small", "messages": MSG})
        assert r.status_code == 200, r.text
        assert r.headers["x-router-spilled"] == "cloud-mini"
        assert r.headers["x-router-backend"] == "cloud"
        assert 25 <= float(r.headers["x-router-queue-ms"]) < 1000  # queue_ms (30), once
        assert r.headers["x-router-attempts"] == "2"  # local-small saturated; local-large on the same server skipped
    assert res.local.max_in_flight == 1  # max_concurrency held
    b = local_backend(res)
    assert b.spills["saturated"] == 1
    assert b.capacity.in_flight == 0


def test_spill_and_queue_time_are_in_the_access_line(res: Stack, tmp_path: Path) -> None:
    assert res.service is not None
    obs = res.service.observer
    old = obs.access
    path = tmp_path / "access.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    obs.access = AccessLog(True, "json", fd=fd)
    try:
        with Holder(res):
            r = post(res, {"model": "tier:local-small", "messages": MSG})
        obs.access.flush()
    finally:
        obs.access = old
        os.close(fd)
    rid = r.headers["x-request-id"]
    rec, = (line for line in map(orjson.loads, path.read_bytes().splitlines()) if line["request_id"] == rid)
    assert rec["spilled"] == "cloud-mini"
    assert 25 <= rec["queue_ms"] < 1000
    assert rec["attempts"][0]["outcome"] == "saturated"
    assert rec["backend"] == "cloud"


def test_spill_does_not_use_promotion_steps(res: Stack) -> None:
    res.cloud.behavior.fail_status = 500
    res.cloud.behavior.fail_times = 1  # cloud-mini fails once: promotion to cloud-code is still allowed
    with Holder(res):
        r = post(res, {"model": "tier:local-small", "messages": MSG})
    assert r.status_code == 200, r.text
    assert r.headers["x-router-tier"] == "cloud-code"
    assert r.headers["x-router-spilled"] == "cloud-code"


def test_local_only_never_spills_to_cloud(res: Stack) -> None:
    with Holder(res, seconds=1.6):
        t0 = time.monotonic()
        r = post(res, {"model": "tier:local-small", "messages": MSG}, headers={"x-test-local-only": "1"})
        waited = time.monotonic() - t0
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "no_backend_available"
    assert r.headers["retry-after"] == "1"
    assert waited >= 0.9  # the last local candidate waits its connect_s (1 s) for a slot, then fails closed
    assert not res.cloud.requests


def test_local_only_waits_for_a_slot(res: Stack) -> None:
    with Holder(res, seconds=0.4):
        r = post(res, {"model": "tier:local-small", "messages": MSG}, headers={"x-test-local-only": "1"})
    assert r.status_code == 200, r.text
    assert r.headers["x-router-backend"] == "local"
    assert float(r.headers["x-router-queue-ms"]) > 50
    assert "x-router-spilled" not in r.headers
    assert not res.cloud.requests


def test_without_spill_requests_queue_behind_the_backend() -> None:
    s = Stack(lambda local, cloud: resilient_config(local, cloud, spill=False)).start()
    try:
        with Holder(s, seconds=0.4):
            r = post(s, {"model": "tier:local-small", "messages": MSG})
        assert r.status_code == 200, r.text
        assert r.headers["x-router-backend"] == "local"
        assert float(r.headers["x-router-queue-ms"]) > 50
        assert "x-router-spilled" not in r.headers
    finally:
        s.stop()


def test_slot_freed_after_each_kind_of_end(res: Stack) -> None:
    b = local_backend(res)
    assert post(res, {"model": "qwen3:8b", "messages": MSG}).status_code == 200
    assert post(res, {"model": "qwen3:8b", "messages": MSG, "stream": True}).status_code == 200
    res.local.behavior.fail_status = 400
    assert post(res, {"model": "qwen3:8b", "messages": MSG}).status_code == 400
    res.local.behavior.fail_status = 500
    assert post(res, {"model": "qwen3:8b", "messages": MSG}).status_code == 502
    res.local.behavior.fail_status = None
    res.local.behavior.break_after_tokens = 3
    r = post(res, {"model": "qwen3:8b", "messages": MSG, "stream": True})
    assert b'"upstream_error"' in r.content
    wait_for(lambda: b.capacity.in_flight == 0)
    assert b.capacity.queued == 0


# ---------------------------------------------------------------- readiness, keys, breakers, health checks


def test_missing_key_is_not_ready_and_never_tried(res: Stack) -> None:
    status, body = readyz(res)
    assert status == 200
    assert set(body["backends"]) == {"local", "cloud"}
    assert body["not_ready"] == {"nokey": "API key variable $AI_ROUTER_TEST_UNSET_KEY is not set"}
    r = post(res, {"model": "gpt-nokey", "messages": MSG})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "no_backend_available"
    assert "AI_ROUTER_TEST_UNSET_KEY" in r.json()["error"]["message"]
    assert not res.cloud.requests


def test_open_breaker_is_skipped_then_probed_closed(res: Stack) -> None:
    res.local.behavior.fail_status = 500
    for _ in range(2):  # breaker.failures: 2
        assert post(res, {"model": "qwen3:8b", "messages": MSG}).status_code == 502
    b = local_backend(res)
    assert b.breaker.state == "open"
    n = len(res.local.requests)
    r = post(res, {"model": "tier:local-small", "messages": MSG})
    assert r.status_code == 200
    assert r.headers["x-router-backend"] == "cloud"  # routing skipped the open backend
    assert len(res.local.requests) == n
    status, body = readyz(res)
    assert status == 200
    assert "circuit open" in body["not_ready"]["local"]
    res.local.behavior.fail_status = None  # the upstream recovers; after cooldown_s one request probes it
    wait_for(lambda: b.breaker.available, timeout=3)
    r = post(res, {"model": "qwen3:8b", "messages": MSG})
    assert r.status_code == 200
    assert b.breaker.state == "closed"


def test_health_check_lists_missing_models_and_recovers(res: Stack) -> None:
    res.local.behavior.missing_models = {"qwen3:14b"}
    b = local_backend(res)
    wait_for(lambda: not b.model_available("qwen3:14b"))
    status, body = readyz(res)
    assert status == 200
    assert body["missing_models"] == {"local": ["qwen3:14b"]}
    r = post(res, {"model": "qwen3:14b", "messages": MSG})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"
    assert "qwen3:14b" in r.json()["error"]["message"]
    res.local.behavior.missing_models = set()
    wait_for(lambda: b.model_available("qwen3:14b"))
    assert post(res, {"model": "qwen3:14b", "messages": MSG}).status_code == 200


def test_unreachable_backend_is_not_ready_and_skipped() -> None:
    dead = f"http://127.0.0.1:{unused_port()}/v1"
    s = Stack(lambda local, cloud: resilient_config(dead, cloud)).start()
    try:
        wait_for(lambda: s.service is not None and s.service.backends["local"].probe_error is not None)
        status, body = readyz(s)
        assert status == 200
        assert body["not_ready"]["local"].startswith("health check failed: cannot connect to 127.0.0.1:")
        r = post(s, {"model": "tier:local-small", "messages": MSG})
        assert r.status_code == 200
        assert r.headers["x-router-attempts"] == "1"  # straight to cloud
        r = post(s, {"model": "qwen3:8b", "messages": MSG})  # nowhere else to go: tried as a last resort
        assert r.status_code == 502
        assert "unreachable" in r.json()["error"]["message"]
    finally:
        s.stop()


# ---------------------------------------------------------------- missing models (upstream 404)


def test_missing_model_named_directly_is_404(live: Stack, caplog: pytest.LogCaptureFixture) -> None:
    live.local.behavior.missing_models = {"qwen3:8b"}
    r = post(live, {"model": "qwen3:8b", "messages": MSG})
    assert r.status_code == 404, r.text
    err = r.json()["error"]
    assert err["code"] == "model_not_found"
    assert "qwen3:8b" in err["message"]
    assert "local" in err["message"]
    assert any("'qwen3:8b' is unavailable" in rec.getMessage() for rec in caplog.records)


def test_missing_model_under_auto_is_not_promoted_by_default(live: Stack) -> None:
    live.local.behavior.missing_models = {"qwen3:8b"}
    r = post(live, {"model": "tier:local-small", "messages": MSG})
    assert r.status_code == 404, r.text  # promotion.on lacks missing_model: no silent move to paid cloud
    assert r.json()["error"]["code"] == "model_not_found"
    assert not live.cloud.requests
    n = len(live.local.requests)  # 1, or 0 when a health check saw it missing first
    r = post(live, {"model": "tier:local-small", "messages": MSG})  # known missing now: not even sent
    assert r.status_code == 404
    assert len(live.local.requests) == n <= 1


def test_missing_model_promotes_when_listed(res: Stack) -> None:
    res.local.behavior.missing_models = {"qwen3:8b"}
    r = post(res, {"model": "tier:local-small", "messages": MSG})
    assert r.status_code == 200, r.text
    assert r.headers["x-router-tier"] == "local-large"
    r = post(res, {"model": "tier:local-small", "messages": MSG})
    assert r.headers["x-router-tier"] == "local-large"
    assert r.headers["x-router-attempts"] == "1"  # known missing: skipped without a call


def test_ollama_detected_and_tags_checked() -> None:
    def config(local: str, cloud: str) -> dict[str, Any]:
        cfg = resilient_config(local, cloud)
        cfg["backends"][0]["health"]["probe"] = "auto"
        return cfg

    s = Stack(config)
    s.local.ollama = True
    s.local.models = ["qwen3:8b", "qwen3:14b", "nomic-embed-text"]
    s.local.behavior.missing_models = {"qwen3:14b"}
    s.start()
    try:
        b = s.service.backends["local"]  # type: ignore[union-attr]
        wait_for(lambda: not b.model_available("qwen3:14b"))
        assert b.model_available("nomic-embed-text")  # listed by Ollama as nomic-embed-text:latest
        assert s.service.health.flavor["local"] == "ollama"  # type: ignore[union-attr]
        assert s.local.probes >= 1
        _status, body = readyz(s)
        assert body["missing_models"] == {"local": ["qwen3:14b"]}
    finally:
        s.stop()


def test_readyz_json(res: Stack) -> None:
    status, body = readyz(res)
    assert status == 200
    assert orjson.loads(orjson.dumps(body))["status"] == "ready"
