"""The access log: one line per proxied request, written after the answer (or stream) ends.

It records where the request went and why (tenant, task, complexity, tokens, tier, model, backend,
every attempt with its outcome, what the cache did), what it cost and how long it took (latency, time to first token,
the router's own overhead, upstream time), and never the prompt, the completion, keys or headers.
The line is a stdlib `logging` record on the `ai_router.access` logger, rendered by
router/observe/logs.py as JSON (orjson) or text and written in batches, not a syscall per request. When
the logger has only the router's own buffered JSON handler (how `ai-router serve` sets it up), no record
is made: the line is its time, the fields every request of its kind shares (rendered once per kind), and
one `orjson.dumps` of the request's own fields, giving the bytes the formatter would. Off
(`logging.access_log: false`) it costs one attribute check.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import orjson

from router.cost import usage_counts
from router.errors import MAX_ECHO, echo
from router.exchange import Exchange
from router.observe.logs import ACCESS_LOGGER, BufferedHandler, JsonFormatter, access_handler, make_formatter, ms_time

_INFO = logging.INFO
_OPTS = orjson.OPT_APPEND_NEWLINE


class AccessRecord(logging.LogRecord):
    """An access line's LogRecord, made cheaply: `LogRecord.__init__` looks up the caller's file, the thread
    and process names on every call; an access line needs none of them (a third of its cost)."""

    def __init__(self, fields: dict[str, Any]) -> None:  # no super().__init__: on purpose, see above
        now = time.time()
        self.name = ACCESS_LOGGER
        self.msg = "request"
        self.args = None
        self.levelname = "INFO"
        self.levelno = _INFO
        self.pathname = self.filename = self.module = ""
        self.lineno = 0
        self.funcName = self.stack_info = self.exc_info = self.exc_text = None
        self.created = now
        self.msecs = (now - int(now)) * 1000
        self.relativeCreated = (now - logging._startTime) * 1000
        self.thread = self.threadName = self.taskName = None
        self.process = os.getpid()  # after a fork, the worker's
        self.processName = "MainProcess"
        self.fields = fields


class AccessLog:
    """Writes access lines through the `ai_router.access` logger, or straight to `fd` when one is given
    (a private handler, for embedding and tests)."""

    __slots__ = ("_handler", "_logger", "_sink", "enabled")

    def __init__(self, enabled: bool, fmt: str = "json", fd: int | None = None) -> None:
        self._logger = lg = logging.getLogger(ACCESS_LOGGER)
        self._handler: BufferedHandler | None = None
        if fd is not None:
            self._handler = BufferedHandler(fd)
            self._handler.setFormatter(make_formatter(fmt))
            self._sink = self._handler.handle
            self.enabled = enabled
            return
        if enabled and access_handler() is None:  # `ai-router serve` configured logging; a library user may not
            h = BufferedHandler()
            h.setFormatter(make_formatter(fmt))
            h._ai_router = True  # type: ignore[attr-defined]
            lg.addHandler(h)
            lg.setLevel(_INFO)
            lg.propagate = False
        self._sink = lg.handle
        self.enabled = enabled and lg.isEnabledFor(_INFO)

    def flush(self) -> None:
        h = self._handler or access_handler()
        if h is not None:
            h.flush()

    def write(self, ex: Exchange, error: str | None = None) -> None:
        if not self.enabled:
            return
        h = self._direct()
        if h is None:
            self._sink(AccessRecord(fields(ex, error)))
            return
        line = _line(ex, error)  # the line JsonFormatter renders for this record, without making the record
        lock = h.lock  # (acquire/release: half of what `with` costs)
        lock.acquire()  # type: ignore[union-attr]
        try:
            h.add(line)
        finally:
            lock.release()  # type: ignore[union-attr]

    def _direct(self) -> BufferedHandler | None:
        """The handler to append the JSON line to straight away, when it is the only one, in JSON, with no
        filters (how `ai-router serve` sets it up); else None: the line goes through `logging` as a record,
        so any other handler or filter an embedding application added sees it."""
        h = self._handler
        if h is None:
            lg = self._logger
            hs = lg.handlers
            if len(hs) != 1 or lg.filters or lg.disabled:
                return None
            h = hs[0]  # type: ignore[assignment]
        if type(h) is not BufferedHandler or h.filters or type(h.formatter) is not JsonFormatter:
            return None
        return h


# The access line's fields in their order: first those every request of one kind shares (where it went, what the
# cache did), then the request's own; placeholders, so a line is a copy of a template with values set in place.
_KIND_FIELDS = ("endpoint", "tenant", "requested", "model", "backend", "tier", "location", "task", "complexity",
                "usage_from", "cache", "spilled")
_OWN_FIELDS = ("request_id", "status", "difficulty", "prompt_tokens_estimate", "stream", "attempts", "prompt_tokens",
               "completion_tokens", "cached_tokens", "queue_ms", "cost_usd", "latency_ms", "ttft_ms", "overhead_ms",
               "upstream_ms")
_FIELDS: dict[str, Any] = dict.fromkeys(("event", *_KIND_FIELDS, *_OWN_FIELDS))
_FIELDS["event"] = "request"
_OWN: dict[str, Any] = dict.fromkeys(_OWN_FIELDS)
# the head `JsonFormatter` renders before an access record's fields ("ts" set per line)
_HEAD: dict[str, Any] = {"level": "info", "logger": ACCESS_LOGGER, "msg": "request", "event": "request"}
# per kind of request: the rendered middle of its lines, `,"level":…,"spilled":…,` (bounded; see `_kind`)
_KINDS: dict[tuple[Any, ...], tuple[Any, bytes]] = {}
KINDS_MAX = 1024


def fields(ex: Exchange, error: str | None = None) -> dict[str, Any]:
    """The access line's fields for one finished exchange."""
    rec = _FIELDS.copy()
    _kind_fields(rec, ex)
    return _own(rec, ex, error)


