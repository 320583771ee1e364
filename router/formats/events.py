"""Server-sent events, both ways, for streams that must be translated (pass-through streams never come here).

`EventDecoder.feed(chunk)` returns the complete events in a chunk as `(name, data)` pairs (an event split
across chunks waits for its end; `\n`, `\r\n` and `\r` line ends; `:` comments and unknown fields skipped;
several `data:` lines joined with `\n` as the SSE spec says). One event is at most `MAX_EVENT_BYTES`: a
longer one is a broken upstream, not something to buffer without bound. `encode(name, obj)` writes one event.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_EVENT_BYTES = 4 << 20


class EventTooLarge(ValueError):
    """An SSE event grew past MAX_EVENT_BYTES without ending."""


class EventDecoder:
    """Incremental SSE decoder: bytes in, `(event name or None, data bytes)` out."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        buf = self.pending + chunk if self.pending else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = buf.rfind(b"\n\n")
        if end < 0:
            if len(buf) > MAX_EVENT_BYTES:
                raise EventTooLarge(f"an SSE event exceeded {MAX_EVENT_BYTES} bytes")
            self.pending = buf
            return []
        self.pending = buf[end + 2 :]
        out: list[tuple[str | None, bytes]] = []
        for block in buf[:end].split(b"\n\n"):
            if block:
                ev = _parse(block)
                if ev is not None:
                    out.append(ev)
        return out

    def flush(self) -> list[tuple[str | None, bytes]]:
        """Whatever is left when the stream ends (an unterminated last event)."""
        rest, self.pending = self.pending, b""
        ev = _parse(rest.strip(b"\n")) if rest.strip() else None
        return [ev] if ev is not None else []


def _parse(block: bytes) -> tuple[str | None, bytes] | None:
    if block.startswith(b"data: ") and b"\n" not in block:  # the common case: one data line
        return None, block[6:]
    name: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line[0] == 0x3A:  # ":" comment
            continue
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    if not data and name is None:
        return None
    return name, b"\n".join(data)


def encode(name: str, obj: Any) -> bytes:
    """One named SSE event with a JSON payload."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def encode_data(obj: Any) -> bytes:
    """One unnamed SSE event (`data: {...}`), as chat completion streams send them."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


DONE = b"data: [DONE]\n\n"
