"""Hardening, upstream side (issue 10): a broken or hostile upstream costs a 502, never memory, the loop or a key.

A raw-asyncio upstream (`bench/hostile_upstream.py`, one behaviour per model id) sends what no HTTP
library would: a 100 MB answer, endless header lines, 100,000 headers, SSE without event boundaries,
gzip the router did not ask for, two usage events in one chunk, a key echoed in an error. Each test is
one finding of the issue.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from bench.hostile_upstream import HostileUpstream, backend_config
from tests.conftest import Stack, make_config

KEY = "sk-hostile-secret-key-0123456789"
os.environ["AI_ROUTER_HOSTILE_KEY"] = KEY
MSG = [{"role": "user", "content": "hello there"}]
BODY_MB = 4
TOTAL_S = 3  # the hostile backend's total timeout: a limit must end each case before it


class LoopThread:
    """An event loop in a thread, for the hostile upstream."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def hostile() -> Iterator[tuple[Stack, HostileUpstream]]:
    lt = LoopThread()
    up = HostileUpstream()
    url = lt.run(up.start())

    async def plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")  # the answer to a TLS ClientHello: no TLS here
        writer.close()

    async def start_plain() -> asyncio.Server:
        return await asyncio.start_server(plain_http, "127.0.0.1", 0)

    plain = lt.run(start_plain())
    tls_url = f"https://127.0.0.1:{plain.sockets[0].getsockname()[1]}/v1"

    def config(local: str, cloud: str) -> dict[str, Any]:
        cfg = make_config(local, cloud)
        cfg["server"] = {"max_body_mb": 1, "max_upstream_body_mb": BODY_MB}
        hostile = backend_config(url, total_s=TOTAL_S)
        for m in hostile["models"]:
            if m["id"] == "ok":
                m["params"] = {"top_p": 0.5}
                m["force_params"] = {"temperature": 0, "reasoning_effort": "high"}
        tls = {"name": "tls", "kind": "openai", "base_url": tls_url, "timeouts": {"connect_s": 2},
               "health": {"probe": "off"}, "breaker": {"failures": 1_000_000},
               "models": [{"id": "tls-model", "tier": "hostile"}]}
        cfg["backends"] += [hostile, tls]
        cfg["routing"]["tiers"].append("hostile")
        return cfg

    st = Stack(config).start()
    yield st, up
    st.stop()
    lt.run(up.stop())

    async def stop_plain() -> None:
        plain.close()
        await plain.wait_closed()

    lt.run(stop_plain())
    lt.stop()