def _line(ex: Exchange, error: str | None) -> bytes:
    """The line `JsonFormatter` renders for `AccessRecord(fields(ex, error))`, made as three pieces: the time, the
    kind's middle (rendered once per kind), the request's own fields (one orjson call on a 15-key dict)."""
    own = orjson.dumps(_own(_OWN.copy(), ex, error), option=_OPTS, default=str)
    return b'{"ts":' + orjson.dumps(ms_time(time.time())) + _kind(ex) + own[1:]


def _kind(ex: Exchange) -> bytes:
    usage = ex.usage
    t = ex.target
    f = ex.features
    key = (ex.endpoint, ex.tenant, ex.client_model, id(t), f.task if f is not None else None,
           f.complexity if f is not None else None,
           None if not usage else "router" if usage.get("x_router_counted") else "upstream", ex.cache, ex.spilled)
    hit = _KINDS.get(key)
    if hit is None or hit[0] is not t:
        rec = _HEAD.copy()
        rec.update(dict.fromkeys(_KIND_FIELDS))
        _kind_fields(rec, ex)
        if len(_KINDS) >= KINDS_MAX:
            _KINDS.clear()
        # (the target is kept with it, so its id is not reused while the entry lives)
        hit = _KINDS[key] = (t, b"," + orjson.dumps(rec, default=str)[1:-1] + b",")
    return hit[1]


def _kind_fields(rec: dict[str, Any], ex: Exchange) -> None:
    """Set the fields a kind of request shares into `rec`."""
    rec["endpoint"] = ex.endpoint
    rec["tenant"] = ex.tenant
    requested = ex.client_model
    if len(requested) > MAX_ECHO or not requested.isascii():  # a client value: truncated, valid UTF-8
        requested = echo(requested)
    rec["requested"] = requested
    t = ex.target
    if t is not None:
        m = t.model
        rec["model"] = m.id
        rec["backend"] = m.backend
        rec["tier"] = t.tier
        rec["location"] = m.location
    f = ex.features
    if f is not None:
        rec["task"] = f.task
        rec["complexity"] = f.complexity
    usage = ex.usage
    if usage:
        rec["usage_from"] = "router" if usage.get("x_router_counted") else "upstream"
    rec["cache"] = ex.cache
    rec["spilled"] = ex.spilled  # the tier a saturated (or open) backend's request went to instead


def _own(rec: dict[str, Any], ex: Exchange, error: str | None) -> dict[str, Any]:
    """Set one exchange's own values into `rec`, a copy of `_FIELDS` or `_OWN`."""
    rec["request_id"] = ex.request_id
    rec["status"] = ex.status
    f = ex.features
    if f is not None:
        rec["difficulty"] = f.difficulty
        rec["prompt_tokens_estimate"] = f.tokens
    rec["stream"] = ex.stream
    # durations: milliseconds to the microsecond, as `round(s * 1000, 3)` gives for these non-negative
    # values, without `round`'s decimal conversion (`// 1` is `int()` for them, as a float: no int object)
    rec["attempts"] = attempts = []  # a loop, not a comprehension: 3.11 makes a function object for one
    for a in ex.attempts:
        attempts.append({"model": a.model, "backend": a.backend, "tier": a.tier, "outcome": a.outcome,
                         "ms": (a.ms * 1000 + 0.5) // 1 / 1000})
    if ex.usage:
        rec["prompt_tokens"], rec["completion_tokens"], rec["cached_tokens"] = usage_counts(ex)  # type: ignore[misc]
    rec["queue_ms"] = (ex.queue_s * 1_000_000 + 0.5) // 1 / 1000  # waiting for backend slots (capacity)
    rec["cost_usd"] = ex.cost_usd
    rec["latency_ms"] = ((time.perf_counter() - ex.started) * 1_000_000 + 0.5) // 1 / 1000
    ttft = ex.ttft_s
    if ttft is not None:
        rec["ttft_ms"] = (ttft * 1_000_000 + 0.5) // 1 / 1000
    rec["overhead_ms"] = (ex.overhead_s * 1_000_000 + 0.5) // 1 / 1000
    rec["upstream_ms"] = (ex.upstream_s * 1_000_000 + 0.5) // 1 / 1000
    if error:
        rec["error"] = error
    if ex.findings:
        rec["redacted"] = ex.findings  # redaction: kinds and counts, never values
    return rec
