"""`/admin/keys` over real sockets: a key is shown once, stored hashed with its tenant and allowances, works
with the openai SDK at once, records its last use, expires, and stops working when deleted; keys persist
in SQLite across a restart and are shared by replicas through Redis."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Stack, make_config
from tests.redis_support import delete_prefix, new_prefix, redis_url, require_redis

ADMIN = "sk-admin-keys-test"
ADMIN_ENV = "AI_ROUTER_TEST_KEYS_ADMIN"
CONFIG_KEY = "sk-config-key-test"
MSG = [{"role": "user", "content": "hello"}]


def keyed_config(state_url: str = "memory://") -> Any:
    def make(local: str, cloud: str) -> dict[str, Any]:
        keys = [{"name": "from-config", "key_sha256": hashlib.sha256(CONFIG_KEY.encode()).hexdigest(),
                 "tenant": "acme/cfg"}]
        return make_config(local, cloud, auth={"admin_key_env": ADMIN_ENV, "keys": keys},
                           state={"url": state_url})
    return make


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    mp = pytest.MonkeyPatch()
    mp.setenv(ADMIN_ENV, ADMIN)
    s = Stack(keyed_config()).start()
    yield s
    s.stop()
    mp.undo()


def admin(stack: Stack, method: str, path: str = "/admin/keys", key: str | None = ADMIN,
          **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    with httpx.Client() as c:
        return c.request(method, stack.url + path, headers=headers, **kw)


def sdk(stack: Stack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=key, max_retries=0)


def test_admin_key_required(stack: Stack) -> None:
    assert admin(stack, "GET", key=None).status_code == 401
    assert admin(stack, "GET", key="sk-wrong").status_code == 401
    assert admin(stack, "POST", key=CONFIG_KEY, json={"name": "x", "tenant": "a/b"}).status_code == 401


def test_admin_api_disabled_without_admin_key() -> None:
    s = Stack().start()
    try:
        r = admin(s, "GET")
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "admin_disabled"
    finally:
        s.stop()


def test_create_use_list_delete(stack: Stack) -> None:
    r = admin(stack, "POST", json={"name": "mobile", "tenant": "acme/mobile", "models": ["auto", "qwen3:*"]})
    assert r.status_code == 201, r.text
    made = r.json()
    secret = made["key"]
    assert secret.startswith("sk-air-")
    assert len(secret) > 40
    assert made["tenant"] == "acme/mobile"
    assert "sha256" not in made
    reply = sdk(stack, secret).chat.completions.with_raw_response.create(model="qwen3:8b", messages=MSG)
    assert reply.http_response.status_code == 200
    with pytest.raises(openai.PermissionDeniedError):
        sdk(stack, secret).chat.completions.create(model="gpt-5", messages=MSG)
    listing = admin(stack, "GET").json()["keys"]
    assert secret not in str(listing)
    assert hashlib.sha256(secret.encode()).hexdigest() not in str(listing)  # never the digest either
    by_name = {k["name"]: k for k in listing}
    assert by_name["from-config"]["source"] == "config"
    mine = by_name["mobile"]
    assert mine["source"] == "store"
    assert mine["id"] == made["id"]
    deadline = time.monotonic() + 3
    while admin(stack, "GET", f"/admin/keys/{made['id']}").json()["last_used_at"] is None:
        assert time.monotonic() < deadline, "last use not recorded"
        time.sleep(0.05)
    assert admin(stack, "DELETE", f"/admin/keys/{made['id']}").status_code == 204
    with pytest.raises(openai.AuthenticationError):
        sdk(stack, secret).chat.completions.create(model="qwen3:8b", messages=MSG)
    assert admin(stack, "DELETE", f"/admin/keys/{made['id']}").status_code == 404
    other = admin(stack, "POST", json={"name": "other", "tenant": "acme/o"}).json()
    assert admin(stack, "DELETE", json={"id": other["id"]}).status_code == 204  # DELETE /admin/keys {"id"}
    assert admin(stack, "DELETE").status_code == 400


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"name": "x"}, 400, "tenant"),
    ({"name": "x", "tenant": "no-slash"}, 400, "tenant"),
    ({"name": "x", "tenant": "a/b", "tiers": ["gpu-*"]}, 400, "tiers[0]"),
    ({"name": "x", "tenant": "a/b", "limits": {"rpm": 0}}, 400, "limits.rpm"),
    ({"name": "x", "tenant": "a/b", "expires": "2020-01-01"}, 400, "expires"),
    ({"name": "x", "tenant": "a/b", "key": "sk-chosen"}, 400, "key"),
    ({"name": "from-config", "tenant": "a/b"}, 409, "name"),
    (["not", "an", "object"], 400, None),
])
def test_bad_bodies(stack: Stack, body: Any, status: int, param: str | None) -> None:
    r = admin(stack, "POST", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param


def test_expiry(stack: Stack) -> None:
    made = admin(stack, "POST", json={"name": "short", "tenant": "acme/tmp", "expires": time.time() + 1.0}).json()
    assert sdk(stack, made["key"]).chat.completions.create(model="qwen3:8b", messages=MSG).choices
    time.sleep(1.1)
    with pytest.raises(openai.AuthenticationError) as e:
        sdk(stack, made["key"]).chat.completions.create(model="qwen3:8b", messages=MSG)
    assert e.value.code == "expired_api_key"
    assert admin(stack, "GET", f"/admin/keys/{made['id']}").json()["expired"] is True


def test_keys_survive_a_restart_in_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADMIN_ENV, ADMIN)
    url = f"sqlite:///{tmp_path}/state.db"
    first = Stack(keyed_config(url)).start()
    try:
        secret = admin(first, "POST", json={"name": "durable", "tenant": "acme/d"}).json()["key"]
    finally:
        first.stop()
    second = Stack(keyed_config(url)).start()
    try:
        assert sdk(second, secret).chat.completions.create(model="qwen3:8b", messages=MSG).choices
        assert [k["name"] for k in admin(second, "GET").json()["keys"]] == ["from-config", "durable"]
    finally:
        second.stop()


def test_replicas_share_keys_through_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    require_redis()
    monkeypatch.setenv(ADMIN_ENV, ADMIN)
    prefix = new_prefix()
    a = Stack(keyed_config(redis_url(prefix))).start()
    b = Stack(keyed_config(redis_url(prefix))).start()
    try:
        made = admin(a, "POST", json={"name": "shared", "tenant": "acme/s"}).json()
        assert sdk(b, made["key"]).chat.completions.create(model="qwen3:8b", messages=MSG).choices
        assert admin(b, "DELETE", f"/admin/keys/{made['id']}").status_code == 204
        with pytest.raises(openai.AuthenticationError):
            sdk(b, made["key"]).chat.completions.create(model="qwen3:8b", messages=MSG)
    finally:
        a.stop()
        b.stop()
        delete_prefix(prefix)
