"""The backend contract: one upstream server, its connection pool, its wire format and its health.

A backend adapter turns an `Exchange` bound to one of its models into an upstream call and hands back a
`Reply` whose body is complete JSON or an async stream of raw SSE chunks (first chunk already read, so
the caller may still promote before anything reaches the client). It maps its library's and provider's
failures into `router.errors.UpstreamFailure` subclasses, so `retry` reasons about one hierarchy.
Stages never import aiohttp; only adapters do.

Health is passive: each call's outcome feeds a small breaker (three failures in a row mark the backend
unhealthy for `cooldown_s`, after which one request may try it again) and a latency average that routing
uses to break ties.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from router.config import BackendSpec

if TYPE_CHECKING:
    from router.exchange import Candidate, Exchange, Reply

FAILURES_TO_TRIP = 3
COOLDOWN_S = 10.0
EWMA_ALPHA = 0.2


class Backend:
    """Base class of an upstream adapter; subclasses implement `send` and may override `start`/`aclose`."""

    kind = "base"
    max_body_bytes = 64 << 20  # a JSON answer read whole is at most this (server.max_upstream_body_mb)

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.failures = 0
        self.down_until = 0.0
        self.latency_ms: float | None = None  # moving average of time to first byte

    async def start(self) -> None:
        """Open connection pools; called once the event loop runs."""

    async def aclose(self) -> None:
        """Close connection pools."""

    async def send(self, ex: Exchange, target: Candidate, first_byte_s: float | None = None) -> Reply:
        raise NotImplementedError

    # ------------------------------------------------------------ health

    @property
    def healthy(self) -> bool:
        return self.down_until <= time.monotonic()

    def record_success(self, first_byte_ms: float) -> None:
        self.failures = 0
        self.down_until = 0.0
        lat = self.latency_ms
        self.latency_ms = first_byte_ms if lat is None else lat + EWMA_ALPHA * (first_byte_ms - lat)

    def record_failure(self) -> None:
        self.failures += 1
        if self.failures >= FAILURES_TO_TRIP:
            self.down_until = time.monotonic() + COOLDOWN_S
