"""The proxy over real sockets: errors, limits, disconnects, promotion, headers, timeouts."""

from __future__ import annotations

import gc
import time

import httpx
import orjson

from router.exchange import Exchange
from tests.conftest import Stack, make_config, stream_then_leave, unused_port, without_health_checks

MSG = [{"role": "user", "content": "hello there"}]


def post(
    live: Stack, body: object, path: str = "/v1/chat/completions", headers: dict[str, str] | None = None
) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    with httpx.Client(timeout=30) as c:
        return c.post(live.url + path, content=content, headers={"content-type": "application/json", **(headers or {})})


def assert_openai_error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["code"] == code
    assert r.headers["x-request-id"]
    return err


def test_invalid_json(live: Stack) -> None:
    assert_openai_error(post(live, b"{not json"), 400, "invalid_json")


def test_body_not_an_object(live: Stack) -> None:
    assert_openai_error(post(live, b"[1,2]"), 400, "invalid_json")


def test_missing_messages(live: Stack) -> None:
    err = assert_openai_error(post(live, {"model": "auto"}), 400, "missing_required_parameter")
    assert err["param"] == "messages"


def test_ill_typed_messages(live: Stack) -> None:
    assert_openai_error(post(live, {"model": "auto", "messages": "hi"}), 400, "invalid_type")
    err = assert_openai_error(post(live, {"model": "auto", "messages": [{"content": "x"}]}), 400,
                              "missing_required_parameter")
    assert err["param"] == "messages[0].role"
    assert_openai_error(post(live, {"model": 5, "messages": MSG}), 400, "invalid_type")
    assert_openai_error(post(live, {"model": "auto", "messages": MSG, "stream": "yes"}), 400, "invalid_type")


def test_body_over_max_body_mb(live: Stack) -> None:
    big = {"model": "auto", "messages": [{"role": "user", "content": "x" * (1024 * 1024 + 10)}]}
    assert_openai_error(post(live, big), 413, "request_too_large")
    assert not live.local.requests
    assert not live.cloud.requests


def test_unknown_model(live: Stack) -> None:
    assert_openai_error(post(live, {"model": "nope", "messages": MSG}), 404, "model_not_found")
    assert_openai_error(post(live, {"model": "tier:nope", "messages": MSG}), 404, "model_not_found")


def test_unknown_path_and_method(live: Stack) -> None:
    with httpx.Client() as c:
        assert_openai_error(c.get(live.url + "/v2/whatever"), 404, "not_found")
        r = c.get(live.url + "/v1/chat/completions")
    assert r.status_code == 405
    assert r.json()["error"]["message"].startswith("Method GET")


