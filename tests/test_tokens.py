"""router.routing.tokens: offline encodings, chat-format counting, images, tools, exact vs estimated counts."""

from __future__ import annotations

import base64
import struct
import time

import pytest

from router.routing import tokens
from router.routing.tokens import Prompt, count, count_exact, extract, get_encoding, image_tokens


def test_encodings_load_offline_hash_checked_and_cached() -> None:
    enc = get_encoding("o200k_base")
    assert enc is get_encoding("o200k_base")
    assert enc.n_vocab == 200019
    assert enc.eot_token == 199999
    text = "Routing 100k prompts: ünïcödé, 日本語, emoji 🚀 and code `x = f(y)`"
    assert enc.decode(enc.encode_ordinary(text)) == text
    cl = get_encoding("cl100k_base")
    assert cl.eot_token == 100257
    assert cl.decode(cl.encode_ordinary(text)) == text
    assert enc.encode_ordinary(text) != cl.encode_ordinary(text)


def test_unknown_encoding_and_bad_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(tokens.UnknownEncoding):
        get_encoding("p50k_base")
    name, _sha, pat, special = tokens.ENCODINGS["cl100k_base"]
    monkeypatch.setitem(tokens.ENCODINGS, "cl100k_broken", (name, "0" * 64, pat, special))
    with pytest.raises(RuntimeError, match="sha256"):
        get_encoding("cl100k_broken")


def test_chat_messages_count_like_the_upstream() -> None:
    enc = get_encoding()
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "name": "ana", "content": "What's the weather in Lisbon?"},
        {"role": "assistant", "content": "Sunny, 24°C."},
        {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
    ]
    expected = 3  # reply priming
    for m in messages:
        text = m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]
        expected += 3 + len(enc.encode(text))
        if "name" in m:
            expected += 1 + len(enc.encode(m["name"]))
    p = extract("chat", {"model": "auto", "messages": messages})
    assert count_exact(p, enc) == expected
    tc = count(p)
    assert tc.exact
    assert tc.tokens == expected


def test_tools_follow_the_function_calling_formula() -> None:
    enc = get_encoding()
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name."},
                    "unit": {"type": "string", "enum": ["c", "f"], "description": "Unit"},
                },
            },
        },
    }
    want = 7 + len(enc.encode("get_weather:Get the weather")) + 3
    want += 3 + len(enc.encode("city:string:City name"))
    want += 3 - 3 + (3 + 1) + (3 + 1) + len(enc.encode("unit:string:Unit"))
    want += 12
    assert tokens.tool_tokens(enc, [tokens._tool(tool)]) == want  # type: ignore[list-item]
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": [tool]}
    assert count(extract("chat", body)).tokens == 3 + 1 + 3 + want


def _png(width: int, height: int) -> str:
    head = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00"
    return "data:image/png;base64," + base64.b64encode(head).decode()


def test_image_parts_by_their_documented_cost() -> None:
    assert image_tokens(1024, 1024) == 765
    assert image_tokens(2048, 4096) == 85 + 170 * 6  # 1024x2048 -> 768x1536 -> 2x3 tiles
    assert image_tokens(300, 200) == 255
    parts = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://x/y.jpg", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://x/y.jpg"}},
        {"type": "image_url", "image_url": {"url": _png(2048, 4096), "detail": "high"}},
    ]
    p = extract("chat", {"messages": [{"role": "user", "content": parts}]})
    assert p.image_tokens == [85, 765, 85 + 170 * 6]


def test_other_endpoints() -> None:
    anth = extract("messages", {
        "system": "Be brief.", "max_tokens": 300,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"},
                                                   {"type": "image", "source": {"type": "base64", "data": "abc"}}]}],
        "tools": [{"name": "lookup", "description": "Look up.", "input_schema": {"type": "object", "properties": {}}}],
    })
    assert anth.system == "Be brief."
    assert anth.max_output == 300
    assert anth.tools[0]["name"] == "lookup"
    assert anth.image_tokens == [765]
    emb = extract("embeddings", {"input": ["one text", "another"]})
    assert count(emb).tokens == len(get_encoding().encode("one text")) + len(get_encoding().encode("another"))
    resp = extract("responses", {"input": "hi there", "instructions": "x", "text": {"format": {"type": "json_schema"}}})
    assert resp.wants_json
    assert resp.contents[-1] == "hi there"
    comp = extract("completions", {"prompt": "def f(x):", "max_tokens": 16})
    assert count(comp).tokens == len(get_encoding().encode("def f(x):"))
    assert comp.max_output == 16


def _big_prompt(n_paragraphs: int) -> Prompt:
    para = ("The committee reviewed the quarterly figures, noting that revenue grew 4% while costs fell. "
            "Several members asked for a breakdown by region before the next meeting.\n")
    return extract("chat", {"messages": [{"role": "user", "content": "Summarise:\n" + para * n_paragraphs}]})


def test_huge_prompt_is_estimated_not_counted_when_no_threshold_is_near() -> None:
    p = _big_prompt(3000)  # ~100k tokens
    exact = count_exact(p, get_encoding())
    assert 90_000 < exact < 120_000
    count(p, thresholds=[400, 2000, 200_000])
    t0 = time.perf_counter()
    tc = count(p, thresholds=[400, 2000, 200_000])
    elapsed = time.perf_counter() - t0
    assert not tc.exact
    assert tc.low <= exact <= tc.high
    assert abs(tc.tokens - exact) / exact < 0.05
    assert elapsed < 0.005


