"""Fault injection (tests/faults.py): every way an upstream breaks, what the client sees, and what is left.

Each case names the fault, whether the request streams, and what the client must see: promoted
invisibly to the cloud fallback (a failure before the first content token), an error status for a
model asked for directly, or (after content was sent) the partial stream ending with an OpenAI-style
error event. After each: the backend's slot is free, the router holds no connection to the faulty
upstream beyond idle keep-alive ones, no task is left behind, and the usage was settled (once).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from router.cost import token_counts
from tests import stages_for_tests
from tests.conftest import Stack, make_config, stream_then_leave
from tests.faults import Blackhole, FaultUpstream

MSG = [{"role": "user", "content": "hello there"}]
# Short, so the stalls the cases wait out cost little; every upstream gap the tests mean to be fine (slow drip,
# the head of slow_start) stays well under its limit even on a loaded machine.
FAULT_TIMEOUTS = {"connect_s": 0.5, "first_byte_s": 0.3, "idle_s": 0.25, "total_s": 10}
WIDE_TIMEOUTS = {"connect_s": 0.5, "first_byte_s": 0.6, "idle_s": 0.4, "total_s": 10}  # "faulty-wide"
DRIP_S = 0.05


def fault_config(local: str, cloud: str, blackhole: str) -> dict[str, Any]:
    cfg = make_config(local, cloud)
    no_breaker = {"failures": 1000, "min_requests": 1000}
    cfg["backends"][0] = {
        "name": "faulty", "location": "local", "base_url": local, "timeouts": FAULT_TIMEOUTS,
        "health": {"probe": "off"}, "breaker": no_breaker,
        "models": [{"id": "faulty-model", "tier": "local-small", "price": {"input": 1.0, "output": 2.0}}],
    }
    cfg["backends"] += [
        {"name": "faulty-total", "location": "local", "base_url": local, "health": {"probe": "off"},
         "timeouts": {**FAULT_TIMEOUTS, "total_s": 0.2}, "breaker": no_breaker, "models": [{"id": "drip-model"}]},
        {"name": "faulty-wide", "location": "local", "base_url": local, "health": {"probe": "off"},
         "timeouts": WIDE_TIMEOUTS, "breaker": no_breaker, "models": [{"id": "wide-model"}]},
        {"name": "faulty-claude", "kind": "anthropic", "location": "local", "base_url": local,
         "health": {"probe": "off"}, "timeouts": FAULT_TIMEOUTS, "breaker": no_breaker,
         "models": [{"id": "claude-faulty", "price": {"input": 1.0, "output": 2.0}}]},
        {"name": "blackhole", "base_url": blackhole, "health": {"probe": "off"}, "breaker": no_breaker,
         "timeouts": {**FAULT_TIMEOUTS, "connect_s": 0.3}, "models": [{"id": "blackhole-model"}]},
    ]
    cfg["backends"][1]["health"] = {"probe": "off"}
    cfg["routing"]["tiers"] = ["local-small", "cloud-mini"]
    cfg["routing"]["rules"] = [{"tier": "local-small"}]
    cfg["routing"]["promotion"]["first_token_ms"] = 250
    cfg["pipeline"] = ["tests.stages_for_tests:SpendRecorder", "classify", "route", "retry"]
    for m in list(cfg["backends"][1]["models"]):
        if m.get("tier") not in (None, "cloud-mini"):
            m.pop("tier")
    return cfg


def settled(r: httpx.Response) -> list[tuple[str, Any, Any]]:
    """What was settled for this answer's request (a late settle of an earlier test may also be listed)."""
    rid = r.headers["x-request-id"]
    return [s for s in stages_for_tests.SETTLED if s[0] == rid]


@pytest.fixture(scope="module")
def fstack() -> Iterator[Stack]:
    hole = Blackhole()
    s = Stack(lambda local, cloud: fault_config(local, cloud, f"http://127.0.0.1:{hole.port}/v1"))
    s.local = FaultUpstream()  # type: ignore[assignment]
    s.local.drip_s = DRIP_S
    s.start()
    yield s
    s.stop()
    hole.close()


@pytest.fixture
def fs(fstack: Stack) -> Iterator[Stack]:
    fstack.reset()
    fault(fstack).fault = "ok"
    stages_for_tests.SETTLED.clear()
    yield fstack
    f = fault(fstack)
    f.fault = "ok"
    f.role_s = f.content_s = 0.0


