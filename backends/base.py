"""The backend contract: one upstream server, its connection pool, its wire format and its health.

A backend adapter turns an `Exchange` bound to one of its models into an upstream call and hands back a
`Reply` whose body is complete JSON or an async stream of raw SSE chunks (held back until the first
content token, so the caller may still promote before anything reaches the client). It maps its
library's and provider's failures into `router.errors.UpstreamFailure` subclasses, so `retry` reasons
about one hierarchy. Stages never import aiohttp; only adapters do. Adapters implement `send`; the
server calls `call`, which wraps it in the backend's resilience:

- capacity (backends/capacity.py): `max_concurrency` slots, a bounded wait for one (`Exchange.slot_wait_s`,
  set by `retry` to `queue_ms` when the request could spill elsewhere), else `Saturated` (503);
- the circuit breaker (backends/breaker.py): an open circuit refuses at once with `CircuitOpen` (503);
- readiness: a backend whose API key variable is unset, or whose health check fails, is not ready;
  a model the upstream answered 404 for (or a health check did not list) is unavailable until a
  later check lists it again (or, without health checks, for `MISSING_MODEL_S`).

What metrics and `/readyz` read (iss13's counters): `capacity.in_flight`, `capacity.queued`,
`capacity.waits`, `capacity.timeouts`, `breaker.state`, `breaker.opened`, `spills` (requests that left
this backend for another candidate, by reason: saturated | open | missing_model), `missing` (model id
-> why) and `not_ready()`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from backends.breaker import CLOSED, Breaker
from backends.capacity import Capacity
from router.config import BackendSpec
from router.errors import CircuitOpen, Saturated

if TYPE_CHECKING:
    from router.exchange import ByteStream, Candidate, Exchange, Reply

log = logging.getLogger("ai_router.backend")

EWMA_ALPHA = 0.2
MISSING_MODEL_S = 300.0  # without health checks, how long an upstream 404 keeps a model unavailable


class Backend:
    """Base class of an upstream adapter; subclasses implement `send` and may override `start`/`aclose`."""

    kind = "base"
    max_body_bytes = 64 << 20  # a JSON answer read whole is at most this (server.max_upstream_body_mb)

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.capacity = Capacity(spec.max_concurrency)
        self.breaker = Breaker(spec.name, spec.breaker)
        self.latency_ms: float | None = None  # moving average of time to first byte
        self.key_missing = False  # set by `start` when `api_key_env` names an unset variable
        self.probe_error: str | None = None  # the last health check's failure, None when it passed
        self.missing: dict[str, tuple[str, float]] = {}  # model id -> (why, until monotonic time)
        self.spills: dict[str, int] = {}

    async def start(self) -> None:
        """Open connection pools; called once the event loop runs."""

    async def aclose(self) -> None:
        """Close connection pools."""

    async def send(self, ex: Exchange, target: Candidate, first_token_s: float | None = None) -> Reply:
        raise NotImplementedError

    # ------------------------------------------------------------ the guarded call

    async def call(self, ex: Exchange, target: Candidate, first_token_s: float | None = None) -> Reply:
        """`send`, inside the breaker and holding a capacity slot until the answer or stream is done."""
        breaker = self.breaker
        if breaker.state != CLOSED and not breaker.allow():
            wait = breaker.retry_after()
            raise CircuitOpen(f"backend {self.name!r} is unavailable (circuit open: {breaker.reason})",
                              headers={"Retry-After": str(max(1, round(wait)))})
        cap = self.capacity
        if cap.in_flight < cap.limit and not cap.waiters:
            cap.in_flight += 1
        else:
            wait_s = ex.slot_wait_s if ex.slot_wait_s is not None else self.spec.timeouts.connect_s
            try:
                waited = await cap.acquire(wait_s)
            except TimeoutError:
                ex.queue_s += wait_s
                ex.upstream_s += wait_s
                raise Saturated(
                    f"backend {self.name!r} is at max_concurrency ({cap.limit}) and no slot freed within "
                    f"{wait_s * 1000:g} ms", headers={"Retry-After": "1"},
                ) from None
            ex.queue_s += waited
            ex.upstream_s += waited
        try:
            reply = await self.send(ex, target, first_token_s)
        except BaseException:
            cap.release()
            raise
        if reply.stream is None:
            cap.release()
        else:
            reply.stream = SlotStream(reply.stream, cap)
        return reply

    # ------------------------------------------------------------ health

    @property
    def healthy(self) -> bool:
        """Ready to take requests: key present, last health check passed, circuit not open."""
        if self.key_missing or self.probe_error is not None:
            return False
        b = self.breaker
        return b.state == CLOSED or b.available

    def usable(self, model_id: str, last_resort: bool = False) -> bool:
        """Healthy, and the model is not known to be missing upstream. As a `last_resort`, a backend whose
        health check failed counts too (it may have come up since): only a missing key or an open circuit
        rule it out."""
        if not self.healthy and not (last_resort and self.probe_error is not None and not self.key_missing
                                     and self.breaker.available):
            return False
        return not self.missing or self.model_available(model_id)

    def model_available(self, model_id: str) -> bool:
        m = self.missing.get(model_id)
        if m is None:
            return True
        if m[1] <= time.monotonic():
            del self.missing[model_id]
            return True
        return False

    def not_ready(self) -> str | None:
        """Why the backend cannot take requests, or None."""
        if self.key_missing:
            return f"API key variable ${self.spec.api_key_env} is not set"
        if self.probe_error is not None:
            return f"health check failed: {self.probe_error}"
        b = self.breaker
        if not (b.state == CLOSED or b.available):
            return f"circuit open ({b.reason}); retry in {b.retry_after():.1f}s"
        if all(not self.model_available(m.id) for m in self.spec.models):
            return "none of its models is available upstream"
        return None

    def mark_missing(self, model_id: str, why: str, for_s: float = MISSING_MODEL_S) -> None:
        if model_id not in self.missing:
            log.warning("backend %s: model %r is unavailable (%s)", self.name, model_id, why)
        self.missing[model_id] = (why, time.monotonic() + for_s)

    def mark_present(self, model_id: str) -> None:
        if self.missing.pop(model_id, None) is not None:
            log.info("backend %s: model %r is available again", self.name, model_id)

    @property
    def failures(self) -> int:
        """Failures in a row (the breaker's count)."""
        return self.breaker.consecutive

    def count_spill(self, reason: str) -> None:
        self.spills[reason] = self.spills.get(reason, 0) + 1

    def record_success(self, first_byte_ms: float) -> None:
        self.breaker.success()
        lat = self.latency_ms
        self.latency_ms = first_byte_ms if lat is None else lat + EWMA_ALPHA * (first_byte_ms - lat)

    def record_failure(self, why: str = "failure") -> None:
        self.breaker.failure(why)

    # ------------------------------------------------------------ health checks (backends/health.py)

    def probe_path(self) -> str:
        """Path under base_url that lists the upstream's models (`GET`)."""
        return "/models"

    def probe_headers(self) -> dict[str, str]:
        """Headers of a health-check request (the adapter's credentials)."""
        return {}

    def probe_models(self, body: Any) -> set[str] | None:
        """Model ids in an OpenAI-style `/models` answer (`{"data": [{"id": ...}]}`), None if unreadable."""
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            return None
        return {str(m["id"]) for m in data if isinstance(m, dict) and "id" in m}


class SlotStream:
    """A backend's stream that gives its capacity slot back when closed; iteration is the inner one's own
    (no per-chunk layer)."""

    __slots__ = ("capacity", "inner")

    def __init__(self, inner: ByteStream, capacity: Capacity) -> None:
        self.inner = inner
        self.capacity: Capacity | None = capacity

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.inner.__aiter__()

    @property
    def usage(self) -> dict[str, Any] | None:
        return getattr(self.inner, "usage", None)

    def __getattr__(self, name: str) -> Any:  # what stages read off the stream (`seen`, …) is the inner one's
        return getattr(self.inner, name)

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            cap, self.capacity = self.capacity, None
            if cap is not None:
                cap.release()
