"""Hot reload in process (`POST /admin/reload`): validate, swap atomically, keep unchanged backends' pools,
refuse a bad config while the old one keeps serving, let in-flight requests finish on the config they
started with. SIGHUP and `--workers N` are in tests/test_serve.py."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Stack, make_config

MSG = [{"role": "user", "content": "hello there"}]
ADMIN_ENV = "AI_ROUTER_TEST_RELOAD_ADMIN"
ADMIN = {"authorization": "Bearer reload-admin-key"}
os.environ.setdefault(ADMIN_ENV, "reload-admin-key")


def base(local: str, cloud: str) -> dict[str, Any]:
    cfg = make_config(local, cloud)
    cfg["auth"] = {"admin_key_env": ADMIN_ENV, "open": True}
    for b in cfg["backends"]:
        b["health"] = {"probe": "off"}
    return cfg


@pytest.fixture
def rl(tmp_path: Path) -> Iterator[tuple[Stack, Path]]:
    path = tmp_path / "router.yaml"
    s = Stack(base).start()
    path.write_text(yaml.safe_dump(base(s.local_url, s.cloud_url)))
    assert s.service is not None
    s.service.config.source = str(path)  # as if started with --config FILE
    yield s, path
    s.stop()


def current(s: Stack) -> Any:
    svc = s.service
    while svc.successor is not None:  # type: ignore[union-attr]
        svc = svc.successor  # type: ignore[union-attr]
    return svc


def edit(path: Path, change: Any) -> None:
    cfg = yaml.safe_load(path.read_text())
    change(cfg)
    path.write_text(yaml.safe_dump(cfg))


def reload(s: Stack, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(s.url + "/admin/reload", headers=ADMIN if headers is None else headers, timeout=30)


def chat(s: Stack, model: str, **kw: Any) -> httpx.Response:
    return httpx.post(s.url + "/v1/chat/completions", json={"model": model, "messages": MSG, **kw}, timeout=30)


def test_reload_swaps_and_keeps_unchanged_pools(rl: tuple[Stack, Path]) -> None:
    s, path = rl
    assert chat(s, "qwen3:8b").status_code == 200
    old = current(s)
    local, cloud = old.backends["local"], old.backends["cloud"]
    pool = local.client.pool
    assert pool.idle  # a warm keep-alive connection

    def cheaper(cfg: dict[str, Any]) -> None:
        cfg["backends"][1]["models"][0]["price"] = {"input": 100.0, "output": 100.0}

    edit(path, cheaper)
    r = reload(s)
    assert r.status_code == 200, r.text
    assert r.json()["backends"] == {"kept": ["local"], "started": ["cloud"], "retired": ["cloud"]}
    new = current(s)
    assert new is not old
    assert new.backends["local"] is local  # the same object: its pool, slots and breaker
    assert local.client.pool is pool
    assert new.backends["cloud"] is not cloud
    assert chat(s, "qwen3:8b").status_code == 200
    r = chat(s, "gpt-5-mini")
    assert r.status_code == 200
    assert float(r.headers["x-router-cost-usd"]) > 0.001  # the new price
    deadline = time.monotonic() + 5
    while cloud.client is not None and time.monotonic() < deadline:  # the retired backend is closed
        time.sleep(0.02)
    assert cloud.client is None
    assert local.client is not None


def test_bad_config_is_refused_and_the_old_keeps_serving(rl: tuple[Stack, Path],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    s, path = rl
    old = current(s)

    def broken(cfg: dict[str, Any]) -> None:
        cfg["backends"][0]["models"][0]["price"] = {"input": "lots"}

    edit(path, broken)
    with caplog.at_level(logging.ERROR, logger="ai_router.reload"):
        r = reload(s)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_config"
    assert "backends[0].models[0].price.input: expected a number" in err["message"]
    assert any("reload refused" in rec.getMessage() for rec in caplog.records)
    assert current(s) is old
    assert chat(s, "qwen3:8b").status_code == 200
    path.write_text("backends: [")  # not even YAML
    r = reload(s)
    assert r.status_code == 400
    assert "not valid YAML" in r.json()["error"]["message"]
    assert current(s) is old


def test_reload_needs_the_admin_key(rl: tuple[Stack, Path]) -> None:
    s, _ = rl
    assert reload(s, {}).status_code == 401
    assert reload(s, {"authorization": "Bearer wrong"}).status_code == 401


def test_in_flight_stream_keeps_its_config(rl: tuple[Stack, Path]) -> None:
    s, path = rl
    s.cloud.behavior.token_delay_s = 0.05
    s.cloud.behavior.reply_tokens = 20  # about 1 s
    out: dict[str, httpx.Response] = {}
    t = threading.Thread(target=lambda: out.setdefault("r", chat(s, "gpt-5-mini", stream=True)))
    t.start()
    deadline = time.monotonic() + 5
    while not s.cloud.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    old_cloud = current(s).backends["cloud"]

    def drop_mini(cfg: dict[str, Any]) -> None:  # the model the stream uses is gone from the new config
        cfg["backends"][1]["models"] = [m for m in cfg["backends"][1]["models"] if m["id"] != "gpt-5-mini"]

    edit(path, drop_mini)
    assert reload(s).status_code == 200
    assert chat(s, "gpt-5-mini").status_code == 404  # new requests see the new config at once
    t.join(10)
    r = out["r"]
    assert r.status_code == 200
    assert r.content.rstrip().endswith(b"data: [DONE]")  # the old one finished on the config it started with
    assert r.content.count(b"content") >= 20
    deadline = time.monotonic() + 5
    while old_cloud.client is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert old_cloud.client is None  # retired once its request was done
    assert old_cloud.capacity.in_flight == 0
