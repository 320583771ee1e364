"""OpenTelemetry tracing (the `otel` extra; its API and SDK are in the test extra): spans, GenAI
attributes, W3C traceparent upstream, and nothing of OpenTelemetry loaded when tracing is off."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from backends.simulated import Behavior
from router.config import ConfigError, TracingSpec, parse
from router.observe.tracing import Tracer
from tests.conftest import Stack, make_config

ROOT = Path(__file__).resolve().parent.parent
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
MSG = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def traced() -> Iterator[tuple[Stack, InMemorySpanExporter]]:
    stack = Stack(lambda lu, cu: make_config(lu, cu, tracing={"enabled": True, "exporter": "none"})).start()
    exporter = InMemorySpanExporter()
    assert stack.service is not None
    stack.service.observer.tracer = Tracer(stack.config.tracing, exporter=exporter)  # type: ignore[union-attr]
    yield stack, exporter
    stack.stop()


@pytest.fixture
def spans(traced: tuple[Stack, InMemorySpanExporter]) -> Iterator[tuple[Stack, InMemorySpanExporter]]:
    stack, exporter = traced
    stack.reset()
    exporter.clear()
    yield stack, exporter
    stack.reset()


def _post(stack: Stack, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(stack.url + "/v1/chat/completions", json=body, headers=headers or {}, timeout=30)


def _by_kind(exporter: InMemorySpanExporter) -> tuple[Any, list[Any]]:
    got = exporter.get_finished_spans()
    server = [s for s in got if s.kind == SpanKind.SERVER]
    clients = sorted((s for s in got if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time)
    assert len(server) == 1, got
    return server[0], clients


def test_request_and_attempt_spans_continue_the_clients_trace(spans: tuple[Stack, InMemorySpanExporter]) -> None:
    stack, exporter = spans
    r = _post(stack, {"model": "auto", "messages": MSG}, {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert r.status_code == 200
    server, (client,) = _by_kind(exporter)
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert format(server.parent.span_id, "016x") == PARENT_ID
    assert client.parent.span_id == server.context.span_id
    a = server.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "auto"
    assert a["gen_ai.response.model"] == "qwen3:8b"
    assert a["ai_router.tier"] == "local-small"
    assert a["gen_ai.usage.input_tokens"] > 0
    assert a["gen_ai.usage.output_tokens"] > 0
    assert a["http.response.status_code"] == 200
    assert a["ai_router.task"] == "chat"
    c = client.attributes
    assert client.name == "chat qwen3:8b"
    assert c["gen_ai.request.model"] == "qwen3:8b"
    assert c["gen_ai.provider.name"] == "openai"
    assert c["server.address"] == "127.0.0.1"
    assert c["gen_ai.usage.output_tokens"] > 0
    assert not any("hello" in str(v) for v in (*a.values(), *c.values()))  # no content in spans
    # The upstream got the attempt span's context as its parent.
    sent = stack.local.requests[-1]["headers"]["traceparent"]
    assert sent == f"00-{TRACE_ID}-{format(client.context.span_id, '016x')}-01"


def test_a_stream_attempt_span_ends_with_the_stream(spans: tuple[Stack, InMemorySpanExporter]) -> None:
    stack, exporter = spans
    stack.local.behavior = Behavior(token_delay_s=0.05, reply_tokens=8)  # still streaming when the head arrives
    with httpx.stream("POST", stack.url + "/v1/chat/completions", timeout=30,
                      json={"model": "auto", "messages": MSG, "stream": True}) as r:
        assert r.status_code == 200
        assert exporter.get_finished_spans() == ()  # nothing ends before the stream does
        r.read()
    server, (client,) = _by_kind(exporter)
    assert client.end_time <= server.end_time
    assert client.attributes["gen_ai.usage.output_tokens"] > 0
    assert server.attributes["ai_router.ttft_s"] > 0
    assert "traceparent" in stack.local.requests[-1]["headers"]  # a new trace when the client sent none


def test_promotion_is_two_attempt_spans(spans: tuple[Stack, InMemorySpanExporter]) -> None:
    stack, exporter = spans
    stack.local.behavior = Behavior(fail_status=500, fail_times=1)
    assert _post(stack, {"model": "auto", "messages": MSG}).status_code == 200
    server, clients = _by_kind(exporter)
    assert [c.attributes["gen_ai.request.model"] for c in clients] == ["qwen3:8b", "qwen3:14b"]
    assert clients[0].attributes["error.type"] == "error"
    assert clients[0].status.status_code == StatusCode.ERROR
    assert clients[1].status.status_code != StatusCode.ERROR
    assert server.attributes["ai_router.attempts"] == 2


def test_a_failed_request_marks_its_span(spans: tuple[Stack, InMemorySpanExporter]) -> None:
    stack, exporter = spans
    stack.local.behavior = Behavior(fail_status=500)
    stack.cloud.behavior = Behavior(fail_status=500)
    assert _post(stack, {"model": "auto", "messages": MSG}).status_code == 502
    server, clients = _by_kind(exporter)
    assert server.status.status_code == StatusCode.ERROR
    assert server.attributes["error.type"] == "upstream_error"
    assert len(clients) == 3


def test_otlp_exporter_needs_the_extra() -> None:
    spec = parse({"tracing": {"enabled": True, "exporter": "otlp"},
                  "backends": [{"name": "b", "base_url": "http://127.0.0.1:9/v1", "models": [{"id": "m"}]}]}).tracing
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"^tracing\.exporter: otlp needs"):
            Tracer(spec)
    else:
        Tracer(spec).shutdown()


def test_off_loads_nothing_of_opentelemetry() -> None:
    code = ("import sys; from router.config import parse; from router.server import RouterService; "
            "RouterService(parse({'backends': [{'name': 'b', 'base_url': 'http://127.0.0.1:9/v1', "
            "'models': [{'id': 'm'}]}]})); "
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_tracing_config_is_validated() -> None:
    base = {"backends": [{"name": "b", "base_url": "http://127.0.0.1:9/v1", "models": [{"id": "m"}]}]}
    with pytest.raises(ConfigError, match=r"^tracing\.sample_ratio"):
        parse({**base, "tracing": {"sample_ratio": 2}})
    with pytest.raises(ConfigError, match=r"^tracing\.exporter"):
        parse({**base, "tracing": {"exporter": "jaeger"}})
    with pytest.raises(ConfigError, match=r"^tracing\.nope"):
        parse({**base, "tracing": {"nope": 1}})
    assert parse(base).tracing == TracingSpec()
