"""SSE byte handling: usage found by byte search, the injected usage event cut out, however chunks split."""

from __future__ import annotations

import pytest

from router.sse import UsageStripper, find_usage, truncated

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


# ---------------------------------------------------------------- issue 10: every usage event, bounded events


def _usage_event() -> bytes:
    return b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\n\n'


def test_stripper_cuts_every_usage_event_in_a_chunk_and_across_chunks() -> None:
    from router.sse import UsageStripper

    delta = b'data: {"id":"c","choices":[{"delta":{"content":"x"}}]}\n\n'
    stream = delta + _usage_event() + delta + _usage_event() + b"data: [DONE]\n\n"
    for size in (1, 2, 3, 7, len(stream)):  # every split, blank lines cut in two included
        s = UsageStripper()
        out = b"".join(s.feed(stream[i:i + size]) for i in range(0, len(stream), size)) + s.flush()
        assert out == delta + delta + b"data: [DONE]\n\n", size
        assert s.usage == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_stripper_refuses_an_endless_event() -> None:
    import pytest

    from router.sse import EventTooLarge, UsageStripper

    s = UsageStripper(limit=10_000)
    assert s.feed(b"data: {\"a\":1}\n\ndata: {") == b"data: {\"a\":1}\n\n"
    for _ in range(99):
        assert s.feed(b"x" * 100) == b""  # held back: the event is not complete
    with pytest.raises(EventTooLarge):
        s.feed(b"x" * 100)


def test_open_event_bytes_counts_the_open_event() -> None:
    import pytest

    from router.sse import EventTooLarge, open_event_bytes

    assert open_event_bytes(b"data: 1\n\n", 50) == 0
    assert open_event_bytes(b"data: 1\n\ndata: 2", 50) == 7
    assert open_event_bytes(b"more", 7) == 11
    with pytest.raises(EventTooLarge):
        open_event_bytes(b"x" * 20, 90, limit=100)


def test_truncated_is_any_of_the_six_spellings() -> None:
    """`truncated` looks for each value before its keys; the answer is still "any of the six byte strings"."""
    six = [b'"finish_reason":"length"', b'"finish_reason": "length"', b'"stop_reason":"max_tokens"',
           b'"stop_reason": "max_tokens"', b'"reason":"max_output_tokens"', b'"reason": "max_output_tokens"']
    base = b'{"choices":[{"message":{"content":"the \\"length\\" of it, max_tokens"},"finish_reason":"stop"}]}'
    bodies = [base, b"", b'"length" "max_tokens" "max_output_tokens"', b'"finish_reason":"lengthy"',
              *(base[:-2] + b"," + m + b"}]}" for m in six), *(m[:-1] for m in six)]
    for body in bodies:
        assert truncated(body) is any(m in body for m in six), body