def test_threshold_inside_the_estimate_band_forces_the_exact_count() -> None:
    p = _big_prompt(3000)
    exact = count_exact(p, get_encoding())
    tc = count(p, thresholds=[exact + 1000])
    assert tc.exact
    assert tc.tokens == exact


def test_small_prompts_are_always_exact() -> None:
    tc = count(extract("chat", {"messages": [{"role": "user", "content": "hello " * 200}]}))
    assert tc.exact


def test_cheap_estimate_bounds_the_exact_count_without_the_tokenizer() -> None:
    enc = get_encoding()
    texts = [
        "The committee reviewed the quarterly figures and asked for a regional breakdown. " * 12,
        "def f(x):\n    return [i * 2 for i in range(x) if i % 3]\n\n" * 15,
        "Order 1234 shipped on 2024-05-02 for $19.99; 3 of 7 items (42%) arrived late.\n" * 10,
        base64.b64encode(bytes(range(256)) * 3).decode(),
        "日本語のテキストと English words mixed together. " * 20,
    ]
    for text in texts:
        p = extract("chat", {"messages": [{"role": "user", "content": text}]})
        tc = tokens.estimate(p)
        exact = count_exact(p, enc)
        assert not tc.exact
        assert tc.low <= exact <= tc.high, (text[:30], tc, exact)
        assert tc.low <= tc.tokens <= tc.high
    empty = tokens.estimate(extract("chat", {"messages": []}))
    assert empty.exact
    assert empty.tokens == 3


def test_tool_definitions_are_counted_once_per_distinct_set() -> None:
    tool = {"type": "function", "function": {"name": "lookup", "description": "Look up.",
                                             "parameters": {"type": "object", "properties": {}}}}
    p = extract("chat", {"messages": [{"role": "user", "content": "hi"}], "tools": [tool]})
    enc = get_encoding()
    assert tokens.tool_tokens_cached(enc, p.tools) == tokens.tool_tokens(enc, p.tools)
    assert tokens.tool_tokens_cached(enc, p.tools) == tokens.tool_tokens(enc, p.tools)  # memoised


def test_encoding_drops_its_python_side_ranks_but_still_encodes_decodes_and_pickles() -> None:
    import pickle

    enc = get_encoding()
    assert not enc._mergeable_ranks  # the Rust CoreBPE holds the ranks; the Python dict copy is dropped
    text = "Drop the ranks, keep the tokens: ünïcödé 日本語 `x = f(y)` <|endoftext|>"
    ids = enc.encode(text, allowed_special="all")
    assert enc.decode(ids) == text
    assert enc.encode("<|endoftext|>", allowed_special="all") == [enc.eot_token]
    assert enc.decode_single_token_bytes(ids[0])
    assert pickle.loads(pickle.dumps(enc)).encode(text, allowed_special="all") == ids  # pickled by name


def test_the_tokenizer_loads_lazily_not_when_the_stages_are_built() -> None:
    import subprocess
    import sys

    code = (
        "from bench.stages import build_context\n"
        "from middleware.classify import ClassifyStage\n"
        "from middleware.route import RouteStage\n"
        "from router.routing.tokens import get_encoding, estimate, extract\n"
        "ctx = build_context('full'); ClassifyStage(ctx); RouteStage(ctx)\n"
        "estimate(extract('chat', {'messages': [{'role': 'user', 'content': 'hi there'}]}))\n"
        "assert get_encoding.cache_info().currsize == 0, get_encoding.cache_info()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))


def test_text_band_counts_digits_like_before() -> None:
    text = "call 555 0100 at 9:30 today,\nplease, it is urgent"
    e, lo, hi = tokens._text_band(text)
    n, sp, nl, dg = len(text), text.count(" "), 1, sum(c.isdigit() for c in text)
    expected = tokens.PER_CHAR * n + tokens.PER_SPACE * sp + tokens.PER_NEWLINE * nl + tokens.PER_DIGIT * dg
    assert e == pytest.approx(expected)
    assert lo < e < hi


@pytest.mark.parametrize(
    "text",
    ["You are a helpful assistant.", "a b c 1 2 3\n4 5\n", "x" * 500, "word " * 300 + "\n" * 40 + "12345 " * 30,
     "ünïcödé text with spaces", "def f(x):\n    return x + 1\n" * 20],
)
def test_estimate_inlines_the_text_band(text: str) -> None:
    """`estimate`'s inlined ASCII path gives exactly `_text_band`'s numbers."""
    p = Prompt(texts=[text], overhead=7)
    e, lo, hi = tokens._text_band(text)
    tc = tokens.estimate(p)
    low = 7 + int(max(lo, 1.0))
    high = 7 + int(hi) + 1
    assert (tc.low, tc.high) == (low, high)
    assert tc.tokens == min(max(7 + round(e), low), high)
    assert not tc.exact


def test_token_count_is_an_immutable_tuple() -> None:
    tc = tokens.TokenCount(5, True, 5, 5)
    assert tc == (5, True, 5, 5)
    assert tc.tokens == 5
    assert tc.exact
    with pytest.raises(AttributeError):
        tc.tokens = 6  # type: ignore[misc]
