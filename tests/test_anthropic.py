"""Anthropic both ways, with the official SDKs on real sockets.

- the `anthropic` SDK (sync and streaming) on `/v1/messages`, routed to an Anthropic-format upstream
  (passed through untouched) and to an OpenAI-format upstream (translated);
- the `openai` SDK on `/v1/chat/completions` against an Anthropic-format upstream, incl. streamed tool calls;
- errors in Anthropic's shape, `count_tokens` answered locally, usage with cache reads/writes priced.

The upstream is backends/simulated.py, whose `/v1/messages` follows Anthropic's documented wire format.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import Stack, make_config

os.environ.setdefault("AI_ROUTER_TEST_ANTHROPIC_KEY", "sk-ant-test-key")

CLAUDE = "claude-sonnet-4-5"
TOOLS = [
    {"name": "get_weather", "description": "Weather for a city",
     "input_schema": {"type": "object", "properties": {"query": {"type": "string"}, "n": {"type": "integer"}}}},
    {"name": "get_time", "description": "Time in a city",
     "input_schema": {"type": "object", "properties": {"query": {"type": "string"}, "n": {"type": "integer"}}}},
]
OPENAI_TOOLS = [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                                  "parameters": t["input_schema"]}} for t in TOOLS]


def config_with_claude(local_url: str, cloud_url: str) -> dict[str, Any]:
    cfg = make_config(local_url, cloud_url)
    cfg["backends"].append({
        "name": "claude", "kind": "anthropic", "base_url": cloud_url, "api_key_env": "AI_ROUTER_TEST_ANTHROPIC_KEY",
        "timeouts": {"connect_s": 1, "first_byte_s": 2, "idle_s": 2, "total_s": 30},
        "models": [{"id": CLAUDE, "tier": "cloud-high", "context": 200000, "capabilities": ["tools", "vision"],
                    "price": {"input": 3.0, "output": 15.0, "cached_input": 0.3}}],
    })
    return cfg


@pytest.fixture(scope="module")
def claude_stack() -> Iterator[Stack]:
    s = Stack(config_with_claude).start()
    yield s
    s.stop()


@pytest.fixture
def st(claude_stack: Stack) -> Iterator[Stack]:
    claude_stack.reset()
    yield claude_stack
    claude_stack.reset()


def ant(st: Stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=st.url, api_key="client-key-must-not-leak", max_retries=0)


def oai(st: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=st.url + "/v1", api_key="client-key-must-not-leak", max_retries=0)


def last(st: Stack) -> dict[str, Any]:
    return st.cloud.requests[-1] if st.cloud.requests else st.local.requests[-1]


# ---------------------------------------------------------------- anthropic SDK → Anthropic upstream


def test_messages_passthrough_sync(st: Stack) -> None:
    raw = ant(st).messages.with_raw_response.create(
        model=CLAUDE, max_tokens=64, system="Be brief.", metadata={"user_id": "u1"},
        messages=[{"role": "user", "content": "Say hello"}], extra_headers={"anthropic-beta": "test-beta-1"})
    msg = raw.parse()
    assert msg.type == "message"
    assert msg.content[0].text.startswith(f"[{CLAUDE} on cloud]")
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0
    assert msg.usage.output_tokens > 0
    assert raw.headers["x-router-backend"] == "claude"
    assert float(raw.headers["x-router-cost-usd"]) > 0
    sent = st.cloud.requests[-1]
    assert sent["path"] == "/v1/messages"
    # untouched: the same body the SDK sent (model unchanged too)
    assert sent["body"] == {"model": CLAUDE, "max_tokens": 64, "system": "Be brief.", "metadata": {"user_id": "u1"},
                            "messages": [{"role": "user", "content": "Say hello"}]}
    h = sent["headers"]
    assert h["x-api-key"] == "sk-ant-test-key"
    assert h["anthropic-version"] == "2023-06-01"
    assert h["anthropic-beta"] == "test-beta-1"
    assert "client-key-must-not-leak" not in str(h)
    assert "authorization" not in h


def test_messages_passthrough_stream(st: Stack) -> None:
    st.cloud.behavior.cache_read_tokens = 1000
    with ant(st).messages.stream(model=CLAUDE, max_tokens=64,
                                 messages=[{"role": "user", "content": "Stream please"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith(f"[{CLAUDE} on cloud]")
    assert final.usage.output_tokens > 0
    assert final.usage.cache_read_input_tokens == 1000
    assert st.cloud.completed_streams == 1
    assert st.cloud.requests[-1]["body"]["stream"] is True


def test_messages_passthrough_tools_stream(st: Stack) -> None:
    with ant(st).messages.stream(model=CLAUDE, max_tokens=64, tools=TOOLS,
                                 messages=[{"role": "user", "content": "Weather and time in Paris"}]) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["get_weather", "get_time"]
    assert uses[1].input == {"query": "Weather and time in", "n": 2}
    assert final.stop_reason == "tool_use"


# ---------------------------------------------------------------- anthropic SDK → OpenAI-format upstream


def test_messages_translated_sync(st: Stack) -> None:
    raw = ant(st).messages.with_raw_response.create(
        model="qwen3:8b", max_tokens=50, system=[{"type": "text", "text": "Be brief."}], temperature=0.2,
        stop_sequences=["END"], messages=[{"role": "user", "content": "Say hello"}])
    msg = raw.parse()
    assert msg.content[0].type == "text"
    assert msg.content[0].text.startswith("[qwen3:8b on local]")
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0
    assert msg.usage.output_tokens > 0
    assert msg.id.startswith("msg_")
    sent = st.local.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"] == {"model": "qwen3:8b", "max_tokens": 50, "temperature": 0.2, "stop": ["END"],
                            "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Say hello"}]}
    assert raw.headers["x-router-backend"] == "local"


def test_messages_translated_stream(st: Stack) -> None:
    with ant(st).messages.stream(model="auto", max_tokens=64,
                                 messages=[{"role": "user", "content": "hi there, how are you?"}]) as stream:
        events = list(stream)
        final = stream.get_final_message()
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert "content_block_start" in kinds
    assert "content_block_stop" in kinds
    assert "message_delta" in kinds
    text = final.content[0].text
    assert text.startswith("[qwen3:8b on local]")
    assert final.usage.output_tokens > 0
    assert final.usage.input_tokens > 0
    assert st.local.requests[-1]["body"]["stream_options"] == {"include_usage": True}


def test_messages_translated_tools_and_results(st: Stack) -> None:
    client = ant(st)
    first = client.messages.create(model="qwen3:14b", max_tokens=64, tools=TOOLS,
                                   tool_choice={"type": "any", "disable_parallel_tool_use": False},
                                   messages=[{"role": "user", "content": "Weather in Paris"}])
    uses = [b for b in first.content if b.type == "tool_use"]
    assert first.stop_reason == "tool_use"
    assert [u.name for u in uses] == ["get_weather", "get_time"]
    sent = st.local.requests[-1]["body"]
    assert sent["tool_choice"] == "required"
    assert sent["tools"][0] == {"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city", "parameters": TOOLS[0]["input_schema"]}}
    # the tool results go back; the upstream sees tool messages answering the assistant's tool calls
    second = client.messages.create(model="qwen3:14b", max_tokens=64, tools=TOOLS, messages=[
        {"role": "user", "content": "Weather in Paris"},
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny"},
            {"type": "tool_result", "tool_use_id": uses[1].id, "content": [{"type": "text", "text": "noon"}]},
            {"type": "text", "text": "Thanks"}]},
    ])
    assert second.stop_reason == "end_turn"
    msgs = st.local.requests[-1]["body"]["messages"]
    assert msgs[1]["role"] == "assistant"
    assert [c["id"] for c in msgs[1]["tool_calls"]] == [uses[0].id, uses[1].id]
    assert msgs[2] == {"role": "tool", "tool_call_id": uses[0].id, "content": "sunny"}
    assert msgs[3] == {"role": "tool", "tool_call_id": uses[1].id, "content": "noon"}
    assert msgs[4] == {"role": "user", "content": "Thanks"}


def test_messages_translated_tools_stream(st: Stack) -> None:
    with ant(st).messages.stream(model="qwen3:14b", max_tokens=64, tools=TOOLS,
                                 messages=[{"role": "user", "content": "Weather in Paris"}]) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"query": "Weather in Paris", "n": 1}),
                                                 ("get_time", {"query": "Weather in Paris", "n": 2})]
    assert final.stop_reason == "tool_use"


# ---------------------------------------------------------------- errors and count_tokens


def test_messages_errors_are_anthropic_shaped(st: Stack) -> None:
    client = ant(st)
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "not_found_error"
    r = httpx.post(st.url + "/v1/messages", json={"model": CLAUDE, "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400
    assert r.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                   "message": "Missing required parameter: 'max_tokens'."}}
    # an upstream 4xx from an OpenAI-format backend reaches the client in Anthropic's shape
    st.local.behavior.fail_status = 400
    with pytest.raises(anthropic.BadRequestError) as e2:
        client.messages.create(model="qwen3:8b", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert e2.value.body == {"type": "error", "error": {"type": "invalid_request_error",
                                                        "message": "simulated failure 400"}}
    # server tools cannot be translated for a chat model: a 400 naming them
    with pytest.raises(anthropic.BadRequestError) as e3:
        client.messages.create(model="qwen3:8b", max_tokens=5, messages=[{"role": "user", "content": "x"}],
                               tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert "web_search_20250305" in e3.value.message


def test_messages_midstream_error_is_in_band(st: Stack) -> None:
    st.cloud.behavior.stream_error_after = 3
    st.cloud.behavior.token_delay_s = 0.02
    with ant(st).messages.stream(model=CLAUDE, max_tokens=64,
                                 messages=[{"role": "user", "content": "x"}]) as stream, \
            pytest.raises(anthropic.APIStatusError) as e:
        list(stream)
    assert e.value.body["error"]["type"] == "overloaded_error"  # passed through as Anthropic sent it


def test_openai_sdk_anthropic_error_event(st: Stack) -> None:
    st.cloud.behavior.stream_error_after = 0  # in the first chunk: still before the client saw anything
    with pytest.raises(openai.InternalServerError) as e:
        oai(st).chat.completions.create(model=CLAUDE, stream=True, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 503
    assert "Overloaded" in e.value.message
    st.cloud.behavior.stream_error_after = 3  # later: in-band, in the client's format
    st.cloud.behavior.token_delay_s = 0.02
    stream = oai(st).chat.completions.create(model=CLAUDE, stream=True, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.APIError) as e2:
        list(stream)
    assert "Overloaded" in str(e2.value)


def test_count_tokens_locally(st: Stack) -> None:
    client = ant(st)
    n = client.messages.count_tokens(model=CLAUDE, messages=[{"role": "user", "content": "Hello there, world"}])
    assert 5 < n.input_tokens < 40
    more = client.messages.count_tokens(model=CLAUDE, system="You are a careful assistant. " * 20, tools=TOOLS,
                                        messages=[{"role": "user", "content": "Hello there, world"}])
    assert more.input_tokens > n.input_tokens + 100
    assert not st.cloud.requests
    assert not st.local.requests


# ---------------------------------------------------------------- openai SDK → Anthropic upstream


def test_openai_sdk_to_anthropic_sync(st: Stack) -> None:
    st.cloud.behavior.cache_read_tokens = 2000
    st.cloud.behavior.cache_write_tokens = 100
    raw = oai(st).chat.completions.with_raw_response.create(
        model=CLAUDE, max_tokens=40, temperature=1.5, stop="END", user="u-7",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}])
    r = raw.parse()
    assert r.object == "chat.completion"
    assert r.choices[0].message.content.startswith(f"[{CLAUDE} on cloud]")
    assert r.choices[0].finish_reason == "stop"
    u = r.usage
    assert u.prompt_tokens_details.cached_tokens == 2000
    assert u.prompt_tokens > 2100
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    sent = st.cloud.requests[-1]
    assert sent["path"] == "/v1/messages"
    assert sent["body"] == {"model": CLAUDE, "system": "Be brief.", "max_tokens": 40, "temperature": 1.0,
                            "stop_sequences": ["END"], "metadata": {"user_id": "u-7"},
                            "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]}
    assert sent["headers"]["x-api-key"] == "sk-ant-test-key"
    # priced with cache reads at cached_input, cache writes and fresh input at input
    inp = sent_tokens = u.prompt_tokens - 2000
    cost = float(raw.headers["x-router-cost-usd"])
    assert cost == pytest.approx((sent_tokens * 3.0 + 2000 * 0.3 + u.completion_tokens * 15.0) / 1e6, rel=1e-6)
    assert inp > 0


def test_openai_sdk_to_anthropic_stream(st: Stack) -> None:
    stream = oai(st).chat.completions.create(model=CLAUDE, stream=True, stream_options={"include_usage": True},
                                             messages=[{"role": "user", "content": "Stream please"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith(f"[{CLAUDE} on cloud]")
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens > 0


def test_openai_sdk_to_anthropic_stream_without_usage(st: Stack) -> None:
    stream = oai(st).chat.completions.create(model=CLAUDE, stream=True,
                                             messages=[{"role": "user", "content": "Stream please"}])
    chunks = list(stream)
    assert all(c.choices for c in chunks)


def test_openai_sdk_to_anthropic_streamed_tool_calls(st: Stack) -> None:
    stream = oai(st).chat.completions.create(model=CLAUDE, stream=True, tools=OPENAI_TOOLS, tool_choice="required",
                                             parallel_tool_calls=True,
                                             messages=[{"role": "user", "content": "Weather in Paris please"}])
    calls: dict[int, dict[str, str]] = {}
    text = ""
    finish = None
    for c in stream:
        if not c.choices:
            continue
        d = c.choices[0].delta
        text += d.content or ""
        finish = c.choices[0].finish_reason or finish
        for tc in d.tool_calls or ():
            slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            slot["id"] += tc.id or ""
            slot["name"] += (tc.function.name or "") if tc.function else ""
            slot["arguments"] += (tc.function.arguments or "") if tc.function else ""
    # Anthropic's blocks were 0 (text), 1 and 2 (tools): the OpenAI indexes count tool calls only
    assert sorted(calls) == [0, 1]
    assert calls[0]["name"] == "get_weather"
    assert calls[1]["name"] == "get_time"
    assert json.loads(calls[0]["arguments"]) == {"query": "Weather in Paris please", "n": 1}
    assert json.loads(calls[1]["arguments"]) == {"query": "Weather in Paris please", "n": 2}
    assert calls[0]["id"] == "toolu_sim0"
    assert text
    assert finish == "tool_calls"
    body = st.cloud.requests[-1]["body"]
    assert body["tool_choice"] == {"type": "any"}
    assert body["tools"][0] == {"name": "get_weather", "description": "Weather for a city",
                                "input_schema": TOOLS[0]["input_schema"]}


def test_openai_sdk_to_anthropic_tool_round_trip_and_thinking(st: Stack) -> None:
    client = oai(st)
    r = client.chat.completions.create(model=CLAUDE, tools=OPENAI_TOOLS, reasoning_effort="low",
                                       messages=[{"role": "user", "content": "Weather in Paris"}])
    m = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    assert [t.function.name for t in m.tool_calls] == ["get_weather", "get_time"]
    assert m.model_extra.get("reasoning_content") == "Let me think."
    body = st.cloud.requests[-1]["body"]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["max_tokens"] > 1024
    client.chat.completions.create(model=CLAUDE, tools=OPENAI_TOOLS, messages=[
        {"role": "user", "content": "Weather in Paris"},
        m.model_dump(exclude_none=True, exclude={"reasoning_content"}),
        {"role": "tool", "tool_call_id": m.tool_calls[0].id, "content": "sunny"},
        {"role": "tool", "tool_call_id": m.tool_calls[1].id, "content": "noon"},
    ])
    msgs = st.cloud.requests[-1]["body"]["messages"]
    assert [x["role"] for x in msgs] == ["user", "assistant", "user"]
    assert [b["type"] for b in msgs[1]["content"]] == ["text", "tool_use", "tool_use"]
    assert msgs[1]["content"][1]["input"] == {"query": "Weather in Paris", "n": 1}
    assert msgs[2]["content"] == [
        {"type": "tool_result", "tool_use_id": m.tool_calls[0].id, "content": "sunny"},
        {"type": "tool_result", "tool_use_id": m.tool_calls[1].id, "content": "noon"},
    ]


def test_openai_sdk_image_to_anthropic(st: Stack) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    oai(st).chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]}])
    content = st.cloud.requests[-1]["body"]["messages"][0]["content"]
    assert content[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}
    assert content[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}


def test_openai_sdk_unsupported_parameter_is_named(st: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        oai(st).chat.completions.create(model=CLAUDE, n=2, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["param"] == "n"
    assert not st.cloud.requests


def test_anthropic_overload_promotes_to_next_candidate(st: Stack) -> None:
    st.cloud.behavior.fail_status = 529
    st.cloud.behavior.fail_times = 1
    r = oai(st).chat.completions.with_raw_response.create(
        model="tier:cloud-high", messages=[{"role": "user", "content": "x"}])
    assert r.headers["x-router-attempts"] in ("1", "2")
    assert r.status_code == 200


def test_models_in_anthropic_shape_for_the_anthropic_sdk(st: Stack) -> None:
    client = ant(st)
    page = client.models.list(limit=3)
    assert [m.id for m in page.data] == ["auto", "tier:local-small", "tier:local-large"]
    assert page.has_more is True
    nxt = client.models.list(after_id=page.last_id, limit=1000)
    assert CLAUDE in [m.id for m in nxt.data]
    assert nxt.has_more is False
    m = client.models.retrieve(CLAUDE)
    assert m.type == "model"
    assert m.id == CLAUDE
    with pytest.raises(anthropic.NotFoundError) as e:
        client.models.retrieve("nope")
    assert e.value.body["error"]["type"] == "not_found_error"
    assert httpx.get(st.url + "/v1/models").json()["object"] == "list"  # OpenAI clients keep OpenAI's shape
