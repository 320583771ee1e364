"""`/metrics` under `ai-router serve --workers 2` (a real subprocess): every scrape merges both workers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import yaml
from prometheus_client.parser import text_string_to_metric_families

from backends.simulated import Behavior
from tests.conftest import Stack, make_config, unused_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
MSG = [{"role": "user", "content": "hi"}]


def _total(text: str, sample: str, **labels: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))


def _worker_pids(mdir: Path) -> set[str]:
    names = os.listdir(mdir) if mdir.is_dir() else []
    return {m.group(1) for f in names if (m := re.match(r"worker-(\d+)\.json$", f))}


def _wait_for(ok: Callable[[], bool], what: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not ok():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_two_workers_one_view(live: Stack, tmp_path: Path) -> None:
    cfg = make_config(live.local_url, live.cloud_url)
    cfg["server"] = {"workers": 2, "shutdown_grace_s": 5}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    mdir = tmp_path / "metrics"
    port = unused_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "router", "serve", "--config", str(path), "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "AI_ROUTER_TEST_CLOUD_KEY": "k", "AI_ROUTER_METRICS_DIR": str(mdir)},
    )
    base = f"http://127.0.0.1:{port}"
    fresh = httpx.Limits(max_keepalive_connections=0)  # a new connection each time: the kernel spreads them
    try:
        wait_healthy(base)
        _wait_for(lambda: len(_worker_pids(mdir)) == 2, "both workers up and publishing")
        with httpx.Client(timeout=10, limits=fresh) as c:
            for i in range(24):
                body = {"model": "auto", "messages": MSG, "stream": i % 3 == 0}
                assert c.post(base + "/v1/chat/completions", json=body).status_code == 200
            live.local.behavior = Behavior(fail_status=503, fail_times=2)  # two promotions
            for _ in range(2):
                assert c.post(base + "/v1/chat/completions", json={"model": "auto", "messages": MSG}).status_code == 200
            # every worker publishes its snapshot once a second: wait (bounded) until a scrape sees all of it
            _wait_for(lambda: _total(c.get(base + "/metrics").text, "ai_router_requests_total") == 26,
                      "a scrape that counts all 26 requests")
            time.sleep(1.1)  # one more publish period, so both workers' snapshots are past the last request
            scrapes = [c.get(base + "/metrics").text for _ in range(8)]
        pids = _worker_pids(mdir)
        assert len(pids) == 2, os.listdir(mdir)
        for pid in pids:  # each worker served part of the traffic, and the scrapes still saw it all
            fams = orjson.loads((mdir / f"worker-{pid}.json").read_bytes())
            served = sum(v for name, _, _, samples in fams if name == "ai_router_requests"
                         for sname, _, v in samples if sname == "ai_router_requests_total")
            assert 0 < served < 26
        for text in scrapes:  # whichever worker answered, the same totals
            assert _total(text, "ai_router_requests_total", status="200") == 26
            assert _total(text, "ai_router_time_to_first_token_seconds_count") == 8
            assert _total(text, "ai_router_promotions_total", reason="overload") == 2
            assert _total(text, "ai_router_backend_in_flight", backend="local") == 0
            assert _total(text, "ai_router_breaker_state", backend="local", state="closed") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
