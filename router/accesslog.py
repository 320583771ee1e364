"""The access log: one JSON line per proxied request, written after the answer (or stream) ends.

It records the decision, attempts, tokens, cost and timings, and never the prompt, the completion,
keys or headers. Off (`logging.access_log: false`) it costs one attribute check.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

from router.exchange import Exchange

access = logging.getLogger("ai_router.access")


class AccessLog:
    __slots__ = ("enabled",)

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and access.isEnabledFor(logging.INFO)

    def write(self, ex: Exchange, error: str | None = None) -> None:
        if not self.enabled:
            return
        t = ex.target
        f = ex.features
        u = ex.usage or {}
        rec = {
            "ts": round(time.time(), 3),
            "request_id": ex.request_id,
            "endpoint": ex.endpoint,
            "status": ex.status,
            "tenant": ex.tenant,
            "requested": ex.client_model,
            "model": t.model.id if t else None,
            "backend": t.model.backend if t else None,
            "tier": t.tier if t else None,
            "task": f.task if f else None,
            "complexity": f.complexity if f else None,
            "stream": ex.stream,
            "attempts": [a.outcome for a in ex.attempts],
            "prompt_tokens": u.get("prompt_tokens", u.get("input_tokens")),
            "completion_tokens": u.get("completion_tokens", u.get("output_tokens")),
            "cost_usd": ex.cost_usd,
            "duration_ms": round((time.perf_counter() - ex.started) * 1000, 3),
            "upstream_ms": round(ex.upstream_s * 1000, 3),
        }
        if error:
            rec["error"] = error
        access.info(orjson.dumps(rec).decode())


def setup_logging(level: str) -> None:
    """Plain-text operational logs and raw JSON access lines, both to stderr."""
    root = logging.getLogger("ai_router")
    root.setLevel(level.upper())
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(h)
        root.propagate = False
    access.setLevel(logging.INFO)
    if not access.handlers:
        ah = logging.StreamHandler(sys.stderr)
        ah.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(ah)
        access.propagate = False
