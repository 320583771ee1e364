"""`/metrics` after real traffic (JSON, streams, promotions, errors), parsed by prometheus-client's parser."""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from backends.simulated import Behavior
from router.config import parse
from router.exchange import Candidate, Exchange
from router.observe.metrics import OVERHEAD_BUCKETS, REQUEST_LABELS, Metrics
from router.server import RouterService
from tests.conftest import CLOUD_MODELS, LOCAL_MODELS, Stack

MSG = [{"role": "user", "content": "hello there"}]
FAMILIES = {
    "ai_router_requests": "counter",
    "ai_router_request_duration_seconds": "histogram",
    "ai_router_time_to_first_token_seconds": "histogram",
    "ai_router_overhead_seconds": "histogram",
    "ai_router_tokens": "counter",
    "ai_router_cost_usd": "counter",
    "ai_router_errors": "counter",
    "ai_router_upstream_errors": "counter",
    "ai_router_promotions": "counter",
    "ai_router_difficulty": "histogram",
    "ai_router_breaker_state": "gauge",
    "ai_router_backend_in_flight": "gauge",
    "ai_router_backend_queued": "gauge",
    "ai_router_build_info": "gauge",
}


def scrape(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = httpx.get(url + "/metrics", headers=headers or {}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def value(fams: dict[str, Any], sample: str, **labels: str) -> float:
    """Sum of the samples named `sample` whose labels include `labels`."""
    family = sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum").removesuffix("_bucket")
    fam = fams.get(family)
    if fam is None:
        return 0.0
    return sum(s.value for s in fam.samples
               if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))


def post(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", content=orjson.dumps(body),
                      headers={"content-type": "application/json"}, timeout=30)


def test_families_and_labels_after_real_traffic(live: Stack) -> None:
    before = scrape(live.url)
    assert post(live.url, {"model": "auto", "messages": MSG}).status_code == 200
    with httpx.stream("POST", live.url + "/v1/chat/completions", timeout=30,
                      content=orjson.dumps({"model": "auto", "messages": MSG, "stream": True}),
                      headers={"content-type": "application/json"}) as r:
        assert r.status_code == 200
        assert b"[DONE]" in r.read()
    cloud = post(live.url, {"model": "gpt-5-mini", "messages": MSG})
    assert cloud.status_code == 200
    live.local.behavior = Behavior(fail_status=500, fail_times=1)  # first attempt fails: promotion
    promoted = post(live.url, {"model": "auto", "messages": MSG})
    assert promoted.status_code == 200
    assert promoted.headers["x-router-attempts"] == "2"
    live.local.behavior = Behavior(fail_status=500)
    live.cloud.behavior = Behavior(fail_status=500)
    assert post(live.url, {"model": "auto", "messages": MSG}).status_code == 502
    bad = httpx.post(live.url + "/v1/chat/completions", content=b"{nope", timeout=10)
    assert bad.status_code == 400
    after = scrape(live.url)

    for name, typ in FAMILIES.items():
        assert name in after, f"{name} missing from /metrics"
        assert after[name].type == typ, (name, after[name].type)
    catalog = set(LOCAL_MODELS) | set(CLOUD_MODELS) | {""}
    seen = {tuple(sorted(s.labels.items())): s.value for s in before["ai_router_requests"].samples}
    ours = [s for s in after["ai_router_requests"].samples if s.value != seen.get(tuple(sorted(s.labels.items())))]
    assert ours
    for s in ours:  # the series this test's requests moved (other stacks in this process have their own)
        assert set(s.labels) == set(REQUEST_LABELS)
        assert s.labels["model"] in catalog  # model labels only from the catalog
        assert s.labels["backend"] in {"local", "cloud", ""}
    for fam in after.values():
        for s in fam.samples:
            assert "request_id" not in s.labels
            assert not any("hello" in str(v) for v in s.labels.values())

    def delta(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    assert delta("ai_router_requests_total", status="200") == 4
    assert delta("ai_router_requests_total", status="200", backend="cloud", model="gpt-5-mini") == 1
    assert delta("ai_router_requests_total", status="502") == 1
    assert delta("ai_router_requests_total", status="400", endpoint="chat") == 1
    assert delta("ai_router_errors_total", code="invalid_json") == 1
    assert delta("ai_router_errors_total", code="upstream_error") == 1
    assert delta("ai_router_promotions_total", reason="error", from_tier="local-small") >= 1
    assert delta("ai_router_upstream_errors_total", backend="local", kind="error") >= 2
    assert delta("ai_router_upstream_errors_total", backend="cloud", kind="error") >= 1
    assert delta("ai_router_time_to_first_token_seconds_count", tier="local-small") == 1  # the stream only
    assert delta("ai_router_request_duration_seconds_count", endpoint="chat") == 5
    assert delta("ai_router_overhead_seconds_count", endpoint="chat") == 5
    assert delta("ai_router_tokens_total", type="input") > 0
    assert delta("ai_router_tokens_total", type="output") > 0
    assert delta("ai_router_cost_usd_total", model="gpt-5-mini") > 0
    # savings baseline: every answer priced at the highest tier (local answers cost 0, so all of it is saved)
    assert delta("ai_router_baseline_cost_usd_total", model="qwen3:8b") > 0
    assert delta("ai_router_baseline_cost_usd_total") > delta("ai_router_cost_usd_total")
    assert delta("ai_router_difficulty_count", task="chat") >= 4
    assert value(after, "ai_router_breaker_state", backend="local", state="closed") + \
        value(after, "ai_router_breaker_state", backend="local", state="open") == 1
    assert value(after, "ai_router_build_info") == 1


def test_breaker_gauge_follows_backend_health(live: Stack) -> None:
    live.local.behavior = Behavior(fail_status=500)
    live.cloud.behavior = Behavior(fail_status=500)
    for _ in range(3):
        post(live.url, {"model": "qwen3:8b", "messages": MSG})
    fams = scrape(live.url)
    assert value(fams, "ai_router_breaker_state", backend="local", state="open") == 1
    assert value(fams, "ai_router_breaker_state", backend="local", state="closed") == 0


def test_label_children_are_cached() -> None:
    """One kind of request makes its label children once; repeats only increment them."""
    cfg = parse({"backends": [{"name": "b", "base_url": "http://127.0.0.1:9/v1",
                               "models": [{"id": "m", "tier": "t"}]}]})
    svc = RouterService(cfg, metrics=Metrics(CollectorRegistry()))
    m = svc.observer.metrics
    assert m is not None
    for _ in range(3):
        ex = Exchange("r", "chat", {"model": "m", "messages": []}, None, {})
        ex.target = Candidate(cfg.backends[0].models[0], svc.backends["b"], "t")
        ex.status = 200
        svc.observer.finish(ex)
    assert len(m._series) == 1
    (fam,) = (f for f in text_string_to_metric_families(m.render().decode()) if f.name == "ai_router_requests")
    (sample,) = fam.samples
    assert sample.value == 3
    assert sample.labels == {"endpoint": "chat", "tenant": "default", "task": "", "tier": "t", "model": "m",
                             "backend": "b", "location": "cloud", "status": "200"}


def test_gathered_numbers_match_prometheus_client_own_updates() -> None:
    """The request path adds to plain numbers, flushed before each read: the exposition is exactly what
    prometheus-client's own `observe`/`inc` would give (bucket edges included), at every read."""
    from prometheus_client import Histogram

    cfg = parse({"backends": [{"name": "b", "base_url": "http://127.0.0.1:9/v1",
                               "models": [{"id": "m", "tier": "t", "price": {"input": 1, "output": 2}}]}]})
    svc = RouterService(cfg, metrics=Metrics(CollectorRegistry()))
    m = svc.observer.metrics
    assert m is not None
    ref = Histogram("ref", "reference", buckets=OVERHEAD_BUCKETS, registry=CollectorRegistry())
    overheads = [0.0, 0.0001, 0.00011, 0.0005, 0.003, 0.1, 0.5, 7.0]  # on bounds, between, past the last
    for read in (False, True):  # a read between two batches: nothing counted twice
        for i, o in enumerate(overheads):
            ex = Exchange("r", "chat", {"model": "m", "messages": []}, None, {})
            ex.target = Candidate(cfg.backends[0].models[0], svc.backends["b"], "t")
            ex.status = 200
            ex.overhead_s = o
            ex.usage = {"prompt_tokens": 10 + i, "completion_tokens": i}
            ex.cost_usd = 0.001
            svc.observer.finish(ex)
            ref.observe(o)
        if read:
            continue
        first = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
        assert value(first, "ai_router_overhead_seconds_count") == len(overheads)
    fams = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    want = {s.labels["le"]: s.value for s in next(iter(ref.collect())).samples if s.name == "ref_bucket"}
    got = {s.labels["le"]: s.value for s in fams["ai_router_overhead_seconds"].samples
           if s.name == "ai_router_overhead_seconds_bucket"}
    assert got == want
    assert value(fams, "ai_router_overhead_seconds_sum") == pytest.approx(2 * sum(overheads))
    assert value(fams, "ai_router_requests_total") == 2 * len(overheads)
    assert value(fams, "ai_router_tokens_total", type="input") == 2 * sum(10 + i for i in range(len(overheads)))
    assert value(fams, "ai_router_tokens_total", type="output") == 2 * sum(range(len(overheads)))
    assert value(fams, "ai_router_cost_usd_total") == pytest.approx(2 * len(overheads) * 0.001)
    assert value(fams, "ai_router_duration_seconds_count") == 0  # (no such family: a typo would pass silently)
    assert value(fams, "ai_router_request_duration_seconds_count") == 2 * len(overheads)


def test_metrics_off() -> None:
    cfg = parse({"metrics": {"enabled": False},
                 "backends": [{"name": "b", "base_url": "http://127.0.0.1:9/v1", "models": [{"id": "m"}]}]})
    assert RouterService(cfg).observer.metrics is None


def test_spill_overs_and_cache_results_after_real_traffic() -> None:
    """A saturated backend's spill-over is counted by reason (not as a promotion), and every cache result."""
    from tests.test_resilience import ADMIN_ENV, Holder, resilient_config

    def cfg(local: str, cloud: str) -> dict[str, Any]:
        c = resilient_config(local, cloud)
        c["cache"] = {"ttl_s": 60}
        return c

    s = Stack(cfg).start()
    admin = {"authorization": f"Bearer {os.environ[ADMIN_ENV]}"}
    try:
        before = scrape(s.url, admin)
        with Holder(s):  # its own stream is a cache bypass too
            spilled = post(s.url, {"model": "tier:local-small", "messages": MSG})
            assert spilled.headers["x-router-spilled"] == "cloud-mini"
        det = {"model": "gpt-5-mini", "messages": MSG, "temperature": 0}
        assert post(s.url, det).headers["x-router-cache"] == "miss"
        deadline = time.monotonic() + 10
        while (hit := post(s.url, det)).headers["x-router-cache"] != "hit":  # the store is written behind
            assert time.monotonic() < deadline, "the answer was never cached"
            time.sleep(0.05)
        assert hit.status_code == 200
        after = scrape(s.url, admin)
    finally:
        s.stop()

    def delta(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    assert after["ai_router_spills"].type == "counter"
    assert delta("ai_router_spills_total", backend="local", reason="saturated") == 1
    assert delta("ai_router_promotions_total", reason="saturated") == 0  # a spill is not a promotion
    assert after["ai_router_cache_requests"].type == "counter"
    assert delta("ai_router_cache_requests_total", result="bypass", tenant="default") == 2
    assert delta("ai_router_cache_requests_total", result="hit") == 1
    assert delta("ai_router_cache_requests_total", result="miss") >= 1
