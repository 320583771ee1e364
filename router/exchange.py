"""The per-request objects every stage shares: the Exchange going in, the Reply coming back.

The server builds one `Exchange` per proxied request after parsing the body once; stages read and fill
it (tenant, features, decision, usage, cost) and the terminal step hands it to a backend. A `Reply` is
either a complete body (`body`) or a stream of raw SSE byte chunks (`stream`), which the server pumps
to the client once. All classes use `__slots__`: they are made on every request.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from backends.base import Backend
    from router.auth import ApiKey
    from router.config import ModelSpec


class ByteStream(Protocol):
    """An async iterator of raw byte chunks that can be closed early."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...
    async def aclose(self) -> None: ...


@dataclass(slots=True)
class Features:
    """What the classifier learnt about the request."""

    task: str = "chat"
    complexity: str = "low"
    difficulty: float = 0.0  # estimated P(local answer worse than cloud), in [0, 1]; complexity is read off it
    confidence: float = 1.0
    tokens: int = 0
    tokens_exact: bool = True
    signals: list[str] = field(default_factory=list)
    has_tools: bool = False
    has_images: bool = False
    wants_json: bool = False
    needs_native: bool = False  # a Responses request only a `capabilities: [responses]` model can serve
    max_output_tokens: int | None = None


@dataclass(slots=True)
class Candidate:
    """One model on one backend that may serve the request."""

    model: ModelSpec
    backend: Backend
    tier: str | None

    def describe(self) -> dict[str, Any]:
        return {"model": self.model.id, "backend": self.model.backend, "tier": self.tier}


@dataclass(slots=True)
class Decision:
    """Where the request goes: the first candidate, then the fallbacks in order."""

    candidates: list[Candidate]
    reasons: list[str] = field(default_factory=list)
    rule: int | None = None

    @property
    def primary(self) -> Candidate:
        return self.candidates[0]


@dataclass(slots=True)
class Attempt:
    model: str
    backend: str
    tier: str | None
    outcome: str  # ok | error | timeout | overload | slow_first_token | missing_model | saturated | open
    ms: float


class Exchange:
    """One request's journey through the pipeline."""

    __slots__ = (
        "attempts",
        "body",
        "cache",
        "client_model",
        "cost_usd",
        "counts",
        "decision",
        "dry_run",
        "egress",
        "endpoint",
        "features",
        "findings",
        "finish_hooks",
        "first_token_s",
        "gate",
        "headers",
        "key",
        "key_name",
        "local_only",
        "max_tier",
        "overhead_s",
        "prefer",
        "queue_s",
        "ratelimit",
        "raw",
        "reply_headers",
        "request_id",
        "slot_wait_s",
        "spend",
        "spilled",
        "started",
        "status",
        "stream",
        "target",
        "tenant",
        "trace",
        "truncated",
        "ttft_s",
        "upstream_headers",
        "upstream_s",
        "usage",
    )

    def __init__(
        self,
        request_id: str,
        endpoint: str,
        body: dict[str, Any],
        raw: bytes | None,
        headers: Any,
    ) -> None:
        self.request_id = request_id
        self.endpoint = endpoint  # chat | completions | embeddings | responses | messages
        self.body = body
        self.raw = raw  # the client's bytes; a stage that changes `body` sets this to None
        self.headers = headers
        self.started = time.perf_counter()
        model = body.get("model")
        self.client_model: str = model if isinstance(model, str) else "auto"
        self.stream: bool = body.get("stream") is True
        self.tenant: str | None = None
        self.key_name: str | None = None
        self.key: ApiKey | None = None  # the client key's allowances (router/auth.py), set by `auth`
        self.local_only = False  # set by `redact` (policy local_only): `route` keeps local candidates only
        self.findings: dict[str, int] | None = None  # redaction findings per kind (never values), by `redact`
        self.egress: Callable[[Exchange, Candidate], None] | None = None  # called at dispatch with the target
        self.features: Features | None = None
        self.decision: Decision | None = None
        self.target: Candidate | None = None
        self.attempts: list[Attempt] = []
        self.usage: dict[str, Any] | None = None
        # (usage, its counts, the model it was priced for, that cost): cost.usage_counts / usage_cost
        self.counts: tuple[Any, tuple[int, int, int], Any, float] | None = None
        self.cost_usd: float | None = None
        self.prefer: str | None = None
        self.max_tier: str | None = None
        self.dry_run = False
        self.first_token_s: float | None = None  # the first content token's deadline, set by retry (first_token_ms)
        self.status = 0
        self.upstream_s = 0.0  # time spent waiting on upstreams, so overhead = elapsed - upstream_s
        self.overhead_s = 0.0  # the router's own time until the answer's head (set by the server)
        self.ttft_s: float | None = None  # streams: time until the first event was ready to leave
        self.trace: Any = None  # the request's tracing span when tracing is on (router/observe/tracing.py)
        self.upstream_headers = b""  # extra header lines for upstream calls, encoded (W3C traceparent)
        self.truncated = False  # the answer stopped at its token limit (finish_reason: length)
        # called once when the exchange ends: after the answer (or stream) is done, or after an error
        # answer (`status` >= 400); hooks must be cheap and must not raise
        self.finish_hooks: list[Callable[[Exchange], None]] = []
        # a per-attempt hook around the upstream call, set by a stage (budget): gate(ex, target, send)
        self.gate: Callable[[Exchange, Candidate, Callable[..., Awaitable[Reply]]], Awaitable[Reply]] | None = None
        self.slot_wait_s: float | None = None  # how long to wait for a backend slot (retry sets it; None: long)
        self.queue_s = 0.0  # time spent waiting for backend slots
        self.spilled: str | None = None  # the tier a saturated/open backend's request spilled to
        self.cache: str | None = None  # hit | miss | bypass: what the `cache` stage did (None: it did not run)
        # headers a stage adds to whatever answer this request gets, errors included (x-ratelimit-*,
        # x-router-cache): the server merges them once, so a stage need not await the reply to copy its headers
        self.reply_headers: dict[str, str] | None = None
        self.ratelimit: Any = None  # the `ratelimit` stage's, for its correction after the answer
        self.spend: Any = None  # the `budget` stage's, for its gate

    def add_reply_headers(self, headers: dict[str, str]) -> None:
        """Headers for whatever answer this request gets (`reply_headers`; the dict may be kept as it is)."""
        if self.reply_headers is None:
            self.reply_headers = headers
        else:
            self.reply_headers.update(headers)


class Reply:
    """What comes back through the stages: a complete body, or a stream of raw SSE chunks.

    `body` is bytes-like: a large upstream answer arrives as the bytearray it was gathered in (no copy)."""

    __slots__ = ("body", "headers", "status", "stream")

    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes | None = None,
        stream: ByteStream | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.stream = stream


CallNext = Callable[[Exchange], Awaitable[Reply]]
