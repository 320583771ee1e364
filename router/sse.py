"""SSE on the hot path without per-chunk JSON: find usage at the tail, drop the injected usage event.

Streams are relayed as raw bytes. The jobs that need to look inside them, and all are byte searches:

- `find_usage(buf)`: the last `"usage": {...}` object in a buffer (the tail of a stream, or a whole JSON
  body), decoded alone. Works for chat/completions chunks, Responses' `response.completed` and
  Anthropic's `message_delta`, since each carries a flat-ish `usage` object near the end.
- `UsageStripper`: when the router injected `stream_options.include_usage` and the client did not ask
  for it, the usage-only chunks (`"choices":[]`) must not reach the client. The stripper keeps the
  stream event-aligned (a partial event waits for its end) and cuts every such event out; a chunk
  without one passes through as the same bytes object. Each byte is searched once (no rescans of a
  growing buffer), and a partial event larger than `MAX_EVENT_BYTES` raises `EventTooLarge`.
- `open_event_bytes(chunk, n)`: for streams relayed untouched, the size of the event still open after
  `chunk`, so one endless event is caught at the same bound (a suffix check on ordinary chunks).
- `truncated(buf)`: whether an answer stopped at its token limit (the feedback loop counts that against
  the model that gave it).
"""

from __future__ import annotations

from typing import Any

import orjson

_USAGE_KEY = b'"usage":'
_EMPTY_CHOICES = (b'"choices":[]', b'"choices": []')
_MAX_USAGE_BYTES = 4096


# the ways of saying "cut short" (each key without and with a space), under a part of their value they all hold
_CUT_SHORT = ((b'"length"', (b'"finish_reason":"length"', b'"finish_reason": "length"')),
              (b'"max_', (b'"stop_reason":"max_tokens"', b'"stop_reason": "max_tokens"',
                          b'"reason":"max_output_tokens"', b'"reason": "max_output_tokens"')))


def truncated(buf: bytes) -> bool:
    """Did the answer stop at its token limit? `finish_reason: length` (chat, completions), `stop_reason:
    max_tokens` (Anthropic) or `incomplete_details.reason: max_output_tokens` (Responses), found by byte
    search in a body or a stream's last chunks: a part of the value first (an answer that ran its course has
    neither `"length"` nor `"max_`), the keys' spellings only where it is (each find is a pass over the body)."""
    find = buf.find  # (not `m in buf`: bytes' `in` first tries `m` as an int, making and dropping a TypeError)
    for part, spellings in _CUT_SHORT:
        if find(part) >= 0:
            for m in spellings:
                if find(m) >= 0:
                    return True
    return False


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


MAX_EVENT_BYTES = 1 << 20  # one SSE event; an upstream that sends more without a blank line is broken


class EventTooLarge(ValueError):
    """An SSE event over MAX_EVENT_BYTES."""


def _event_end(buf: bytes) -> int:
    """Index just past the last complete SSE event in `buf` (0 if none is complete)."""
    a = buf.rfind(b"\n\n")
    b = buf.rfind(b"\r\n\r\n")
    return max(a + 2 if a >= 0 else 0, b + 4 if b >= 0 else 0)


def open_event_bytes(chunk: bytes, n: int, limit: int = MAX_EVENT_BYTES) -> int:
    """Bytes of the event still open after `chunk`, given `n` open before it; raises EventTooLarge."""
    if chunk.endswith(b"\n\n"):
        return 0
    end = _event_end(chunk)
    n = len(chunk) - end if end else n + len(chunk)
    if n > limit:
        raise EventTooLarge(f"an SSE event over {limit} bytes")
    return n