def fault(s: Stack) -> FaultUpstream:
    return s.local  # type: ignore[return-value]


def call(s: Stack, model: str, stream: bool, **kw: Any) -> httpx.Response:
    with httpx.Client(timeout=30) as c:
        return c.post(s.url + "/v1/chat/completions", json={"model": model, "messages": MSG, "stream": stream, **kw})


def events(r: httpx.Response) -> list[bytes]:
    return [e for e in r.content.split(b"\n\n") if e.strip()]


def router_tasks(s: Stack) -> int:
    """Tasks on the router's loop, less the upstreams' per-connection ones (they live on the same loop)."""
    mine = fault(s)._tasks

    async def count() -> int:
        return sum(1 for t in asyncio.all_tasks() if t not in mine
                   and not t.get_coro().__qualname__.startswith("RequestHandler."))  # type: ignore[union-attr]

    return int(s.run(count()))


def settle_and_check(s: Stack, tasks_before: int) -> None:
    """No slot held, no connection to the faulty upstream beyond idle pooled ones, no stray task."""
    assert s.service is not None
    deadline = time.monotonic() + 15  # a wait, not a timing: only a loaded machine gets near it
    while True:
        busy = [b.name for b in s.service.backends.values() if b.capacity.in_flight or b.capacity.queued]
        pooled = sum(len(s.service.backends[n].client.pool.idle)  # type: ignore[attr-defined]
                     for n in ("faulty", "faulty-total", "faulty-wide", "faulty-claude"))
        ok = not busy and fault(s).open <= pooled and router_tasks(s) <= tasks_before
        if ok or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not busy, f"slots still held on {busy}"
    assert fault(s).open <= pooled, f"{fault(s).open} upstream connections open, {pooled} pooled"
    assert router_tasks(s) <= tasks_before


# (fault, stream) -> promoted to the cloud fallback, invisibly: nothing of the faulty upstream reaches the client
BEFORE_CONTENT = [
    ("reset_before", False), ("reset_before", True), ("stall_before", False), ("stall_before", True),
    ("role_then_stall", True), ("status_500", False), ("status_502", True), ("status_503", False),
    ("status_429", True), ("malformed_sse", True), ("error_event", True), ("truncated_json", False),
    ("cut_json", False),
]


@pytest.mark.parametrize(("mode", "stream"), BEFORE_CONTENT)
def test_failure_before_content_is_promoted_invisibly(fs: Stack, mode: str, stream: bool) -> None:
    tasks = router_tasks(fs)
    fault(fs).fault = mode
    r = call(fs, "auto", stream)
    assert r.status_code == 200, r.text
    assert r.headers["x-router-backend"] == "cloud"
    assert r.headers["x-router-attempts"] == "2"
    assert b" tok0" not in r.content  # not a byte of the faulty stream
    assert b"gpt-5-mini on cloud" in r.content
    if stream:
        assert events(r)[-1] == b"data: [DONE]"
    (_, usage, _cost), = settled(r)
    assert usage["completion_tokens"] > 0
    settle_and_check(fs, tasks)


# (fault, stream) -> the client's status and error code when the faulty model is asked for by name (no fallback)
DIRECT = [
    ("reset_before", False, 502, "upstream_error"), ("stall_before", False, 504, "upstream_timeout"),
    ("stall_before", True, 504, "upstream_timeout"), ("status_500", False, 502, "upstream_error"),
    ("status_502", True, 502, "upstream_error"), ("status_503", False, 503, "upstream_overloaded"),
    ("status_429", False, 503, "upstream_overloaded"), ("malformed_sse", True, 502, "upstream_error"),
    ("truncated_json", False, 502, "upstream_error"), ("cut_json", False, 502, "upstream_error"),
    ("missing_model", False, 404, "model_not_found"), ("missing_model", True, 404, "model_not_found"),
]


@pytest.mark.parametrize(("mode", "stream", "status", "code"), DIRECT)
def test_failure_of_a_model_asked_for_directly(fs: Stack, mode: str, stream: bool, status: int, code: str) -> None:
    tasks = router_tasks(fs)
    fault(fs).fault = mode
    r = call(fs, "faulty-model", stream)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == code
    if mode == "status_429":
        assert r.headers["retry-after"] == "7"
    if mode == "missing_model":
        assert "faulty-model" in r.json()["error"]["message"]
    settle_and_check(fs, tasks)


