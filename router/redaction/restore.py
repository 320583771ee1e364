"""Putting the originals back: placeholders in an answer become the client's own values again.

Works on bytes, without decoding JSON. A placeholder sits inside a JSON string, written as UTF-8
(`⟦EMAIL_1⟧`) or escaped (`\\u27e6EMAIL_1\\u27e7`); it is replaced by the original value, JSON-escaped,
so the answer stays valid JSON and the client decodes exactly what it sent. Names the vault does not
know are left alone.

Streams (`StreamRestorer`) hold back only bytes that could begin a placeholder:
- at the end of a chunk (a placeholder split by the network), those bytes wait for the next chunk;
- at the end of a JSON string (the model wrote `⟦EMA` in one event and `IL_1⟧` in the next), the
  beginning is cut out of that event and put in front of the same field (`"content":"`) in the next
  event that carries it, where the whole placeholder is then restored. If no such event comes, the
  held bytes go out at the end as they were written, in a copy of the event they were cut from.
Everything else passes through as the same bytes objects.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import orjson

_OPEN = rb"(?:\xe2\x9f\xa6|\\u27[eE]6)"
_CLOSE = rb"(?:\xe2\x9f\xa7|\\u27[eE]7)"
_NAME = rb"[A-Z][A-Z0-9_]{0,30}_\d{1,6}"
PLACEHOLDER = re.compile(_OPEN + rb"(" + _NAME + rb")" + _CLOSE)
# the beginning of a placeholder closing a JSON string: `⟦EMA"` (its rest comes in a later event)
_CUT_AT_STRING_END = re.compile(_OPEN + rb"[A-Z0-9_]{0,38}(?=\")")
# bytes at the very end of a chunk that could begin a placeholder (a split mark, or a mark and a name)
_TAIL = re.compile(
    rb"(?:" + _OPEN + rb"[A-Z0-9_]{0,38}(?:\xe2\x9f?|\\(?:u(?:2(?:7[eE]?)?)?)?)?|\xe2\x9f?|\\(?:u(?:2(?:7[eE]?)?)?)?)\Z"
)
_KEY_BEFORE = re.compile(rb'"([A-Za-z_][A-Za-z0-9_]{0,40})"\s{0,2}:\s{0,2}\Z')
_MARK = (b"\xe2\x9f\xa6", b"\\u27e6", b"\\u27E6")
_MAX_HELD = 64
_BOUNDARY = re.compile(rb"\r?\n\r?\n")  # the blank line that ends an SSE event
_MAYBE_LAST = frozenset((b"\xe2", b"\x9f", b"\\", b"u", b"2", b"7", b"e", b"E"))  # a chunk ending so may split a mark


def _escaped(value: str) -> bytes:
    return orjson.dumps(value)[1:-1]


class Restorer:
    """The vault's values as the bytes that replace each placeholder."""

    __slots__ = ("_sub", "values")

    def __init__(self, values: dict[str, str]) -> None:
        self.values = {k.encode(): _escaped(v) for k, v in values.items()}

        def sub(m: re.Match[bytes]) -> bytes:
            return self.values.get(m.group(1), m.group(0))

        self._sub = sub

    def body(self, data: bytes) -> bytes:
        """A whole JSON body with every known placeholder restored."""
        if not _has_mark(data):
            return data
        return PLACEHOLDER.sub(self._sub, data)

    def stream(self) -> StreamRestorer:
        return StreamRestorer(self)


def _has_mark(data: bytes) -> bool:
    return any(m in data for m in _MARK)