class UsageStripper:
    """Relays SSE chunks, cutting out the usage-only events and keeping the last usage."""

    __slots__ = ("limit", "pending", "size", "usage")

    def __init__(self, limit: int = MAX_EVENT_BYTES) -> None:
        self.pending: list[bytes] = []  # the open (incomplete) event, in pieces
        self.size = 0
        self.limit = limit
        self.usage: dict[str, Any] | None = None

    def feed(self, chunk: bytes) -> bytes:
        end = _event_end(chunk)
        if not end and self.pending:
            end = self._boundary_across(chunk)
        if not end:  # still inside one event
            self.pending.append(chunk)
            self._grew(len(chunk))
            return b""
        out = chunk if end == len(chunk) else chunk[:end]
        if self.pending:
            out = b"".join(self.pending) + out
            self.pending.clear()
        self.size = 0
        if end != len(chunk):
            self.pending.append(chunk[end:])
            self._grew(len(chunk) - end)
        return self._cut(out)

    def flush(self) -> bytes:
        rest = b"".join(self.pending)
        self.pending.clear()
        self.size = 0
        return rest

    def _grew(self, n: int) -> None:
        self.size += n
        if self.size > self.limit:
            raise EventTooLarge(f"an SSE event over {self.limit} bytes")

    def _boundary_across(self, chunk: bytes) -> int:
        """A blank line split between the open event's last bytes and `chunk`: its end in `chunk`, or 0."""
        tail = b"".join(p[-3:] for p in self.pending[-3:])[-3:]
        end = _event_end(tail + chunk[:3])
        return end - len(tail) if end > len(tail) else 0

    def _cut(self, buf: bytes) -> bytes:
        """`buf` (whole events) without its usage-only events."""
        i = _find_empty_choices(buf, 0)
        if i < 0:
            return buf
        parts = []
        keep_from = 0
        while i >= 0:
            start = max(_event_end(buf[keep_from:i]) + keep_from, keep_from)
            stops = [k + n for sep, n in ((b"\n\n", 2), (b"\r\n\r\n", 4)) if (k := buf.find(sep, i)) >= 0]
            stop = min(stops) if stops else len(buf)
            usage = find_usage(buf[start:stop])
            if usage is not None:
                self.usage = usage
            parts.append(buf[keep_from:start])
            keep_from = stop
            i = _find_empty_choices(buf, stop)
        parts.append(buf[keep_from:])
        return b"".join(parts)


def _find_empty_choices(buf: bytes, start: int) -> int:
    hits = [i for m in _EMPTY_CHOICES if (i := buf.find(m, start)) >= 0]
    return min(hits) if hits else -1


# ---------------------------------------------------------------- hold-back: the first content token

# A string value that starts a completion's visible output, whatever the wire format: chat `content`,
# completions `text`, Responses/Anthropic `delta`/`text`, tool-call `arguments`, reasoning text.
_CONTENT_KEYS = (b'"content":"', b'"text":"', b'"delta":"', b'"arguments":"', b'"reasoning_content":"',
                 b'"reasoning":"', b'"refusal":"', b'"partial_json":"', b'"thinking":"')
_TOOL_KEYS = (b'"tool_calls":[{', b'"function_call":{', b'"type":"tool_use"')
_SSE_STARTS = (b"data:", b"event:", b"id:", b"retry:", b":")
HOLD_MAX_BYTES = 65536  # past this much without content, stop holding back


def has_content(buf: bytes) -> bool:
    """Does this piece of an SSE stream carry the first content token or tool-call delta? Role-only and
    empty chunks (`"content":""`, `"content":null`) do not count. A byte search, for the first chunks only."""
    find = buf.find  # (not `in`: see `truncated`)
    if find(b'": "') >= 0 or find(b'":\t') >= 0:
        buf = buf.replace(b'": "', b'":"')
        find = buf.find
    for key in _CONTENT_KEYS:
        i = find(key)
        while i >= 0:
            j = i + len(key)
            if j < len(buf) and buf[j] != 0x22:  # a non-empty string
                return True
            i = find(key, j)
    for key in _TOOL_KEYS:  # noqa: SIM110 (no generator per call)
        if find(key) >= 0:
            return True
    return False


def is_sse(buf: bytes) -> bool:
    """Does this look like the start of an event stream (not an HTML page or a bare JSON body)?"""
    return buf.lstrip(b"\r\n\t ").startswith(_SSE_STARTS)


def error_event(buf: bytes) -> bool:
    """An upstream that answered 200 and then an error event before any content (vLLM, proxies)."""
    s = buf.lstrip(b"\r\n\t ")
    return s.startswith((b'data: {"error"', b'data:{"error"', b"event: error", b"event:error"))