@pytest.mark.parametrize(("mode", "code", "message"), [
    ("reset_mid", "upstream_error", "broke the stream"), ("stall_mid", "upstream_timeout", "stalled mid-stream"),
])
def test_failure_after_content_ends_the_stream_in_band(fs: Stack, mode: str, code: str, message: str) -> None:
    tasks = router_tasks(fs)
    fault(fs).fault = mode
    r = call(fs, "auto", True)
    assert r.status_code == 200
    assert r.headers["x-router-backend"] == "faulty"
    ev = events(r)
    assert b"tok0" in r.content
    assert b"tok2" in r.content
    assert b"tok3" not in r.content
    err = orjson.loads(ev[-1].removeprefix(b"data: "))["error"]
    assert err["code"] == code
    assert message in err["message"]
    assert b"[DONE]" not in r.content
    (_, usage, cost), = settled(r)
    assert usage["x_router_counted"] is True
    assert 2 <= usage["completion_tokens"] <= 6
    assert cost > 0  # partial spend is recorded
    settle_and_check(fs, tasks)


@pytest.mark.parametrize(("path", "model"), [
    ("/v1/chat/completions", "claude-faulty"),  # chat client, Anthropic upstream: translated
    ("/v1/messages", "faulty-model"),  # Messages client, OpenAI-format upstream: translated
    ("/v1/messages", "claude-faulty"),  # Messages client, Anthropic upstream: passed through
])
def test_translated_and_messages_streams_settle_partial_usage(fs: Stack, path: str, model: str) -> None:
    tasks = router_tasks(fs)
    fault(fs).fault = "reset_mid"
    with httpx.Client(timeout=30) as c:
        r = c.post(fs.url + path, json={"model": model, "messages": MSG, "stream": True, "max_tokens": 64})
    assert r.status_code == 200
    assert b"tok2" in r.content
    assert b"tok3" not in r.content
    last = events(r)[-1]
    if path == "/v1/messages":
        assert last.startswith(b"event: error\n")
    assert b"broke the stream" in last
    (_, usage, cost), = settled(r)
    tokens_in, tokens_out, _ = token_counts(usage)
    assert usage["x_router_counted"] is True
    assert tokens_in > 0
    if model == "claude-faulty":
        assert tokens_in == 10  # the upstream's own input count (message_start), not a local estimate
    assert 3 <= tokens_out <= 9  # " tok0 tok1 tok2", counted by the router
    assert cost == pytest.approx((tokens_in * 1.0 + tokens_out * 2.0) / 1e6)
    settle_and_check(fs, tasks)


def test_sdk_sees_an_api_error_mid_stream(fs: Stack) -> None:
    fault(fs).fault = "reset_mid"
    client = openai.OpenAI(base_url=fs.url + "/v1", api_key="x", max_retries=0)
    got: list[str] = []

    def consume() -> None:
        for chunk in client.chat.completions.create(model="auto", messages=MSG, stream=True):  # type: ignore[arg-type]
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)

    with pytest.raises(openai.APIError, match="broke the stream"):
        consume()
    assert "".join(got) == " tok0 tok1 tok2"


def test_slow_drip_is_relayed_whole(fs: Stack) -> None:
    fault(fs).fault = "slow_drip"  # 0.05 s between chunks: under idle_s (0.25)
    r = call(fs, "auto", True)
    assert r.status_code == 200
    assert r.headers["x-router-backend"] == "faulty"
    assert b"tok5" in r.content
    assert events(r)[-1] == b"data: [DONE]"
    (_, usage, cost), = settled(r)
    assert usage == {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}
    assert cost == pytest.approx((10 * 1.0 + 6 * 2.0) / 1e6)


# ---------------------------------------------------------------- the four timeouts, one test each


def test_connect_timeout(fs: Stack) -> None:
    t0 = time.monotonic()
    r = call(fs, "blackhole-model", False)
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"
    assert "no connection within 0.3s" in r.json()["error"]["message"]
    assert time.monotonic() - t0 < 3


def test_first_byte_timeout(fs: Stack) -> None:
    fault(fs).fault = "stall_before"
    t0 = time.monotonic()
    r = call(fs, "faulty-model", False)
    assert r.status_code == 504
    assert "sent no answer within 0.3s" in r.json()["error"]["message"]
    assert 0.25 < time.monotonic() - t0 < 3