class StreamRestorer:
    """Restores one SSE stream chunk by chunk; `feed` each chunk, then `flush` at the end."""

    __slots__ = ("_carry", "_head", "_held", "_held_event", "_held_key", "restorer")

    def __init__(self, restorer: Restorer) -> None:
        self.restorer = restorer
        self._carry = b""  # bytes waiting for the next chunk: a possible placeholder beginning
        self._held = b""  # a placeholder's beginning cut from the end of a JSON string …
        self._held_key = b""  # … of this field, waiting for the field's string in the next event
        self._held_event: bytes | None = None  # the cut event carrying only the held bytes, as a fallback
        self._head = b""  # what already went out of the event still in progress (chunks that end mid-event)

    def feed(self, chunk: bytes) -> bytes:
        if self._carry:
            chunk = self._carry + chunk
            self._carry = b""
        elif not self._held and not _has_mark(chunk) and chunk[-1:] not in _MAYBE_LAST:
            self._track(chunk)
            return chunk  # the common case: nothing that could be or begin a placeholder
        out: list[bytes] = []
        start = 0
        if self._head:  # the blank line ending the event in progress may be split between two chunks
            tail = self._head[-3:]
            m = _BOUNDARY.search(tail + chunk[:4])
            if m is not None and m.start() < len(tail) < m.end():
                start = m.end() - len(tail)
                out.append(chunk[:start])
                self._head = b""
        first = start
        while start < len(chunk):
            m = _BOUNDARY.search(chunk, start)
            if m is None:
                self._partial(chunk[start:], out)
                break
            self._event(chunk[start:m.end()], out)
            self._head = b""  # the next event starts here
            start = m.end()
        result = b"".join(out)
        self._track(result[first:])
        return result

    def _track(self, sent: bytes) -> None:
        """Remember the sent part of an event that is not finished yet (usually nothing)."""
        if sent.endswith(b"\n\n"):
            self._head = b""
            return
        data = self._head + sent
        a, b = data.rfind(b"\n\n"), data.rfind(b"\n\r\n")
        self._head = data[max(a + 2 if a >= 0 else 0, b + 3 if b >= 0 else 0):]

    def flush(self) -> bytes:
        out = [self._carry]
        self._carry = b""
        if self._held:
            out.append(self._held_event or b"")
            self._held = b""
            self._held_event = None
        return b"".join(out)

    def _event(self, event: bytes, out: list[bytes]) -> None:
        """A complete event."""
        if self._held:
            given = self._give_back(event)
            if given is None:  # the next event has no such field: the held bytes were just text
                out.append(self._held_event or b"")
                self._held, self._held_event = b"", None
            else:
                event = given
        if _has_mark(event):
            event = PLACEHOLDER.sub(self.restorer._sub, event)
            if not self._held:
                event = self._cut(event)
        out.append(event)

    def _partial(self, data: bytes, out: list[bytes]) -> None:
        """The start of an event whose end is in a later chunk."""
        if self._held:
            given = self._give_back(data)
            if given is None:
                self._carry = data  # wait for this event's end (or the field) before deciding
                return
            data = given
        if _has_mark(data):
            data = PLACEHOLDER.sub(self.restorer._sub, data)
            if _CUT_AT_STRING_END.search(data):  # a beginning closing a string: decide once the event is whole
                self._carry = data
                return
        tail = _TAIL.search(data, max(0, len(data) - _MAX_HELD))
        if tail is not None:
            self._carry = data[tail.start():]
            data = data[:tail.start()]
        out.append(data)

    def _give_back(self, data: bytes) -> bytes | None:
        """The data with the held beginning put in front of the field's string, or None if it has none."""
        m = re.search(b'"' + re.escape(self._held_key) + rb'"\s{0,2}:\s{0,2}"', data)
        if m is None:
            return None
        held = self._held
        self._held, self._held_event = b"", None
        return data[:m.end()] + held + data[m.end():]

    def _cut(self, event: bytes) -> bytes:
        """Cut a placeholder's beginning from the end of a JSON string and hold it for the next event.
        The event's start may have gone out with an earlier chunk (`_head`)."""
        m = _CUT_AT_STRING_END.search(event)
        if m is None:
            return event
        full, off = self._head + event, len(self._head)
        start = _string_start(full, m.start() + off)
        key = _KEY_BEFORE.search(full, max(0, start - 48), start) if start >= 0 else None
        if key is None:
            return event
        self._held = event[m.start():m.end()]
        self._held_key = key.group(1)
        self._held_event = full[:start + 1] + self._held + full[m.end() + off:]
        return event[:m.start()] + event[m.end():]


def _string_start(data: bytes, pos: int) -> int:
    """Index of the opening quote of the JSON string that contains `pos` (-1 if not found)."""
    i = data.rfind(b'"', 0, pos)
    while i > 0:
        slashes = 0
        j = i - 1
        while j >= 0 and data[j] == 0x5C:
            slashes += 1
            j -= 1
        if slashes % 2 == 0:
            return i
        i = data.rfind(b'"', 0, i)
    return i


class RestoredStream:
    """A reply's stream with placeholders restored; what the pump and other stages read of a stream
    (`usage`, `seen`, `truncated`, …) and `aclose` reach the wrapped stream."""

    __slots__ = ("inner", "restorer")

    def __init__(self, inner: Any, restorer: Restorer) -> None:
        self.inner = inner
        self.restorer = restorer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._relay()

    async def _relay(self) -> AsyncIterator[bytes]:
        sr = self.restorer.stream()
        async for chunk in self.inner:
            out = sr.feed(chunk)
            if out:
                yield out
        rest = sr.flush()
        if rest:
            yield rest

    async def aclose(self) -> None:
        await self.inner.aclose()
