"""SSE byte handling: usage found by byte search, the injected usage event cut out, however chunks split."""

from __future__ import annotations

import pytest

from router.sse import UsageStripper, find_usage

EVENTS = [
    b'data: {"id":"1","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}\n\n',
    b'data: {"id":"1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n',
    b'data: {"id":"1","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,'
    b'"prompt_tokens_details":{"cached_tokens":1}}}\n\n',
    b"data: [DONE]\n\n",
]
STREAM = b"".join(EVENTS)
EXPECTED = EVENTS[0] + EVENTS[1] + EVENTS[3]


def test_find_usage_in_tail_and_json() -> None:
    assert find_usage(STREAM)["completion_tokens"] == 2
    assert find_usage(b'{"usage": {"input_tokens": 3, "output_tokens": 4}}') == {"input_tokens": 3, "output_tokens": 4}
    assert find_usage(b'{"choices":[],"usage":null}') is None
    assert find_usage(b"no usage here") is None


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 50, 4096])
def test_stripper_any_split(size: int) -> None:
    s = UsageStripper()
    out = b"".join(s.feed(STREAM[i : i + size]) for i in range(0, len(STREAM), size)) + s.flush()
    assert out == EXPECTED
    assert s.usage is not None
    assert s.usage["total_tokens"] == 7


def test_stripper_passes_same_object_when_nothing_to_cut() -> None:
    s = UsageStripper()
    assert s.feed(EVENTS[0]) is EVENTS[0]


def test_stripper_crlf_events() -> None:
    crlf = STREAM.replace(b"\n\n", b"\r\n\r\n")
    s = UsageStripper()
    out = b"".join(s.feed(crlf[i : i + 10]) for i in range(0, len(crlf), 10)) + s.flush()
    assert out == EXPECTED.replace(b"\n\n", b"\r\n\r\n")
    assert s.usage is not None
