"""The official openai SDK (sync and async) through the router against the simulated upstreams."""

from __future__ import annotations

import re

import httpx
import openai
import orjson
import pytest

from tests.conftest import Stack


def sync_client(live: Stack, **kw: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url + "/v1", api_key="client-key-must-not-leak", max_retries=0, **kw)


def async_client(live: Stack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=live.url + "/v1", api_key="client-key-must-not-leak", max_retries=0)


def test_chat_non_streaming_sync(live: Stack) -> None:
    client = sync_client(live)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-5-mini", messages=[{"role": "user", "content": "Say hello"}]
    )
    r = raw.parse()
    assert r.choices[0].message.content.startswith("[gpt-5-mini on cloud]")
    assert r.usage is not None
    assert r.usage.completion_tokens > 0
    h = raw.headers
    assert h["x-router-model"] == "gpt-5-mini"
    assert h["x-router-backend"] == "cloud"
    assert h["x-router-tier"] == "cloud-mini"
    assert h["x-router-attempts"] == "1"
    assert float(h["x-router-cost-usd"]) > 0
    assert float(h["x-router-overhead-ms"]) >= 0
    assert h["x-request-id"]
    sent = live.cloud.requests[-1]
    # The client's key never reaches the upstream; the backend's own key does.
    assert sent["headers"]["authorization"] == "Bearer sk-test-cloud-key"
    assert "client-key-must-not-leak" not in str(sent["headers"])


async def test_chat_non_streaming_async_auto(live: Stack) -> None:
    client = async_client(live)
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi! how are you today?"}]
    )
    r = raw.parse()
    assert r.choices[0].message.content
    assert raw.headers["x-router-task"] == "chat"
    assert raw.headers["x-router-backend"] == "local"
    assert live.local.requests[-1]["body"]["model"] == raw.headers["x-router-model"]
    # A local upstream without api_key_env gets no Authorization at all.
    assert "authorization" not in live.local.requests[-1]["headers"]


def _direct_sse(live: Stack, body: dict) -> bytes:
    with httpx.Client() as c:
        return c.post(live.cloud_url + "/chat/completions", json=body).content


def test_streaming_sync_matches_upstream(live: Stack) -> None:
    client = sync_client(live)
    stream = client.chat.completions.create(
        model="gpt-5", messages=[{"role": "user", "content": "Stream please"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    # Every chunk the client sees has choices (the injected usage chunk is kept from it).
    assert all(c.choices for c in chunks)
    sent = live.cloud.requests[-1]["body"]
    assert sent["stream_options"] == {"include_usage": True}
    direct = _direct_sse(live, {**sent, "stream_options": {"include_usage": False}})
    expected = "".join(
        (orjson.loads(line[6:])["choices"][0]["delta"].get("content") or "")
        for line in direct.decode().split("\n\n")
        if line.startswith("data: {")
    )
    assert text == expected
    assert text.startswith("[gpt-5 on cloud]")


def test_streaming_raw_sse_identical_with_client_usage(live: Stack) -> None:
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": "x"}], "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.Client() as c:
        via_router = c.post(live.url + "/v1/chat/completions", json=body).content
    direct = _direct_sse(live, body)

    def events(b: bytes) -> list[bytes]:
        # ids and timestamps differ per call; compare the event sequence with those masked
        return [re.sub(rb'"id":"[^"]+","object":"([^"]+)","created":\d+', rb'"object":"\1"', e)
                for e in b.split(b"\n\n")]

    assert events(via_router) == events(direct)
    assert b'"choices":[]' in via_router  # the client asked for usage, so it gets the usage chunk


async def test_streaming_async(live: Stack) -> None:
    client = async_client(live)
    stream = await client.chat.completions.create(
        model="qwen3:8b", messages=[{"role": "user", "content": "hey"}], stream=True,
        stream_options={"include_usage": True},
    )
    usage = None
    text = ""
    async for c in stream:
        if c.usage:
            usage = c.usage
        if c.choices:
            text += c.choices[0].delta.content or ""
    assert text.startswith("[qwen3:8b on local]")
    assert usage is not None
    assert usage.completion_tokens > 0
    assert usage.prompt_tokens > 0


def test_completions(live: Stack) -> None:
    client = sync_client(live)
    r = client.completions.create(model="gpt-5-mini", prompt="Once upon a time")
    assert r.choices[0].text.startswith("[gpt-5-mini on cloud]")
    s = client.completions.create(model="gpt-5-mini", prompt="Once upon a time", stream=True)
    text = "".join(c.choices[0].text for c in s if c.choices)
    assert text.startswith("[gpt-5-mini on cloud]")


async def test_embeddings(live: Stack) -> None:
    client = async_client(live)
    r = await client.embeddings.create(model="nomic-embed-text", input=["a", "b"])
    assert len(r.data) == 2
    assert len(r.data[0].embedding) == 64
    assert live.local.requests[-1]["path"] == "/v1/embeddings"
    auto = await client.embeddings.with_raw_response.create(model="auto", input="route me")
    assert auto.headers["x-router-model"] in ("nomic-embed-text", "text-embedding-3-small")


def test_models_list(live: Stack) -> None:
    client = sync_client(live)
    ids = [m.id for m in client.models.list()]
    assert "auto" in ids
    assert "tier:cloud-mini" in ids
    assert "qwen3:8b" in ids
    assert "gpt-5" in ids
    assert client.models.retrieve("gpt-5").owned_by == "cloud"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_error_mapping_bad_request(live: Stack) -> None:
    client = sync_client(live)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="auto", messages=[])
    assert e.value.code == "empty_array"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="auto", messages="hello")  # type: ignore[arg-type]


def test_error_mapping_unknown_model(live: Stack) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        sync_client(live).chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"


def test_error_mapping_upstream_502(live: Stack) -> None:
    live.cloud.behavior.fail_status = 500
    with pytest.raises(openai.APIStatusError) as e:
        sync_client(live).chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 502
    assert e.value.code == "upstream_error"


def test_error_mapping_upstream_504(live: Stack) -> None:
    live.cloud.behavior.hang = True
    with pytest.raises(openai.APIStatusError) as e:
        sync_client(live, timeout=20).chat.completions.create(
            model="gpt-5", messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.status_code == 504
    assert e.value.code == "upstream_timeout"
