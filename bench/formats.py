"""Per-event cost of translated streams and of request/answer translation (router/formats/).

`python -m bench.formats` feeds recorded-shape upstream streams (an Anthropic Messages stream of 200 text
deltas, an OpenAI chat stream of 200 chunks) through each `StreamTranslator` and times µs per upstream event,
plus µs per translated request and JSON answer. Pass-through streams never reach this code (no per-chunk
JSON); these figures are what a translating route adds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from router.formats.bridge import Translation
from router.formats.events import encode

N = 200
MSG = {"model": "m", "max_tokens": 512, "stream": True, "messages": [{"role": "user", "content": "hello " * 50}]}


def anthropic_stream() -> list[bytes]:
    ev = [encode("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "c", "content": [], "stop_reason": None,
        "stop_sequence": None, "usage": {"input_tokens": 300, "output_tokens": 1}}}),
        encode("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}})]
    ev += [encode("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": " word"}}) for _ in range(N)]
    ev += [encode("content_block_stop", {"type": "content_block_stop", "index": 0}),
           encode("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                    "usage": {"output_tokens": N}}),
           encode("message_stop", {"type": "message_stop"})]
    return ev


def chat_stream() -> list[bytes]:
    def chunk(delta: dict, finish: str | None = None) -> bytes:
        return b"data: " + orjson.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"
    ev = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": " word"}) for _ in range(N)]
    ev += [chunk({}, "stop"), b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":300,"completion_tokens":200,'
                              b'"total_tokens":500}}\n\n', b"data: [DONE]\n\n"]
    return ev


def per_event(make: Callable[[], Translation], events: list[bytes], rounds: int = 50) -> float:
    best = float("inf")
    for _ in range(rounds):
        st = make().stream()
        t0 = time.perf_counter()
        for e in events:
            st.feed(e)
        st.close()
        best = min(best, (time.perf_counter() - t0) / len(events))
    return best * 1e6


def per_call(fn: Callable[[], object], rounds: int = 2000) -> float:
    t0 = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - t0) / rounds * 1e6


def main() -> None:
    chat_req = {"model": "m", "stream": True, "messages": MSG["messages"]}
    resp_req = {"model": "m", "stream": True, "input": "hello " * 50}
    rows = [
        ("chat client, Anthropic upstream", lambda: Translation("chat", "messages", dict(chat_req)),
         anthropic_stream()),
        ("Messages client, chat upstream", lambda: Translation("messages", "chat", dict(MSG)), chat_stream()),
        ("Responses client, chat upstream", lambda: Translation("responses", "chat", dict(resp_req)),
         chat_stream()),
        ("Responses client, Anthropic upstream", lambda: Translation("responses", "messages", dict(resp_req)),
         anthropic_stream()),
    ]
    print(f"{'translated stream':40} {'µs/event':>9} {'µs/request':>11}")
    for name, make, events in rows:
        print(f"{name:40} {per_event(make, events):9.2f} {per_call(make):11.2f}")
    completion = orjson.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "word " * 200}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 300, "completion_tokens": 200, "total_tokens": 500}})
    tr = Translation("messages", "chat", dict(MSG))
    print(f"{'JSON answer chat -> Message (200 words)':40} {per_call(lambda: tr.answer(200, completion)):9.2f}")


if __name__ == "__main__":
    main()
