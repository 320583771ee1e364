"""The end of every request's journey: one call that feeds metrics, the access log and tracing.

The server calls `Observer.finish(ex, error)` once per proxied request, after the JSON answer is built
or the stream has ended (the pump's finish hook: nothing per chunk), and `rejected(...)` for a request
refused before it became an Exchange. A once-a-second tick on the loop flushes the access log, samples
the backend gauges and logs breaker changes as events. One Observer per loaded config; the metrics it
feeds belong to the process, so they survive a reload.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from router.cost import Baseline
from router.observe.accesslog import AccessLog
from router.observe.logs import event
from router.observe.metrics import Metrics, breaker_state, process_metrics
from router.spend import report

if TYPE_CHECKING:
    from router.config import Config
    from router.exchange import Exchange

log = logging.getLogger("ai_router")
TICK_S = 1.0
SPEND_EVERY_S = 15.0  # the spend and budget gauges are read from the state store this often
_started_services = 0


class Observer:
    __slots__ = ("_breakers", "_spend_at", "_spend_task", "_timer", "access", "backends", "baseline", "config",
                 "metrics", "store", "tenants", "tracer")

    def __init__(self, config: Config, backends: dict[str, Any], metrics: Metrics | None = None) -> None:
        self.config = config
        self.backends = backends
        self.access = AccessLog(config.logging.access_log, config.logging.format)
        spec = config.metrics
        self.metrics = (metrics or process_metrics(spec.decisions)) if spec.enabled else None
        self.tracer: Any = None
        if config.tracing.enabled:
            from router.observe.tracing import Tracer  # the optional `otel` extra: imported only when on

            self.tracer = Tracer(config.tracing)
        self.baseline = Baseline(config.models(), config.routing.tiers)
        self.store: Any = None
        self.tenants: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._breakers: dict[str, str] = {}
        self._spend_at = 0.0
        self._spend_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self, store: Any = None, tenants: Any = None) -> None:
        """Begin ticking; `store` and `tenants` feed the spend and budget gauges."""
        global _started_services
        self.store, self.tenants = store, tenants
        _started_services += 1
        kind = "start" if _started_services == 1 else "reload"
        cfg = self.config
        event(log, kind, "config loaded" if kind == "reload" else "worker started", pid=os.getpid(),
              config=cfg.source, backends=sorted(self.backends), pipeline=list(cfg.pipeline),
              metrics=cfg.metrics.enabled, tracing=cfg.tracing.enabled, log_format=cfg.logging.format)
        self._breakers = {name: breaker_state(b) for name, b in self.backends.items()}
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(TICK_S, self._tick)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._spend_task is not None:
            self._spend_task.cancel()
        if self.metrics is not None:
            self.metrics.publish()  # a draining worker's last counts stay in the others' sums
        self.access.flush()
        if self.tracer is not None:
            self.tracer.shutdown()

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.tick()
            now = time.monotonic()
            if (self.metrics is not None and self.store is not None and self._spend_task is None
                    and now - self._spend_at >= SPEND_EVERY_S):
                self._spend_at = now
                self._spend_task = loop.create_task(self.sample_spend())
        finally:
            self._timer = loop.call_later(TICK_S, self._tick)

    def tick(self) -> None:
        """Flush the access log, sample backend gauges, log breaker changes."""
        self.access.flush()
        if self.metrics is not None:
            self.metrics.sample(self.backends.values())
            self.metrics.publish()
        for name, b in self.backends.items():
            state = breaker_state(b)
            if state != self._breakers.get(name):
                self._breakers[name] = state
                event(log, "breaker", f"backend {name}: breaker {state}",
                      logging.WARNING if state == "open" else logging.INFO,
                      backend=name, state=state, failures=getattr(b, "failures", None))

    async def sample_spend(self) -> None:
        """Read spend and remaining budgets per tenant from the state store into the gauges."""
        try:
            rows = (await report(self.store, self.tenants, "day"))["tenants"]  # both windows' spend and budgets
            if self.metrics is not None:
                self.metrics.sample_spend(rows)
        except Exception:
            log.exception("reading spend from the state store for the metrics failed")
        finally:
            self._spend_task = None

    # ------------------------------------------------------------ per request

    def begin(self, ex: Exchange, headers: Any) -> None:
        """A request became an Exchange: open its span when tracing is on."""
        if self.tracer is not None:
            self.tracer.begin(ex, headers)

    def finish(self, ex: Exchange, error: str | None = None) -> None:
        """The request is over (answer sent or stream ended): metrics, access line, span end."""
        m = self.metrics
        if m is not None:
            m.observe(ex, error, self.baseline)
        self.access.write(ex, error)
        if ex.trace is not None:
            self.tracer.end(ex, error)

    def rejected(self, endpoint: str, status: int, code: str) -> None:
        if self.metrics is not None:
            self.metrics.rejected(endpoint, status, code)