def call(st: Stack, model: str, stream: bool = False, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": MSG, "stream": stream, **extra}
    with httpx.Client(timeout=30) as c:
        return c.post(st.url + "/v1/chat/completions", content=orjson.dumps(body),
                      headers={"content-type": "application/json"})


def assert_upstream_error(r: httpx.Response) -> str:
    assert r.status_code == 502, r.text[:500]
    err = r.json()["error"]
    assert err["code"] == "upstream_error"
    return str(err["message"])


def in_band_error(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200
    events = [e.lstrip(b"\r\n") for e in r.content.split(b"\n\n")]
    events = [e for e in events if e.startswith(b"data: {\"error\"")]
    assert len(events) == 1, r.content[-500:]
    return orjson.loads(events[0][6:])["error"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------- keys and addresses never reach the client


def test_upstream_401_quoting_the_key_is_masked(hostile: tuple[Stack, HostileUpstream]) -> None:
    st, _ = hostile
    r = call(st, "echo-key")
    msg = assert_upstream_error(r)
    assert KEY not in r.text
    assert "Incorrect API key provided: ***" in msg


def test_upstream_400_passes_through_with_keys_masked(hostile: tuple[Stack, HostileUpstream]) -> None:
    st, _ = hostile
    r = call(st, "echo-key-400")
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "bad"
    for secret in (KEY, "sk-proj-abcdef1234567890", "abcdefghijklmnop"):
        assert secret not in r.text
    assert err["message"].startswith("Bad key ***")


def test_tls_failure_names_the_backend_not_the_address(hostile: tuple[Stack, HostileUpstream]) -> None:
    st, _ = hostile
    r = call(st, "tls-model")
    assert assert_upstream_error(r) == "upstream 'tls' is unreachable"
    for detail in ("127.0.0.1", "SSL", "ssl", "certificate", "WRONG_VERSION"):
        assert detail not in r.text


# ---------------------------------------------------------------- bounded memory, CPU and loop


def _healthz_ms(st: Stack) -> float:
    with httpx.Client(timeout=10) as c:
        t0 = time.perf_counter()
        assert c.get(st.url + "/healthz").status_code == 200
        return (time.perf_counter() - t0) * 1000


@pytest.mark.parametrize("case", ["huge-json", "endless-json", "endless-header", "many-headers"])
def test_oversized_upstream_answer_is_a_quick_502(hostile: tuple[Stack, HostileUpstream], case: str) -> None:
    st, _ = hostile
    msg = assert_upstream_error(call(st, case))  # a 502 naming the limit: not the total timeout's 504
    assert msg == "upstream 'hostile' sent a response over the router's limits"


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("case", ["sse-no-boundary", "sse-huge-event"])
def test_endless_sse_event_ends_in_band_quickly(
    hostile: tuple[Stack, HostileUpstream], case: str, include_usage: bool
) -> None:
    st, _ = hostile
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    err = in_band_error(call(st, case, stream=True, **extra))  # the event bound ended it, not total_s
    assert err["code"] == "upstream_error"
    assert "SSE event over" in err["message"]


def test_loop_keeps_answering_while_an_upstream_floods(hostile: tuple[Stack, HostileUpstream]) -> None:
    st, _ = hostile
    done = threading.Event()

    def flood() -> None:
        for case in ("sse-no-boundary", "endless-header", "endless-json"):
            call(st, case, stream=case.startswith("sse"))
        done.set()

    t = threading.Thread(target=flood)
    t.start()
    worst = 0.0
    while not done.is_set():
        worst = max(worst, _healthz_ms(st))
    t.join()
    assert worst < 500  # generous for a loaded 2-core machine; bench/hostile.py measures it properly


# ---------------------------------------------------------------- semantics


def test_gzip_json_is_decoded_and_its_usage_counted(hostile: tuple[Stack, HostileUpstream]) -> None:
    st, _ = hostile
    r = call(st, "gzip-json")
    assert r.status_code == 200
    assert "content-encoding" not in r.headers
    assert r.json()["usage"]["prompt_tokens"] == 11
    assert float(r.headers["x-router-cost-usd"]) == pytest.approx(18 / 1e6)


def test_gzip_sse_is_decoded(hostile: tuple[Stack, HostileUpstream]) -> None:
    st, _ = hostile
    r = call(st, "gzip-sse", stream=True)
    assert r.status_code == 200
    assert r.content.startswith(b"data: {")
    assert b'"choices":[]' not in r.content  # the injected usage event is still cut
    assert r.content.endswith(b"data: [DONE]\n\n")
    assert b"Hel" in r.content


def test_every_usage_only_event_is_cut(hostile: tuple[Stack, HostileUpstream]) -> None:
    st, _ = hostile
    r = call(st, "multi-usage", stream=True)
    assert r.status_code == 200
    assert b'"choices":[]' not in r.content
    assert r.content.count(b"data: ") == 3  # "Hi", "!", [DONE]


def test_total_timeout_is_reported_as_such(hostile: tuple[Stack, HostileUpstream]) -> None:
    st, _ = hostile
    err = in_band_error(call(st, "slow-stream", stream=True))
    assert err["code"] == "upstream_timeout"
    assert err["message"] == f"upstream 'hostile' did not finish within {TOTAL_S}s"


@pytest.mark.parametrize("raw", [
    b'{"model": "echo-key", "messages": [{"role": "user", "content": "x"}], "model": "gzip-json"}',
    b'{"mod\\u0065l": "echo-key", "messages": [{"role": "user", "content": "x"}], "model": "gzip-json"}',
    b'{"model": "gzip-json", "messages": [{"role": "user", "content": "x"}], "stream": true, "stream": false}',
])
def test_duplicated_keys_forward_what_was_authorised(hostile: tuple[Stack, HostileUpstream], raw: bytes) -> None:
    st, up = hostile
    with httpx.Client(timeout=30) as c:
        r = c.post(st.url + "/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 200
    assert r.headers["x-router-model"] == "gzip-json"  # a model without params: nothing else re-encodes the body
    sent = up.requests[-1]["raw"]
    assert sent.count(b'"model"') == 1
    assert b"echo-key" not in sent
    assert sent.count(b'"stream"') <= 1


def test_params_fill_and_force_params_override(hostile: tuple[Stack, HostileUpstream]) -> None:
    st, up = hostile
    assert call(st, "ok", temperature=1.5, top_p=0.9, reasoning_effort="low").status_code == 200
    sent = up.requests[-1]["body"]
    assert (sent["temperature"], sent["top_p"], sent["reasoning_effort"]) == (0, 0.9, "high")
    assert call(st, "ok").status_code == 200
    sent = up.requests[-1]["body"]
    assert (sent["temperature"], sent["top_p"], sent["reasoning_effort"]) == (0, 0.5, "high")


def test_max_tokens_beyond_every_context_is_400_context_length_exceeded(live: Stack) -> None:
    with httpx.Client(timeout=30) as c:
        for path, body in (
            ("/v1/chat/completions", {"model": "auto", "messages": MSG, "max_tokens": 10_000_000}),
            ("/v1/embeddings", {"model": "auto", "input": "word " * 20_000}),
        ):
            r = c.post(live.url + path, content=orjson.dumps(body), headers={"content-type": "application/json"})
            assert r.status_code == 400, r.text
            assert r.json()["error"]["code"] == "context_length_exceeded"
    assert not live.local.requests
    assert not live.cloud.requests
