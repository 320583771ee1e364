"""SSE on the hot path without per-chunk JSON: find usage at the tail, drop the injected usage event.

Streams are relayed as raw bytes. Three jobs need to look inside them, and all are byte searches:

- `find_usage(buf)`: the last `"usage": {...}` object in a buffer (the tail of a stream, or a whole JSON
  body), decoded alone. Works for chat/completions chunks, Responses' `response.completed` and
  Anthropic's `message_delta`, since each carries a flat-ish `usage` object near the end.
- `UsageStripper`: when the router injected `stream_options.include_usage` and the client did not ask
  for it, the final usage-only chunk (`"choices":[]`) must not reach the client. The stripper keeps the
  stream event-aligned (a partial event waits for its end) and cuts that one event out; every other
  chunk passes through as the same bytes object.
- `truncated(buf)`: whether an answer stopped at its token limit (the feedback loop counts that against
  the model that gave it).
"""

from __future__ import annotations

from typing import Any

import orjson

_USAGE_KEY = b'"usage":'
_EMPTY_CHOICES = (b'"choices":[]', b'"choices": []')
_MAX_USAGE_BYTES = 4096


_CUT_SHORT = (b'"finish_reason":"length"', b'"finish_reason": "length"', b'"stop_reason":"max_tokens"',
              b'"stop_reason": "max_tokens"', b'"reason":"max_output_tokens"', b'"reason": "max_output_tokens"')


def truncated(buf: bytes) -> bool:
    """Did the answer stop at its token limit? `finish_reason: length` (chat, completions), `stop_reason:
    max_tokens` (Anthropic) or `incomplete_details.reason: max_output_tokens` (Responses), found by byte
    search in a body or a stream's last chunks."""
    return any(m in buf for m in _CUT_SHORT)


def find_usage(buf: bytes) -> dict[str, Any] | None:
    """Decode the last `"usage": {...}` object in `buf`, or None if there is none."""
    end = len(buf)
    while True:
        i = buf.rfind(_USAGE_KEY, 0, end)
        if i < 0:
            return None
        j = i + len(_USAGE_KEY)
        while j < len(buf) and buf[j] in b" \t":
            j += 1
        if j < len(buf) and buf[j] == 0x7B:  # "{"
            usage = _object_at(buf, j)
            if usage is not None:
                return usage
        end = i


def _object_at(buf: bytes, start: int) -> dict[str, Any] | None:
    """The JSON object starting at `start` (usage objects hold no strings with braces): the first closing
    brace that balances the opening ones, found with C-level counts, then decoded once."""
    stop = min(len(buf), start + _MAX_USAGE_BYTES)
    k = buf.find(b"}", start, stop)
    while k >= 0:
        if buf.count(b"{", start, k) == buf.count(b"}", start, k + 1):
            try:
                obj = orjson.loads(buf[start : k + 1])
            except orjson.JSONDecodeError:
                return None
            return obj if isinstance(obj, dict) else None
        k = buf.find(b"}", k + 1, stop)
    return None


def _event_end(buf: bytes) -> int:
    """Index just past the last complete SSE event in `buf` (0 if none is complete)."""
    a = buf.rfind(b"\n\n")
    b = buf.rfind(b"\r\n\r\n")
    return max(a + 2 if a >= 0 else 0, b + 4 if b >= 0 else 0)


class UsageStripper:
    """Relays SSE chunks, cutting out the usage-only event and keeping its usage."""

    __slots__ = ("pending", "usage")

    def __init__(self) -> None:
        self.pending = b""
        self.usage: dict[str, Any] | None = None

    def feed(self, chunk: bytes) -> bytes:
        if self.pending:
            chunk = self.pending + chunk
            self.pending = b""
        end = _event_end(chunk)
        if end != len(chunk):
            self.pending = chunk[end:]
            chunk = chunk[:end]
        for marker in _EMPTY_CHOICES:
            i = chunk.find(marker)
            if i >= 0:
                return self._cut(chunk, i)
        return chunk

    def flush(self) -> bytes:
        rest, self.pending = self.pending, b""
        return rest

    def _cut(self, chunk: bytes, i: int) -> bytes:
        start = _event_end(chunk[:i])
        stops = [k + n for sep, n in ((b"\n\n", 2), (b"\r\n\r\n", 4)) if (k := chunk.find(sep, i)) >= 0]
        stop = min(stops) if stops else len(chunk)
        event = chunk[start:stop]
        usage = find_usage(event)
        if usage is not None:
            self.usage = usage
        return chunk[:start] + chunk[stop:]
