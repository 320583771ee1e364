"""Embeddings done right: only embedding models serve /v1/embeddings, and the headers say so."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import Stack


def client(live: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url + "/v1", api_key="k", max_retries=0)


@pytest.mark.parametrize(("model", "backend"), [("nomic-embed-text", "local"), ("auto", "local"),
                                                 ("text-embedding-3-small", "cloud")])
def test_embedding_models_serve_embeddings(live: Stack, model: str, backend: str) -> None:
    raw = client(live).embeddings.with_raw_response.create(model=model, input=["hello", "world"])
    r = raw.parse()
    assert len(r.data) == 2
    assert raw.headers["x-router-backend"] == backend
    assert raw.headers["x-router-tier"] == "embedding"  # the embedding models have no tier of their own
    assert raw.headers["x-router-task"] == "embedding"


def test_chat_model_on_embeddings_is_a_400(live: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client(live).embeddings.create(model="qwen3:8b", input="hello")
    assert e.value.body["param"] == "model"
    assert "nomic-embed-text" in e.value.body["message"]
    assert not live.local.requests
    assert not live.cloud.requests


def test_embedding_model_on_chat_is_a_400(live: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client(live).chat.completions.create(model="nomic-embed-text", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["param"] == "model"
    assert not live.local.requests
