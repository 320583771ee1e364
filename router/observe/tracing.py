"""Optional OpenTelemetry tracing (the `otel` extra): a span per request and one per upstream attempt.

Imported only when `tracing.enabled: true`; with tracing off nothing of OpenTelemetry is loaded and the
request path pays one `is None` check in three places. When on:
- the request span (kind SERVER) continues the client's W3C `traceparent` if it sent one, and carries
  the decision and its outcome: `gen_ai.operation.name`, `gen_ai.request.model` (what the client asked
  for), `gen_ai.response.model`, `gen_ai.usage.input_tokens` / `output_tokens`, `http.*`, and the
  router's own `ai_router.*` (tier, task, complexity, tenant, attempts, cost);
- each upstream attempt is a child span (kind CLIENT, `chat gpt-5-mini`) following the GenAI semantic
  conventions (`gen_ai.provider.name`, `gen_ai.request.model`, `server.address`, `error.type`), and its
  context goes upstream as `traceparent`, so the provider's or vLLM's own spans join the trace;
- a stream's attempt span ends when the stream does (the pump's finish hook), never per chunk.
Spans never carry prompt or completion content.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from router.config import ConfigError, TracingSpec
from router.cost import token_counts
from router.errors import UpstreamFailure

try:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ConfigError(f"tracing.enabled: needs the otel extra (pip install 'ai-router[otel]'): {e}") from None

if TYPE_CHECKING:
    from router.exchange import Candidate, Exchange, Reply

OPERATIONS = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings",
              "responses": "chat", "messages": "chat"}
PROVIDERS = {"openai": "openai", "azure": "azure.ai.openai", "anthropic": "anthropic"}


class _Trace:
    """The spans of one request: the request span and the attempt in progress (if any)."""

    __slots__ = ("attempt", "span")

    def __init__(self, span: Any) -> None:
        self.span = span
        self.attempt: Any = None


def _exporter(spec: TracingSpec) -> SpanExporter | None:
    if spec.exporter == "none":
        return None
    if spec.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ConfigError("tracing.exporter: otlp needs opentelemetry-exporter-otlp-proto-http "
                          "(pip install 'ai-router[otel]')") from None
    return OTLPSpanExporter(endpoint=spec.endpoint) if spec.endpoint else OTLPSpanExporter()


class Tracer:
    """Spans for requests and upstream attempts; one per loaded config."""

    def __init__(self, spec: TracingSpec, exporter: SpanExporter | None = None) -> None:
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": spec.service_name}),
            sampler=ParentBased(TraceIdRatioBased(spec.sample_ratio)),
        )
        if exporter is not None:  # a test's in-memory exporter: spans are there as soon as they end
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            made = _exporter(spec)
            if made is not None:
                self.provider.add_span_processor(BatchSpanProcessor(made))
        self.tracer = self.provider.get_tracer("ai_router")
        self.propagator = TraceContextTextMapPropagator()

    def shutdown(self) -> None:
        self.provider.shutdown()

    # ------------------------------------------------------------ the request span

    def begin(self, ex: Exchange, headers: Any) -> None:
        parent = self.propagator.extract(headers)
        op = OPERATIONS.get(ex.endpoint, ex.endpoint)
        span = self.tracer.start_span(
            f"{op} {ex.client_model}", context=parent, kind=SpanKind.SERVER,
            attributes={"gen_ai.operation.name": op, "gen_ai.request.model": ex.client_model,
                        "gen_ai.request.stream": ex.stream, "http.request.method": "POST",
                        "ai_router.request_id": ex.request_id, "ai_router.endpoint": ex.endpoint},
        )
        ex.trace = _Trace(span)

    def end(self, ex: Exchange, error: str | None) -> None:
        tr: _Trace = ex.trace
        ex.trace = None
        if tr.attempt is not None:
            self._end_attempt(ex, tr.attempt, error)
            tr.attempt = None
        span = tr.span
        t, f = ex.target, ex.features
        attrs: dict[str, Any] = {"http.response.status_code": ex.status, "ai_router.attempts": len(ex.attempts)}
        if t is not None:
            attrs.update({"gen_ai.response.model": t.model.id, "ai_router.backend": t.model.backend,
                          "ai_router.tier": t.tier or "", "ai_router.location": t.model.location})
        if f is not None:
            attrs.update({"ai_router.task": f.task, "ai_router.complexity": f.complexity,
                          "ai_router.prompt_tokens_estimate": f.tokens})
        if ex.tenant:
            attrs["ai_router.tenant"] = ex.tenant
        if ex.usage:
            attrs.update(_usage(ex.usage))
        if ex.cost_usd is not None:
            attrs["ai_router.cost_usd"] = ex.cost_usd
        if ex.ttft_s is not None:
            attrs["ai_router.ttft_s"] = ex.ttft_s
        span.set_attributes(attrs)
        if error is not None or ex.status >= 500:
            span.set_attribute("error.type", error or str(ex.status))
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()

    # ------------------------------------------------------------ upstream attempts

    async def attempt(self, ex: Exchange, target: Candidate) -> Reply:
        """Call the backend inside an attempt span, sending its context upstream as `traceparent`."""
        tr: _Trace = ex.trace
        m = target.model
        b = target.backend
        op = OPERATIONS.get(ex.endpoint, ex.endpoint)
        client = getattr(b, "client", None)
        attrs: dict[str, Any] = {"gen_ai.operation.name": op, "gen_ai.request.model": m.id,
                                 "gen_ai.provider.name": PROVIDERS.get(b.spec.kind, b.spec.kind),
                                 "ai_router.backend": b.name, "ai_router.tier": target.tier or ""}
        if client is not None:
            attrs["server.address"] = client.host
            attrs["server.port"] = client.port
        span = self.tracer.start_span(f"{op} {m.id}", context=trace.set_span_in_context(tr.span),
                                      kind=SpanKind.CLIENT, attributes=attrs)
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier, context=trace.set_span_in_context(span))
        ex.upstream_headers = "".join(f"{k}: {v}\r\n" for k, v in carrier.items()).encode("latin-1")
        try:
            reply = await b.call(ex, target, ex.first_token_s)  # capacity and breaker (backends/base.py)
        except UpstreamFailure as e:
            span.set_attribute("error.type", e.reason)
            span.set_status(Status(StatusCode.ERROR, e.code))
            span.end()
            raise
        except BaseException as e:
            span.set_attribute("error.type", type(e).__name__)
            span.set_status(Status(StatusCode.ERROR))
            span.end()
            raise
        finally:
            ex.upstream_headers = b""
        span.set_attribute("http.response.status_code", reply.status)
        if reply.stream is not None:
            tr.attempt = span  # ends with the stream
        else:
            self._end_attempt(ex, span, None)
        return reply

    @staticmethod
    def _end_attempt(ex: Exchange, span: Any, error: str | None) -> None:
        if ex.usage:
            span.set_attributes(_usage(ex.usage))
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    tin, tout, _ = token_counts(usage)
    return {"gen_ai.usage.input_tokens": tin, "gen_ai.usage.output_tokens": tout}