def test_request_id_kept(live: Stack) -> None:
    r = post(live, {"model": "qwen3:8b", "messages": MSG}, headers={"x-request-id": "abc-123"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "abc-123"
    assert live.local.requests[-1]["headers"]["x-request-id"] == "abc-123"


def test_client_headers_not_forwarded(live: Stack) -> None:
    r = post(live, {"model": "qwen3:8b", "messages": MSG},
             headers={"authorization": "Bearer client-secret", "x-custom": "1", "connection": "keep-alive",
                      "cookie": "a=b"})
    assert r.status_code == 200
    sent = live.local.requests[-1]["headers"]
    assert "authorization" not in sent
    assert "x-custom" not in sent
    assert "cookie" not in sent


def test_upstream_4xx_passes_through(live: Stack) -> None:
    live.local.behavior.fail_status = 400
    r = post(live, {"model": "qwen3:8b", "messages": MSG})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "simulated failure 400"
    assert len(live.local.requests) == 1  # a client error is not retried


def test_health_endpoints(live: Stack) -> None:
    with httpx.Client() as c:
        assert c.get(live.url + "/healthz").json() == {"status": "ok"}
        r = c.get(live.url + "/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready"}  # backend names are for the admin only (tests/test_access.py)


def test_injected_usage_is_stripped_but_counted(live: Stack) -> None:
    body = {"model": "qwen3:8b", "messages": MSG, "stream": True}
    r = post(live, body)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert b'"choices":[]' not in r.content
    assert r.content.endswith(b"data: [DONE]\n\n")
    assert live.local.requests[-1]["body"]["stream_options"] == {"include_usage": True}


def test_concrete_model_body_passes_untouched(live: Stack) -> None:
    raw = b'{"model": "qwen3:8b",  "messages": [{"role": "user", "content": "hello"}], "temperature": 0.3}'
    assert post(live, raw).status_code == 200
    assert live.local.requests[-1]["body"] == orjson.loads(raw)


def test_promotion_to_next_tier_on_upstream_error(live: Stack) -> None:
    live.local.behavior.fail_status = 500
    live.local.behavior.fail_times = 1  # the first attempt fails, the next one (local-large) works
    r = post(live, {"model": "tier:local-small", "messages": MSG})
    assert r.status_code == 200, r.text
    assert r.headers["x-router-attempts"] == "2"
    assert r.headers["x-router-tier"] == "local-large"
    assert [q["body"]["model"] for q in live.local.requests] == ["qwen3:8b", "qwen3:14b"]


def test_promotion_to_cloud_on_overload(live: Stack) -> None:
    live.local.behavior.fail_status = 503  # the whole local server is overloaded
    r = post(live, {"model": "tier:local-small", "messages": MSG})
    assert r.status_code == 200, r.text
    assert r.headers["x-router-attempts"] == "3"
    assert (r.headers["x-router-backend"], r.headers["x-router-tier"]) == ("cloud", "cloud-mini")


def test_promotion_stops_at_max_steps(live: Stack) -> None:
    live.local.behavior.fail_status = 503
    live.cloud.behavior.fail_status = 503
    r = post(live, {"model": "tier:local-small", "messages": MSG})
    assert_openai_error(r, 503, "upstream_overloaded")
    assert r.headers["x-router-attempts"] == "3"  # max_steps: 2
    assert len(live.local.requests) + len(live.cloud.requests) == 3


def test_promotion_on_slow_first_token(live: Stack) -> None:
    live.local.behavior.first_token_s = 1.5  # over first_token_ms (500) but under first_byte_s (2)
    with httpx.Client(timeout=30) as c, c.stream(
        "POST", live.url + "/v1/chat/completions",
        json={"model": "tier:local-small", "messages": MSG, "stream": True},
    ) as r:
        body = r.read()
    assert r.status_code == 200
    # Both local tiers were too slow to start; the cloud tier answered, and only its bytes reached us.
    assert r.headers["x-router-attempts"] == "3"
    assert r.headers["x-router-tier"] == "cloud-mini"
    assert body.count(b"[DONE]") == 1
    assert b"on local" not in body
    assert b"[gpt-5-mini on cloud]" in body


def test_no_promotion_for_concrete_model_alone(live: Stack) -> None:
    live.cloud.behavior.fail_status = 500
    r = post(live, {"model": "gpt-5", "messages": MSG})
    assert_openai_error(r, 502, "upstream_error")
    assert r.headers["x-router-attempts"] == "1"


def test_first_byte_timeout_is_504(live: Stack) -> None:
    live.cloud.behavior.first_token_s = 3  # over first_byte_s (2)
    assert_openai_error(post(live, {"model": "gpt-5", "messages": MSG}), 504, "upstream_timeout")


def test_overload_maps_to_503_with_retry_after(live: Stack) -> None:
    live.cloud.behavior.fail_status = 429
    live.cloud.behavior.error_headers = {"Retry-After": "7"}
    r = post(live, {"model": "gpt-5", "messages": MSG})
    assert_openai_error(r, 503, "upstream_overloaded")
    assert r.headers["retry-after"] == "7"


def test_mid_stream_break_reports_in_band(live: Stack) -> None:
    live.local.behavior.break_after_tokens = 3
    r = post(live, {"model": "qwen3:8b", "messages": MSG, "stream": True})
    assert r.status_code == 200
    last = r.content.strip().split(b"\n\n")[-1]
    assert last.startswith(b"data: {\"error\"")
    assert orjson.loads(last[6:])["error"]["code"] == "upstream_error"


def test_client_disconnect_cancels_upstream(live: Stack) -> None:
    live.local.behavior.token_delay_s = 0.05
    live.local.behavior.reply_tokens = 200
    stream_then_leave(live.url, {"model": "qwen3:8b", "messages": MSG, "stream": True}, b"data:", 3)
    deadline = time.time() + 5
    while live.local.disconnects == 0 and time.time() < deadline:
        time.sleep(0.02)
    assert live.local.disconnects == 1
    assert live.local.completed_streams == 0


def test_unreachable_upstream_is_502() -> None:
    dead = f"http://127.0.0.1:{unused_port()}/v1"
    # not known down before the call (with health checks it is: tests/test_resilience.py)
    stack = Stack(lambda local, cloud: without_health_checks(make_config(dead, dead))).start()
    try:
        r = post(stack, {"model": "qwen3:8b", "messages": MSG})
        err = assert_openai_error(r, 502, "upstream_error")
        assert err["message"] == "upstream 'local' is unreachable"  # the backend's name, not its address
    finally:
        stack.stop()


def test_route_preview_matches_real_call(live: Stack) -> None:
    body = {"model": "auto", "messages": [{"role": "user", "content": "Write a haiku about autumn leaves."}]}
    preview = post(live, body, "/v1/route").json()
    real = post(live, body)
    assert real.headers["x-router-model"] == preview["model"]
    assert real.headers["x-router-tier"] == preview["tier"]
    assert real.headers["x-router-task"] == preview["task"]


def test_idle_timeout_mid_stream_reports_in_band(live: Stack) -> None:
    live.local.behavior.token_delay_s = 2.5  # over idle_s (2) between chunks; the first chunk comes at once
    live.local.behavior.reply_tokens = 3
    r = post(live, {"model": "qwen3:8b", "messages": MSG, "stream": True})
    assert r.status_code == 200
    events = r.content.strip().split(b"\n\n")
    assert events[0].startswith(b'data: {"id"')
    err = orjson.loads(events[-1][6:])["error"]
    assert err["code"] == "upstream_timeout"
    assert "stalled" in err["message"]


def test_a_finished_request_leaves_no_garbage_cycle() -> None:
    """Every stage on (a priced cloud model under a tenant budget): when an answer ends, its exchange is freed
    by reference counting, not left for the cyclic collector (per-request cycles made its pauses the tail)."""
    def config(local: str, cloud: str) -> dict:
        cfg = make_config(local, cloud)
        cfg["tenants"] = [{"match": "*", "budget": {"daily_usd": 100, "per_request_usd": 1}}]
        return cfg

    stack = Stack(config).start()
    try:
        body = {"model": "gpt-5-mini", "messages": MSG}
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds is kept in gc.garbage, to be looked at
        try:
            assert post(stack, body).status_code == 200
            assert post(stack, {**body, "stream": True}).status_code == 200
            assert post(stack, {**body, "model": "qwen3:8b"}).status_code == 200
            gc.collect()
            left = [o for o in gc.garbage if isinstance(o, Exchange)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        assert left == []
    finally:
        stack.stop()
