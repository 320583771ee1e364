"""The dashboard over HTTP: the page and its files under a strict CSP, `/dashboard/stats` after traffic, and
who may read the stats and `/metrics` when keys are configured."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from backends.simulated import Behavior
from router.observe.stats import quantile
from tests.conftest import Stack, make_config

MSG = [{"role": "user", "content": "hello there"}]
ADMIN = "admin-key-for-dashboard-tests"


def test_page_is_self_contained_under_a_strict_csp(live: Stack) -> None:
    r = httpx.get(live.url + "/dashboard")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    html = r.text
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None  # no inline script
    assert "<style" not in html
    assert " style=" not in html
    assert "http://" not in html
    assert "https://" not in html
    for name, ctype in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        assert f'"dashboard/{name}"' in html
        f = httpx.get(f"{live.url}/dashboard/{name}")
        assert f.status_code == 200
        assert f.headers["content-type"].startswith(ctype)
        assert "http://" not in f.text
        assert "https://" not in f.text
    assert httpx.get(live.url + "/dashboard/nope.js").status_code == 404


def test_stats_after_traffic(live: Stack) -> None:
    with httpx.Client(timeout=30) as c:
        c.get(live.url + "/dashboard/stats")  # a first point of history
        for _ in range(3):
            assert c.post(live.url + "/v1/chat/completions", json={"model": "auto", "messages": MSG}).status_code == 200
        assert c.post(live.url + "/v1/chat/completions",
                      json={"model": "gpt-5-mini", "messages": MSG, "stream": True}).status_code == 200
        live.local.behavior = Behavior(fail_status=500, fail_times=1)
        assert c.post(live.url + "/v1/chat/completions", json={"model": "auto", "messages": MSG}).status_code == 200
        time.sleep(0.6)
        d = c.get(live.url + "/dashboard/stats").json()
    assert d["totals"]["requests"] >= 5
    assert d["totals"]["local"] >= 4
    assert d["totals"]["cloud"] >= 1
    assert d["totals"]["promotions"] >= 1
    assert d["totals"]["cost_usd"] > 0
    assert len(d["series"]["t"]) >= 1
    assert max(d["series"]["rps"]) > 0
    assert any(v is not None and 0 < v < 1 for v in d["series"]["local_share"])
    tiers = {t["tier"]: t for t in d["tiers"]}
    assert tiers["local-small"]["p50_s"] > 0
    assert tiers["local-small"]["p95_s"] >= tiers["local-small"]["p50_s"]
    assert tiers["cloud-mini"]["ttft_p50_s"] > 0
    assert {b["backend"] for b in d["backends"]} == {"local", "cloud"}
    assert all(b["state"] in ("closed", "open", "half_open") for b in d["backends"])
    last = d["decisions"][0]
    assert last["tier"] == "local-large"
    assert last["attempts"] == ["error", "ok"]
    assert last["reasons"]
    assert "hello" not in str(d["decisions"])  # decisions never carry content


def test_quantile_interpolates_like_prometheus() -> None:
    b = {0.1: 10.0, 0.5: 20.0, 1.0: 20.0, float("inf"): 20.0}
    assert quantile(0.5, b) == pytest.approx(0.1)
    assert quantile(0.75, b) == pytest.approx(0.3)
    assert quantile(0.5, {}) is None
    assert quantile(0.99, {0.1: 0.0, float("inf"): 5.0}) == 0.1


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setenv("AI_ROUTER_ADMIN_KEY", ADMIN)
    monkeypatch.setenv("DASH_CLIENT_KEY", "client-key-1")
    stack = Stack(lambda lu, cu: make_config(
        lu, cu, auth={"keys": [{"name": "app", "key_env": "DASH_CLIENT_KEY", "tenant": "acme/app"}]},
        tenants=[{"match": "acme/*", "budget": {"daily_usd": 5, "monthly_usd": 50}}])).start()
    yield stack
    stack.stop()


def test_keys_configured_means_admin_key(keyed: Stack) -> None:
    with httpx.Client(timeout=10) as c:
        assert c.get(keyed.url + "/dashboard").status_code == 200  # the page carries no data
        for path in ("/dashboard/stats", "/metrics"):
            r = c.get(keyed.url + path)
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == "Bearer"
            assert c.get(keyed.url + path, headers={"authorization": "Bearer client-key-1"}).status_code == 401
            assert c.get(keyed.url + path, headers={"authorization": f"Bearer {ADMIN}"}).status_code == 200


def test_spend_against_budget_from_the_store(keyed: Stack) -> None:
    admin = {"authorization": f"Bearer {ADMIN}"}
    with httpx.Client(timeout=10) as c:
        for model in ("gpt-5-mini", "auto"):
            r = c.post(keyed.url + "/v1/chat/completions", json={"model": model, "messages": MSG},
                       headers={"authorization": "Bearer client-key-1"})
            assert r.status_code == 200
        deadline = time.time() + 5
        while True:  # the ledger is written behind the answer
            tenants = {t["tenant"]: t for t in c.get(keyed.url + "/dashboard/stats", headers=admin).json()["tenants"]}
            if "acme/app" in tenants and tenants["acme/app"]["requests"] >= 2:
                break
            assert time.time() < deadline, tenants
            time.sleep(0.1)
        t = tenants["acme/app"]
        assert t["spend_usd"] > 0
        assert t["budget_usd"] == 5
        assert t["budget_window"] == "day"
        assert t["savings_usd"] > 0
        assert keyed.service is not None
        keyed.run(keyed.service.observer.sample_spend())
        text = c.get(keyed.url + "/metrics", headers=admin).text
    samples = {(s.name, s.labels.get("tenant"), s.labels.get("window")): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("ai_router_tenant_spend_usd", "acme/app", "day")] == pytest.approx(t["spend_usd"])
    assert samples[("ai_router_budget_remaining_usd", "acme/app", "day")] == pytest.approx(5 - t["spend_usd"])
    assert samples[("ai_router_budget_remaining_usd", "acme/app", "month")] == pytest.approx(50 - t["spend_usd"])


def test_metrics_public_opens_metrics_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_ROUTER_ADMIN_KEY", ADMIN)
    stack = Stack(lambda lu, cu: make_config(lu, cu, metrics={"public": True})).start()
    try:
        assert httpx.get(stack.url + "/metrics").status_code == 200
        assert httpx.get(stack.url + "/dashboard/stats").status_code == 401
    finally:
        stack.stop()


def test_metrics_off_means_no_endpoints() -> None:
    stack = Stack(lambda lu, cu: make_config(lu, cu, metrics={"enabled": False})).start()
    try:
        for path in ("/metrics", "/dashboard", "/dashboard/stats"):
            assert httpx.get(stack.url + path).status_code == 404
        r = httpx.post(stack.url + "/v1/chat/completions", json={"model": "auto", "messages": MSG}, timeout=10)
        assert r.status_code == 200
    finally:
        stack.stop()
