"""`kind: azure` against Azure OpenAI's documented wire format: the deployment URL with `api-version`, the
`api-key` header (never `Authorization`), the v1 surface for Responses, and translation for Messages."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from aiohttp import web

from tests.conftest import Stack, make_config, unused_port


class AzureUpstream:
    """Answers like Azure OpenAI on its documented paths and records what it got."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.chat)
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self.embeddings)
        app.router.add_post("/openai/v1/responses", self.responses)
        return app

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body = orjson.loads(await request.read())
        self.seen.append({"path": request.path, "query": dict(request.query), "body": body,
                          "headers": {k.lower(): v for k, v in request.headers.items()}})
        return body

    async def chat(self, request: web.Request) -> web.Response:
        await self._record(request)
        out = {"id": "chatcmpl-az", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi from azure"},
                            "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
        return web.json_response(out)

    async def embeddings(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"object": "list", "model": "text-embedding-3-small",
                                  "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                                  "usage": {"prompt_tokens": 1, "total_tokens": 1}})

    async def responses(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        return web.json_response({
            "id": "resp_az", "object": "response", "created_at": 1, "status": "completed", "model": body["model"],
            "output": [{"type": "message", "id": "msg_az", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": "hi", "annotations": []}]}],
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "error": None,
            "incomplete_details": None, "instructions": None, "metadata": {}, "temperature": 1.0, "top_p": 1.0,
            "usage": {"input_tokens": 2, "output_tokens": 1, "total_tokens": 3,
                      "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}})


@pytest.fixture(scope="module")
def az() -> Iterator[tuple[Stack, AzureUpstream]]:
    upstream = AzureUpstream()
    port = unused_port()  # the backend connects on first use: the fake Azure starts once the router runs

    def config(local_url: str, cloud_url: str) -> dict[str, Any]:
        cfg = make_config(local_url, cloud_url)
        cfg["backends"].append({
            "name": "azure", "kind": "azure", "base_url": f"http://127.0.0.1:{port}/openai",
            "api_key_env": "AZ_TEST_KEY", "api_version": "2024-10-21",
            "models": [{"id": "my-gpt4o", "tier": "cloud-high", "context": 128000, "capabilities": ["responses"],
                        "price": {"input": 2.5, "output": 10}},
                       {"id": "my-embed", "type": "embedding", "context": 8191}],
        })
        return cfg

    os.environ["AZ_TEST_KEY"] = "az-secret"
    st = Stack(config).start()
    runner = web.AppRunner(upstream.app())

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    st.run(start())
    yield st, upstream
    st.run(runner.cleanup())
    st.stop()


def test_chat_goes_to_the_deployment_with_api_version_and_api_key(az: tuple[Stack, AzureUpstream]) -> None:
    st, up = az
    c = openai.OpenAI(base_url=st.url + "/v1", api_key="client-key", max_retries=0)
    r = c.chat.completions.create(model="my-gpt4o", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "hi from azure"
    seen = up.seen[-1]
    assert seen["path"] == "/openai/deployments/my-gpt4o/chat/completions"
    assert seen["query"] == {"api-version": "2024-10-21"}
    assert seen["headers"]["api-key"] == "az-secret"
    assert "authorization" not in seen["headers"]
    assert "client-key" not in str(seen["headers"])


def test_embeddings_and_responses_paths(az: tuple[Stack, AzureUpstream]) -> None:
    st, up = az
    c = openai.OpenAI(base_url=st.url + "/v1", api_key="k", max_retries=0)
    c.embeddings.create(model="my-embed", input="hello")
    assert up.seen[-1]["path"] == "/openai/deployments/my-embed/embeddings"
    assert up.seen[-1]["query"] == {"api-version": "2024-10-21"}
    r = c.responses.create(model="my-gpt4o", input="hi")
    assert r.output_text == "hi"
    assert up.seen[-1]["path"] == "/openai/v1/responses"
    assert up.seen[-1]["query"] == {}
    assert up.seen[-1]["body"] == {"model": "my-gpt4o", "input": "hi"}
    assert up.seen[-1]["headers"]["api-key"] == "az-secret"


def test_messages_translated_for_azure(az: tuple[Stack, AzureUpstream]) -> None:
    st, up = az
    c = anthropic.Anthropic(base_url=st.url, api_key="k", max_retries=0)
    m = c.messages.create(model="my-gpt4o", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    assert m.content[0].text == "hi from azure"
    seen = up.seen[-1]
    assert seen["path"] == "/openai/deployments/my-gpt4o/chat/completions"
    assert seen["body"]["max_completion_tokens"] == 20
    r = httpx.post(st.url + "/v1/messages", json={"model": "my-embed", "max_tokens": 5,
                                                   "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400
    assert r.json()["type"] == "error"
