"""Client keys: missing, wrong, valid (Bearer or x-api-key), model allow-lists; never forwarded upstream."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import Stack, make_config

WEB_KEY = "sk-web-app-test-key"
BATCH_KEY = "sk-batch-test-key"


@pytest.fixture(scope="module")
def keyed() -> Iterator[Stack]:
    os.environ["AI_ROUTER_TEST_WEB_KEY"] = WEB_KEY
    keys = [
        {"name": "web-app", "key_env": "AI_ROUTER_TEST_WEB_KEY", "tenant": "acme/web", "models": ["auto", "qwen3:*"]},
        {"name": "batch", "key_sha256": hashlib.sha256(BATCH_KEY.encode()).hexdigest(), "tenant": "acme/batch"},
    ]
    stack = Stack(lambda local, cloud: make_config(local, cloud, auth={"keys": keys})).start()
    yield stack
    stack.stop()


def client(stack: Stack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=key, max_retries=0)


MSG = [{"role": "user", "content": "hello"}]


def test_missing_key_is_401(keyed: Stack) -> None:
    with httpx.Client() as c:
        r = c.post(keyed.url + "/v1/chat/completions", json={"model": "auto", "messages": MSG})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "missing_api_key"


def test_wrong_key_is_401(keyed: Stack) -> None:
    with pytest.raises(openai.AuthenticationError) as e:
        client(keyed, "sk-nope").chat.completions.create(model="auto", messages=MSG)
    assert e.value.code == "invalid_api_key"


def test_valid_keys(keyed: Stack) -> None:
    r = client(keyed, WEB_KEY).chat.completions.create(model="qwen3:8b", messages=MSG)
    assert r.choices[0].message.content
    r = client(keyed, BATCH_KEY).chat.completions.create(model="gpt-5", messages=MSG)  # no allow-list: all models
    assert r.choices[0].message.content
    assert keyed.cloud.requests[-1]["headers"]["authorization"] == "Bearer sk-test-cloud-key"
    for up in (keyed.local, keyed.cloud):
        assert all(WEB_KEY not in str(q["headers"]) and BATCH_KEY not in str(q["headers"]) for q in up.requests)


def test_x_api_key_header(keyed: Stack) -> None:
    with httpx.Client() as c:
        r = c.post(keyed.url + "/v1/chat/completions", json={"model": "auto", "messages": MSG},
                   headers={"x-api-key": BATCH_KEY})
    assert r.status_code == 200


def test_model_allow_list_is_403(keyed: Stack) -> None:
    with pytest.raises(openai.PermissionDeniedError) as e:
        client(keyed, WEB_KEY).chat.completions.create(model="gpt-5", messages=MSG)
    assert e.value.code == "model_not_allowed"


def test_preview_needs_a_key_too(keyed: Stack) -> None:
    with httpx.Client() as c:
        assert c.post(keyed.url + "/v1/route", json={"model": "auto", "messages": MSG}).status_code == 401
        r = c.post(keyed.url + "/v1/route", json={"model": "auto", "messages": MSG},
                   headers={"authorization": f"Bearer {WEB_KEY}"})
    assert r.status_code == 200
    assert r.json()["model"]


def test_keyring_remembers_the_header_of_a_key_that_never_expires() -> None:
    """The usual request is one header and one dict lookup (KeyRing._headers); an expiring key is checked every
    time, a wrong key is still refused, and x-api-key is read as before."""
    import time as _time

    import pytest

    from router.auth import KeyRing
    from router.errors import AuthenticationFailed

    env = {"K1": "sk-one-0123456789", "K2": "sk-two-0123456789"}
    ring = KeyRing({"keys": [{"name": "one", "key_env": "K1", "tenant": "a/b"},
                             {"name": "two", "key_env": "K2", "tenant": "a/c", "expires": _time.time() + 3600}]},
                   ["auth"], env=env)
    for _ in range(3):
        entry, digest = ring.identify_sync({"Authorization": "Bearer sk-one-0123456789"})
        assert (entry.name if entry else None, digest) == ("one", None)
    assert list(ring._headers) == ["Bearer sk-one-0123456789"]
    assert ring.identify_sync({"x-api-key": "sk-one-0123456789"})[0].name == "one"  # type: ignore[union-attr]
    assert ring.identify_sync({"Authorization": "Bearer sk-two-0123456789"})[0].name == "two"  # type: ignore[union-attr]
    assert "Bearer sk-two-0123456789" not in ring._headers  # it expires: checked on every request
    object.__setattr__(ring.keys[next(d for d, k in ring.keys.items() if k.name == "two")], "expires_at", 1.0)
    with pytest.raises(AuthenticationFailed):
        ring.identify_sync({"Authorization": "Bearer sk-two-0123456789"})
    with pytest.raises(AuthenticationFailed):
        ring.identify_sync({"Authorization": "Bearer sk-wrong"})
    with pytest.raises(AuthenticationFailed):
        ring.identify_sync({"Authorization": "Basic sk-one-0123456789"})
