"""deploy/: every metric the Grafana dashboard and the Prometheus rules query exists in `/metrics` after traffic."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from backends.simulated import Behavior
from tests.conftest import Stack, make_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
METRIC = re.compile(r"\bai_router_[a-z0-9_]+")
MSG = [{"role": "user", "content": "hello there"}]
KEY = "deploy-test-client-key"


def _grafana_exprs() -> list[str]:
    dash = json.loads((DEPLOY / "grafana/ai-router.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20
    return exprs


def _rule_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus/ai-router-rules.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def test_scrape_config() -> None:
    cfg = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    (job,) = cfg["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"  # the admin key, when keys are configured
    assert "ai-router-rules.yml" in cfg["rule_files"]


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A router whose tenant has a budget and redaction, so those families exist too."""
    monkeypatch.setenv("DEPLOY_TEST_KEY", KEY)
    s = Stack(lambda lu, cu: make_config(
        lu, cu, auth={"keys": [{"name": "app", "key_env": "DEPLOY_TEST_KEY", "tenant": "acme/app"}]},
        metrics={"public": True}, cache={"ttl_s": 60},
        tenants=[{"match": "acme/*", "budget": {"daily_usd": 100},
                  "redact": {"policy": "redact", "apply_to": "cloud"}}])).start()
    yield s
    s.stop()


def test_every_queried_metric_is_exported(live: Stack) -> None:
    with httpx.Client(timeout=30, headers={"authorization": f"Bearer {KEY}"}) as c:
        assert c.post(live.url + "/v1/chat/completions", json={"model": "auto", "messages": MSG}).status_code == 200
        assert c.post(live.url + "/v1/chat/completions",
                      json={"model": "auto", "messages": MSG, "stream": True}).status_code == 200
        live.local.behavior = Behavior(fail_status=500, fail_times=1)
        assert c.post(live.url + "/v1/chat/completions", json={"model": "auto", "messages": MSG}).status_code == 200
        assert c.post(live.url + "/v1/chat/completions", content=b"{bad").status_code == 400
        secret = [{"role": "user", "content": "mail me at jane.doe@example.com about it"}]
        r = c.post(live.url + "/v1/chat/completions", json={"model": "gpt-5-mini", "messages": secret})
        assert r.status_code == 200
        assert live.service is not None
        deadline = time.time() + 5
        while True:  # the ledger is written behind the answers; the tick reads it every 15 s
            live.run(live.service.observer.sample_spend())
            text = c.get(live.url + "/metrics").text
            exported = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
            if "ai_router_budget_remaining_usd" in exported or time.time() > deadline:
                break
            time.sleep(0.1)
    queried = {m for e in _grafana_exprs() + _rule_exprs() for m in METRIC.findall(e)}
    assert queried, "no metric found in the deploy files"
    missing = sorted(queried - exported)
    assert not missing, f"queried but not exported: {missing}"
