"""The access log: one JSON line per proxied request, written after the answer (or stream) ends.

It records the decision, attempts, tokens, cost and timings, and never the prompt, the completion,
keys or headers. Lines are buffered and written to stderr in one `write` at most once a second (or when
64 KiB have gathered, and at shutdown), so a request pays for one `orjson.dumps`, not for a syscall.
Off (`logging.access_log: false`) it costs one attribute check.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

import orjson

from router.cost import token_counts
from router.errors import echo
from router.exchange import Exchange

FLUSH_EVERY_S = 1.0
FLUSH_BYTES = 65536


class AccessLog:
    __slots__ = ("_buf", "_fd", "_size", "_timer", "enabled")

    def __init__(self, enabled: bool, fd: int | None = None) -> None:
        self.enabled = enabled
        self._fd = sys.stderr.fileno() if fd is None else fd
        self._buf: list[bytes] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Flush once a second on the running loop."""
        if self.enabled and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_EVERY_S, self._tick)

    def _tick(self) -> None:
        self.flush()
        self._timer = asyncio.get_running_loop().call_later(FLUSH_EVERY_S, self._tick)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()

    def flush(self) -> None:
        if not self._buf:
            return
        data = b"".join(self._buf)
        self._buf.clear()
        self._size = 0
        try:
            while data:
                data = data[os.write(self._fd, data):]
        except OSError:
            pass  # stderr closed: nothing better to do with an access line

    def write(self, ex: Exchange, error: str | None = None) -> None:
        if not self.enabled:
            return
        t = ex.target
        f = ex.features
        tokens_in, tokens_out, _ = token_counts(ex.usage) if ex.usage else (None, None, None)
        rec = {
            "ts": round(time.time(), 3),
            "request_id": ex.request_id,
            "endpoint": ex.endpoint,
            "status": ex.status,
            "tenant": ex.tenant,
            "requested": echo(ex.client_model),  # a client value: truncated
            "model": t.model.id if t else None,
            "backend": t.model.backend if t else None,
            "tier": t.tier if t else None,
            "task": f.task if f else None,
            "complexity": f.complexity if f else None,
            "difficulty": f.difficulty if f else None,
            "stream": ex.stream,
            "attempts": [a.outcome for a in ex.attempts],
            "prompt_tokens": tokens_in,
            "completion_tokens": tokens_out,
            "cost_usd": ex.cost_usd,
            "duration_ms": round((time.perf_counter() - ex.started) * 1000, 3),
            "upstream_ms": round(ex.upstream_s * 1000, 3),
        }
        if error:
            rec["error"] = error
        line = orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE)
        self._buf.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()


def setup_logging(level: str) -> None:
    """Plain-text operational logs on stderr (the access log writes its own JSON lines)."""
    root = logging.getLogger("ai_router")
    root.setLevel(level.upper())
    if not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(h)
        root.propagate = False
