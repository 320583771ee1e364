"""Routing over real sockets: the preview agrees with the real call, steering headers, promotion triggers."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Stack, make_config, unused_port, without_health_checks

CASES = {
    "chat": "hey, how's it going?",
    "code": "Fix this Python function:\n```python\ndef add(a, b):\n    return a - b\n```",
    "docs": "Translate into French: 'The meeting has been moved to Thursday afternoon.'",
    "math": "Prove that there are infinitely many prime numbers.",
}


def chat(live: Stack, content: str, path: str = "/v1/chat/completions", **headers: str) -> httpx.Response:
    body = {"model": "auto", "messages": [{"role": "user", "content": content}]}
    with httpx.Client(timeout=30) as c:
        return c.post(live.url + path, json=body, headers=headers)


@pytest.mark.parametrize("task", sorted(CASES))
def test_preview_and_real_call_agree(live: Stack, task: str) -> None:
    preview = chat(live, CASES[task], "/v1/route").json()
    real = chat(live, CASES[task])
    assert real.status_code == 200
    assert preview["task"] == task
    h = real.headers
    assert (h["x-router-model"], h["x-router-backend"], h["x-router-tier"], h["x-router-task"],
            h["x-router-complexity"]) == (preview["model"], preview["backend"], preview["tier"], preview["task"],
                                          preview["complexity"])
    assert preview["reasons"]
    assert isinstance(preview["estimated_cost_usd"], float)
    assert 0.0 <= preview["difficulty"] <= 1.0
    assert h["x-router-difficulty"] == f"{preview['difficulty']:.3f}"


def test_max_tier_header_caps_the_tier(live: Stack) -> None:
    free = chat(live, CASES["math"])
    assert free.headers["x-router-tier"] == "cloud-high"
    capped = chat(live, CASES["math"], **{"x-router-max-tier": "local-large"})
    assert capped.headers["x-router-tier"] == "local-large"
    assert capped.headers["x-router-backend"] == "local"


def test_prefer_cloud_header(live: Stack) -> None:
    assert chat(live, CASES["chat"]).headers["x-router-backend"] == "local"
    r = chat(live, CASES["chat"], **{"x-router-prefer": "cloud"})
    assert r.headers["x-router-backend"] == "cloud"


def test_unknown_max_tier_is_400(live: Stack) -> None:
    r = chat(live, CASES["chat"], **{"x-router-max-tier": "platinum"})
    assert r.status_code == 400
    assert "x-router-max-tier" in r.json()["error"]["message"]


def test_tier_model_routes_within_tier(live: Stack) -> None:
    with httpx.Client() as c:
        r = c.post(live.url + "/v1/chat/completions",
                   json={"model": "tier:cloud-code", "messages": [{"role": "user", "content": "hi"}]})
    assert r.headers["x-router-model"] == "gpt-5-codex"


def test_promotion_on_timeout(live: Stack) -> None:
    live.local.behavior.hang = True  # no answer within first_byte_s (2 s): promoted to the cloud tier
    with httpx.Client(timeout=30) as c:
        r = c.post(live.url + "/v1/chat/completions",
                   json={"model": "tier:local-large", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    assert r.headers["x-router-attempts"] == "2"
    assert r.headers["x-router-tier"] == "cloud-mini"


def test_promotion_on_connection_error() -> None:
    dead = f"http://127.0.0.1:{unused_port()}/v1"
    stack = Stack(lambda local, cloud: without_health_checks(make_config(dead, cloud))).start()
    try:
        with httpx.Client(timeout=30) as c:
            r = c.post(stack.url + "/v1/chat/completions",
                       json={"model": "auto", "messages": [{"role": "user", "content": "hello!"}]})
        assert r.status_code == 200
        assert r.headers["x-router-backend"] == "cloud"
        assert int(r.headers["x-router-attempts"]) >= 2
    finally:
        stack.stop()
