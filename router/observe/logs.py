"""Logging set-up: stdlib `logging`, rendered as one JSON object per line (orjson) or as plain text.

Two streams, both on stderr, both in `logging.format` (json | text):
- `ai_router` and its children: operational events (start-up, reload, breaker changes, warnings,
  tracebacks of bugs), written at once;
- `ai_router.access`: one line per request (router/observe/accesslog.py), gathered by
  `BufferedHandler` and written in one `write` at most once a second (or at 64 KiB, and at shutdown).

Structured fields travel in `extra={"fields": {...}}`; the JSON formatter merges them into the line,
the text formatter appends them as `key=value`. Nothing here ever sees prompt or completion content.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import orjson

ACCESS_LOGGER = "ai_router.access"
FLUSH_BYTES = 65536
_OPTS = orjson.OPT_APPEND_NEWLINE


def event(logger: logging.Logger, name: str, message: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log an operational event (`start`, `reload`, `breaker`…) with structured fields."""
    if logger.isEnabledFor(level):
        logger.log(level, message, extra={"fields": {"event": name, **fields}})


def ms_time(t: float) -> float:
    """A Unix time to the millisecond, as `round(t, 3)` gives it for these positive values, without `round`'s
    decimal conversion (a tenth of an access line's cost)."""
    return (t * 1000 + 0.5) // 1 / 1000  # (`// 1`: int() as a float, exact below 2**53, without an int object)


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", …fields}` per line, serialised with orjson."""

    def render(self, record: logging.LogRecord) -> bytes:
        rec: dict[str, Any] = {
            "ts": ms_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = record.__dict__.get("fields")
        if fields:
            rec.update(fields)
        if record.exc_info:
            rec["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(rec, option=_OPTS, default=str)

    def format(self, record: logging.LogRecord) -> str:
        return self.render(record)[:-1].decode()


class TextFormatter(logging.Formatter):
    """`2026-01-01T12:00:00.123Z INFO ai_router: message key=value …` per line."""

    def render(self, record: logging.LogRecord) -> bytes:
        return (self.format(record) + "\n").encode()

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = f"{ts}.{int(record.msecs):03d}Z {record.levelname} {record.name}: {record.getMessage()}"
        fields = record.__dict__.get("fields")
        if fields:
            line += " " + " ".join(f"{k}={_text(v)}" for k, v in fields.items() if v is not None)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v if v and " " not in v and '"' not in v else orjson.dumps(v).decode()
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return orjson.dumps(v).decode()
    return str(v)


class BufferedHandler(logging.Handler):
    """Gathers rendered lines and writes them to a file descriptor in one `write` per flush.

    `flush()` runs once a second from the observer's tick, when 64 KiB have gathered, at close, and at
    once for a record at WARNING or above."""

    def __init__(self, fd: int | None = None) -> None:
        super().__init__()
        self.fd = fd  # None: whatever sys.stderr is at flush time
        self._buf: list[bytes] = []
        self._size = 0

    def emit(self, record: logging.LogRecord) -> None:
        f = self.formatter
        if isinstance(f, (JsonFormatter, TextFormatter)):
            line = f.render(record)
        else:
            line = (self.format(record) + "\n").encode()
        self.add(line)
        if record.levelno >= logging.WARNING:
            self.flush()

    def add(self, line: bytes) -> None:
        """Gather one rendered line (the access log's own path, router/observe/accesslog.py, calls this)."""
        self._buf.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._buf:
            return
        data = b"".join(self._buf)
        self._buf.clear()
        self._size = 0
        try:
            fd = self.fd if self.fd is not None else sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # stderr replaced by an object without a descriptor
            try:
                sys.stderr.write(data.decode("utf-8", "replace"))
            except (AttributeError, OSError, ValueError):
                pass
            return
        try:
            while data:
                data = data[os.write(fd, data):]
        except OSError:
            pass  # stderr closed: nothing better to do with a log line

    def close(self) -> None:
        self.flush()
        super().close()


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time (it may be replaced after set-up, as pytest does)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def make_formatter(fmt: str) -> logging.Formatter:
    return TextFormatter() if fmt == "text" else JsonFormatter()


def setup_logging(level: str = "info", fmt: str = "json", fd: int | None = None) -> BufferedHandler:
    """Configure `ai_router` (operational, level `level`) and `ai_router.access` (per request, buffered).

    Replaces handlers installed by an earlier call (a reload may change the format); returns the access
    handler, which the observer flushes."""
    formatter = make_formatter(fmt)
    root = logging.getLogger("ai_router")
    root.setLevel(level.upper())
    root.propagate = False
    for h in list(root.handlers):
        if getattr(h, "_ai_router", False):
            root.removeHandler(h)
    h: logging.Handler = StderrHandler() if fd is None else logging.StreamHandler(os.fdopen(os.dup(fd), "w",
                                                                                            buffering=1))
    h.setFormatter(formatter)
    h._ai_router = True  # type: ignore[attr-defined]
    root.addHandler(h)
    access = logging.getLogger(ACCESS_LOGGER)
    access.setLevel(logging.INFO)
    access.propagate = False
    for old in list(access.handlers):
        if getattr(old, "_ai_router", False):
            old.close()
            access.removeHandler(old)
    buffered = BufferedHandler(fd)
    buffered.setFormatter(formatter)
    buffered._ai_router = True  # type: ignore[attr-defined]
    access.addHandler(buffered)
    return buffered


def access_handler() -> BufferedHandler | None:
    for h in logging.getLogger(ACCESS_LOGGER).handlers:
        if isinstance(h, BufferedHandler):
            return h
    return None