def test_role_only_chunk_does_not_restart_the_first_token_deadline(fs: Stack) -> None:
    f = fault(fs)
    f.fault = "slow_start"  # the role-only chunk at 0.12 s, the first content at 0.3 s: no gap over idle_s
    f.role_s, f.content_s = 0.12, 0.18  # (0.25), but the first token is past first_token_ms (0.25)
    r = call(fs, "auto", True)
    assert r.status_code == 200
    assert r.headers["x-router-backend"] == "cloud"  # promoted: slow_first_token
    assert r.headers["x-router-attempts"] == "2"
    assert b"tok0" not in r.content


def test_first_byte_limit_is_met_by_the_first_byte(fs: Stack) -> None:
    f = fault(fs)
    f.fault = "slow_start"  # the head and a role-only chunk at 0.45 s (under first_byte_s 0.6), content 0.3 s
    f.role_s, f.content_s = 0.45, 0.3  # later (under idle_s 0.4): 0.75 s to the first token is fine
    r = call(fs, "wide-model", True)  # asked for by name: no promotion, no first-token deadline
    assert r.status_code == 200
    assert r.headers["x-router-backend"] == "faulty-wide"
    assert b"tok5" in r.content
    assert events(r)[-1] == b"data: [DONE]"


def test_hold_back_wait_is_bounded_by_idle_s(fs: Stack) -> None:
    f = fault(fs)
    f.fault = "slow_start"  # the role-only chunk at once, then nothing for 0.4 s: over idle_s (0.25)
    f.role_s, f.content_s = 0.0, 0.4
    r = call(fs, "faulty-model", True)
    assert r.status_code == 504  # nothing was sent yet: a clean error status, not an in-band event
    assert r.json()["error"]["code"] == "upstream_timeout"
    assert "stalled before its first token (no data for 0.25s)" in r.json()["error"]["message"]


def test_idle_timeout_between_chunks(fs: Stack) -> None:
    fault(fs).fault = "stall_mid"
    t0 = time.monotonic()
    r = call(fs, "faulty-model", True)
    assert r.status_code == 200
    assert orjson.loads(events(r)[-1].removeprefix(b"data: "))["error"]["code"] == "upstream_timeout"
    assert 0.2 < time.monotonic() - t0 < 3


def test_total_timeout(fs: Stack) -> None:
    fault(fs).fault = "slow_drip"  # 6 chunks 0.05 s apart: each gap is fine, the whole (0.25 s) is over total_s 0.2
    r = call(fs, "drip-model", True)
    assert r.status_code == 200
    err = orjson.loads(events(r)[-1].removeprefix(b"data: "))["error"]
    assert err["code"] == "upstream_timeout"
    assert b"tok5" not in r.content


# ---------------------------------------------------------------- client disconnect


def test_client_disconnect_cancels_frees_and_settles(fs: Stack) -> None:
    tasks = router_tasks(fs)
    f = fault(fs)
    f.fault = "slow_drip"
    f.drip_s = 0.15  # slow enough to leave mid-stream, under idle_s (0.25)
    try:
        disconnects = f.disconnects
        stream_then_leave(fs.url, {"model": "auto", "messages": MSG, "stream": True}, b" tok", 2)
        deadline = time.monotonic() + 5
        while f.disconnects == disconnects and time.monotonic() < deadline:
            time.sleep(0.02)
        assert f.disconnects == disconnects + 1  # the upstream saw us leave
        settle_and_check(fs, tasks)
        (_, usage, cost), = stages_for_tests.SETTLED
        assert usage["x_router_counted"] is True
        assert usage["completion_tokens"] >= 1
        assert cost > 0
    finally:
        f.drip_s = DRIP_S


def test_no_fd_growth_over_repeated_faults(fs: Stack) -> None:
    def one_round() -> None:
        for mode, stream in BEFORE_CONTENT[:8]:
            fault(fs).fault = mode
            call(fs, "auto", stream)
        fault(fs).fault = "reset_mid"
        call(fs, "auto", True)

    one_round()
    settle_and_check(fs, router_tasks(fs))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(2):
        one_round()
    settle_and_check(fs, router_tasks(fs))
    assert len(os.listdir("/proc/self/fd")) <= before + 2
