"""The Responses API through the router with the official openai SDK.

- translated for a chat-only local backend: text, instructions, multi-turn input items, function tools and
  their outputs, JSON and streamed events (response.created … response.output_text.delta … response.completed
  with usage), refusals naming what cannot be translated (stored state, built-in tools);
- passed through untouched to a model with `capabilities: [responses]`, where `input` may be absent;
- translated twice (Responses → chat → Messages) for an Anthropic backend.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Stack, make_config

os.environ.setdefault("AI_ROUTER_TEST_ANTHROPIC_KEY", "sk-ant-test-key")

TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city", "strict": True,
          "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "n": {"type": "integer"}},
                         "required": ["query", "n"], "additionalProperties": False}}]


def config(local_url: str, cloud_url: str) -> dict[str, Any]:
    cfg = make_config(local_url, cloud_url)
    for m in cfg["backends"][1]["models"]:
        if m["id"] == "gpt-5-mini":
            m["capabilities"] = [*m["capabilities"], "responses"]
    cfg["backends"].append({
        "name": "claude", "kind": "anthropic", "base_url": cloud_url, "api_key_env": "AI_ROUTER_TEST_ANTHROPIC_KEY",
        "models": [{"id": "claude-sonnet-4-5", "tier": "cloud-high", "context": 200000,
                    "capabilities": ["tools", "vision"], "price": {"input": 3.0, "output": 15.0}}],
    })
    return cfg


@pytest.fixture(scope="module")
def rstack() -> Iterator[Stack]:
    s = Stack(config).start()
    yield s
    s.stop()


@pytest.fixture
def st(rstack: Stack) -> Iterator[Stack]:
    rstack.reset()
    yield rstack
    rstack.reset()


def client(st: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=st.url + "/v1", api_key="k", max_retries=0)


def test_translated_text_json(st: Stack) -> None:
    raw = client(st).responses.with_raw_response.create(
        model="qwen3:8b", input="Say hello", instructions="Be brief.", max_output_tokens=30, temperature=0.3)
    r = raw.parse()
    assert r.object == "response"
    assert r.status == "completed"
    assert r.output_text.startswith("[qwen3:8b on local]")
    assert r.usage.input_tokens > 0
    assert r.usage.output_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.instructions == "Be brief."
    assert raw.headers["x-router-backend"] == "local"
    sent = st.local.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"] == {"model": "qwen3:8b", "max_tokens": 30, "temperature": 0.3, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]}


def test_translated_stream_events(st: Stack) -> None:
    stream = client(st).responses.create(model="auto", input="hi there, how are you?", stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = events[-1].response
    assert done.output_text == text
    assert text.startswith("[qwen3:8b on local]")
    assert done.usage.output_tokens > 0
    assert done.usage.input_tokens > 0
    assert st.local.requests[-1]["body"]["stream_options"] == {"include_usage": True}


def test_translated_stream_helper_and_cost(st: Stack) -> None:
    with client(st).responses.stream(model="gpt-5-codex", input="Write hello world in C") as stream:
        final = stream.get_final_response()
    assert final.output_text.startswith("[gpt-5-codex on cloud]")
    assert final.usage.total_tokens > 0
    # a cloud backend gets max_completion_tokens, the field OpenAI's current models take
    assert st.cloud.requests[-1]["path"] == "/v1/chat/completions"


def test_translated_multiturn_function_tools(st: Stack) -> None:
    c = client(st)
    first = c.responses.create(model="qwen3:14b", tools=TOOLS, tool_choice="auto", parallel_tool_calls=False,
                               input=[{"role": "user", "content": [{"type": "input_text", "text": "Weather Paris"}]}])
    calls = [o for o in first.output if o.type == "function_call"]
    assert [x.name for x in calls] == ["get_weather"]
    assert json.loads(calls[0].arguments) == {"query": "Weather Paris", "n": 1}
    sent = st.local.requests[-1]["body"]
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city", "parameters": TOOLS[0]["parameters"],
        "strict": True}}]
    assert sent["parallel_tool_calls"] is False
    second = c.responses.create(model="qwen3:14b", tools=TOOLS, input=[
        {"role": "user", "content": "Weather Paris"},
        {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather", "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "It is sunny."}]},
        {"role": "user", "content": "And tomorrow?"},
    ])
    assert second.output_text
    msgs = st.local.requests[-1]["body"]["messages"]
    assert msgs[1] == {"role": "assistant", "content": None, "tool_calls": [{
        "id": calls[0].call_id, "type": "function",
        "function": {"name": "get_weather", "arguments": calls[0].arguments}}]}
    assert msgs[2] == {"role": "tool", "tool_call_id": calls[0].call_id, "content": "sunny"}
    assert msgs[3] == {"role": "assistant", "content": "It is sunny."}
    assert msgs[4] == {"role": "user", "content": "And tomorrow?"}


def test_translated_streamed_function_call(st: Stack) -> None:
    stream = client(st).responses.create(model="qwen3:14b", tools=TOOLS, input="Weather Paris", stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == {"query": "Weather Paris", "n": 1}
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert done.arguments == args
    final = events[-1].response
    assert final.output[0].type == "function_call"
    assert final.output[0].arguments == args


def test_translated_json_format(st: Stack) -> None:
    client(st).responses.create(model="qwen3:8b", input="x", text={"format": {
        "type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}})
    assert st.local.requests[-1]["body"]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True}}


@pytest.mark.parametrize(("extra", "param"), [
    ({"previous_response_id": "resp_123"}, "previous_response_id"),
    ({"conversation": "conv_123"}, "conversation"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
])
def test_translation_refuses_what_needs_openai(st: Stack, extra: dict[str, Any], param: str) -> None:
    body = {"model": "qwen3:8b", "input": "x", **extra}
    r = httpx.post(st.url + "/v1/responses", json=body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == param
    assert err["code"] == "unsupported_parameter"
    assert "capabilities: [responses]" in err["message"]
    assert not st.local.requests


def test_prompt_without_input_is_refused_when_translating(st: Stack) -> None:
    r = httpx.post(st.url + "/v1/responses", json={"model": "qwen3:8b", "prompt": {"id": "pmpt_1"}})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "prompt"


def test_passthrough_to_responses_capable_model(st: Stack) -> None:
    body = {"model": "gpt-5-mini", "prompt": {"id": "pmpt_1", "variables": {"x": "y"}}, "store": True,
            "tools": [{"type": "web_search"}], "previous_response_id": "resp_1"}
    r = httpx.post(st.url + "/v1/responses", json=body)
    assert r.status_code == 200
    assert r.json()["object"] == "response"
    sent = st.cloud.requests[-1]
    assert sent["path"] == "/v1/responses"
    assert sent["body"] == body  # untouched
    assert r.headers["x-router-model"] == "gpt-5-mini"
    assert float(r.headers["x-router-cost-usd"]) > 0
    with client(st).responses.stream(model="gpt-5-mini", input="Stream please") as stream:
        final = stream.get_final_response()
    assert final.output_text.startswith("[gpt-5-mini on cloud]")


def test_responses_to_anthropic(st: Stack) -> None:
    c = client(st)
    r = c.responses.create(model="claude-sonnet-4-5", input="Say hello", instructions="Be brief.")
    assert r.output_text.startswith("[claude-sonnet-4-5 on cloud]")
    sent = st.cloud.requests[-1]
    assert sent["path"] == "/v1/messages"
    assert sent["body"]["system"] == "Be brief."
    with c.responses.stream(model="claude-sonnet-4-5", input="Weather Paris", tools=TOOLS) as stream:
        final = stream.get_final_response()
    kinds = [o.type for o in final.output]
    assert kinds == ["message", "function_call"]
    assert json.loads(final.output[1].arguments) == {"query": "Weather Paris", "n": 1}
    assert final.usage.output_tokens > 0


def test_route_preview_takes_every_body(st: Stack) -> None:
    bodies = {
        "chat": {"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
        "completions": {"model": "auto", "prompt": "hi"},
        "responses": {"model": "auto", "input": "hi", "instructions": "x"},
        "messages": {"model": "auto", "max_tokens": 10, "system": "x", "messages": [{"role": "user", "content": "hi"}]},
        "embeddings": {"model": "nomic-embed-text", "input": "hi"},
    }
    for kind, body in bodies.items():
        r = httpx.post(st.url + "/v1/route", json=body)
        assert r.status_code == 200, (kind, r.text)
        d = r.json()
        assert d["tokens"] > 0, kind
        assert d["model"], kind
    r = httpx.post(st.url + "/v1/route?endpoint=responses", json={"model": "auto", "input": "hi"})
    assert r.json()["model"] == "qwen3:8b"
    assert not st.local.requests
    assert not st.cloud.requests


def test_auto_sends_what_needs_openai_state_to_a_native_model(st: Stack) -> None:
    for extra in ({"previous_response_id": "resp_1"}, {"tools": [{"type": "web_search"}]}, {"input": None}):
        body = {"model": "auto", "input": "hi there", **extra}
        r = httpx.post(st.url + "/v1/responses", json={k: v for k, v in body.items() if v is not None})
        assert r.status_code == 200, (extra, r.text)
        assert r.headers["x-router-model"] == "gpt-5-mini", extra  # the one model with `capabilities: [responses]`
    r = httpx.post(st.url + "/v1/route", json={"model": "auto", "input": "hi", "conversation": "conv_1"})
    assert r.json()["model"] == "gpt-5-mini"
    assert not st.local.requests
