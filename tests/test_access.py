"""Safe defaults: who may reach what. The shipped host is loopback; a public port needs keys or auth.open;
an open router says so; with keys everything but /healthz and /readyz needs one; /readyz tells an
anonymous caller nothing about backends; `auth` is validated with key paths; key tiers and steering."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from router.auth import KeyRing, is_loopback
from router.cli import main as cli_main
from router.config import ConfigError, load
from router.errors import AuthenticationFailed
from tests.conftest import Stack, make_config

KEY = "sk-access-test-key"
LOCAL_KEY = "sk-access-local-only"
ADMIN = "sk-access-admin"
MSG = [{"role": "user", "content": "hello"}]
PIPELINE = ["auth", "route", "retry"]


def sha(k: str) -> str:
    return hashlib.sha256(k.encode()).hexdigest()


def ring(auth: dict, pipeline: list | None = None, env: dict | None = None) -> KeyRing:
    return KeyRing(auth, PIPELINE if pipeline is None else pipeline, ["local-small", "local-large", "cloud-mini"],
                   env={} if env is None else env)


# ---------------------------------------------------------------- start-up safety (units)


def test_shipped_config_binds_loopback() -> None:
    root = Path(__file__).resolve().parent.parent
    cfg = load(root / "config" / "router.yaml", env={})
    assert cfg.server.host == "127.0.0.1"
    assert load(root / "config" / "demo.yaml", env={}).server.host == "127.0.0.1"


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "router.internal"])
def test_public_host_without_keys_refuses(host: str) -> None:
    with pytest.raises(ConfigError, match=r"server.host: refusing .*auth.open: true"):
        ring({}).exposure(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.5"])
def test_loopback_without_keys_is_open_and_says_so(host: str) -> None:
    assert is_loopback(host)
    assert "OPEN" in (ring({}).exposure(host) or "")


def test_open_on_purpose_and_keyed_routers() -> None:
    assert "auth.open: true" in (ring({"open": True}).exposure("0.0.0.0") or "")
    keyed = ring({"keys": [{"name": "a", "key_sha256": sha(KEY), "tenant": "acme/web"}]})
    assert keyed.required
    assert keyed.exposure("0.0.0.0") is None
    admin_only = ring({"admin_key_env": "ADM"}, env={"ADM": ADMIN})  # run-time keys: clients need one
    assert admin_only.required
    assert admin_only.exposure("0.0.0.0") is None


def test_a_config_key_is_hashed_once_and_still_checked_every_time() -> None:
    keyed = ring({"keys": [{"name": "a", "key_sha256": sha(KEY), "tenant": "acme/web"},
                           {"name": "old", "key_sha256": sha("sk-expired"), "expires": "2020-01-01"}]})
    first, _ = keyed.identify_sync({"Authorization": f"Bearer {KEY}"})
    again, _ = keyed.identify_sync({"x-api-key": KEY})
    assert first is not None
    assert first is again
    assert first.tenant == "acme/web"
    for _ in range(2):  # remembered or not, an expired key is refused
        with pytest.raises(AuthenticationFailed, match="expired"):
            keyed.identify_sync({"x-api-key": "sk-expired"})
    for _ in range(2):  # a wrong key is never remembered
        with pytest.raises(AuthenticationFailed, match="Incorrect"):
            keyed.identify_sync({"x-api-key": "sk-wrong"})
    assert set(keyed._seen) == {KEY, "sk-expired"}


def test_serve_refuses_a_public_port_without_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_config("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert cli_main(["serve", "--config", str(path), "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to serve on 0.0.0.0" in err
    assert "auth.open: true" in err


@pytest.mark.parametrize(("auth", "pipeline", "message"), [
    ({"keys": [{"name": "a", "key_sha256": "0" * 64}]}, ["route", "retry"], "pipeline: auth.keys are configured"),
    ({"keys": [{"name": "a", "key_sha256": "0" * 64}]}, [{"use": "route"}], "`auth` is not in the pipeline"),
    ({"kyes": []}, None, "auth.kyes: unknown key"),
    ({"open": "maybe"}, None, "auth.open: expected true or false"),
    ({"keys": {}}, None, "auth.keys: expected a list"),
    ({"keys": [{"key_sha256": "0" * 64}]}, None, r"auth.keys\[0\].name: required"),
    ({"keys": [{"name": "a", "key": "sk-plain"}]}, None, r"auth.keys\[0\].key: unknown key"),
    ({"keys": [{"name": "a"}]}, None, r"auth.keys\[0\]: needs exactly one of key_env"),
    ({"keys": [{"name": "a", "key_env": "UNSET_VAR_X"}]}, None, r"auth.keys\[0\].key_env: .*UNSET_VAR_X is not set"),
    ({"keys": [{"name": "a", "key_sha256": "abc"}]}, None, r"auth.keys\[0\].key_sha256: expected 64 hex"),
    ({"keys": [{"name": "a", "key_sha256": "0" * 64, "tenant": "acme"}]}, None, r"auth.keys\[0\].tenant: expected"),
    ({"keys": [{"name": "a", "key_sha256": "0" * 64, "models": "auto"}]}, None, r"auth.keys\[0\].models: expected"),
    ({"keys": [{"name": "a", "key_sha256": "0" * 64, "tiers": ["gpu-*"]}]}, None,
     r"auth.keys\[0\].tiers\[0\]: 'gpu-\*' matches no tier"),
    ({"keys": [{"name": "a", "key_sha256": "0" * 64, "limits": {"rpm": -1}}]}, None,
     r"auth.keys\[0\].limits.rpm: expected a positive number"),
    ({"keys": [{"name": "a", "key_sha256": "0" * 64, "expires": "soon"}]}, None, r"auth.keys\[0\].expires: expected"),
    ({"keys": [{"name": "a", "key_sha256": "0" * 64}, {"name": "a", "key_sha256": "1" * 64}]}, None,
     r"auth.keys\[1\].name: duplicate"),
])
def test_auth_section_errors_name_the_key_path(auth: dict, pipeline: list | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ring(auth, pipeline)


def test_check_command_reports_auth_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_config("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1",
                      auth={"keys": [{"name": "a", "key_sha256": "0" * 64}]}, pipeline=["route", "retry"])
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert cli_main(["check", str(path)]) == 2
    assert "auth is not in the pipeline" in capsys.readouterr().err.replace("`", "")


def test_open_router_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ai_router")
    stack = Stack().start()
    try:
        assert any("router is OPEN" in r.getMessage() for r in caplog.records)
    finally:
        stack.stop()


# ---------------------------------------------------------------- a keyed router over real sockets


@pytest.fixture(scope="module")
def keyed() -> Iterator[Stack]:
    mp = pytest.MonkeyPatch()
    mp.setenv("AI_ROUTER_TEST_ACCESS_ADMIN", ADMIN)
    keys = [
        {"name": "web", "key_sha256": sha(KEY), "tenant": "acme/web"},
        {"name": "edge", "key_sha256": sha(LOCAL_KEY), "tenant": "acme/edge", "tiers": ["local-*"],
         "steering": False},
        {"name": "old", "key_sha256": sha("sk-expired"), "tenant": "acme/old", "expires": "2020-01-01"},
    ]
    auth = {"keys": keys, "admin_key_env": "AI_ROUTER_TEST_ACCESS_ADMIN"}
    stack = Stack(lambda local, cloud: make_config(local, cloud, auth=auth)).start()
    yield stack
    stack.stop()
    mp.undo()


def get(stack: Stack, path: str, key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    with httpx.Client() as c:
        return c.get(stack.url + path, headers=headers)


def test_everything_but_health_needs_a_key(keyed: Stack) -> None:
    assert get(keyed, "/healthz").status_code == 200
    for path in ("/v1/models", "/v1/models/gpt-5"):
        r = get(keyed, path)
        assert r.status_code == 401, path
        assert r.json()["error"]["type"] == "authentication_error"
        assert get(keyed, path, "sk-wrong").status_code == 401
        assert get(keyed, path, KEY).status_code == 200
    with httpx.Client() as c:
        for path in ("/v1/chat/completions", "/v1/route"):
            assert c.post(keyed.url + path, json={"model": "auto", "messages": MSG}).status_code == 401
        assert c.post(keyed.url + "/v1/embeddings", json={"model": "auto", "input": "x"}).status_code == 401
    models = openai.OpenAI(base_url=keyed.url + "/v1", api_key=KEY).models.list()
    assert "auto" in [m.id for m in models.data]


def test_readyz_tells_anonymous_callers_nothing(keyed: Stack) -> None:
    r = get(keyed, "/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready"}
    assert "local" not in r.text
    assert "cloud" not in r.text
    assert get(keyed, "/readyz", KEY).json() == {"status": "ready"}  # a client key is not the operator
    assert set(get(keyed, "/readyz", ADMIN).json()["backends"]) == {"local", "cloud"}


def test_expired_key_is_401(keyed: Stack) -> None:
    with pytest.raises(openai.AuthenticationError) as e:
        openai.OpenAI(base_url=keyed.url + "/v1", api_key="sk-expired", max_retries=0).models.list()
    assert e.value.code == "expired_api_key"


def test_key_tiers_and_steering(keyed: Stack) -> None:
    edge = openai.OpenAI(base_url=keyed.url + "/v1", api_key=LOCAL_KEY, max_retries=0)
    hard = "Prove that there are infinitely many primes, step by step, and discuss the history. " * 30
    r = edge.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": hard}], extra_headers={"x-router-prefer": "cloud"})
    assert r.headers["x-router-tier"].startswith("local-")  # routed within its tiers, steering ignored
    with pytest.raises(openai.PermissionDeniedError) as e:
        edge.chat.completions.create(model="gpt-5", messages=MSG)
    assert e.value.code == "tier_not_allowed"
    web = openai.OpenAI(base_url=keyed.url + "/v1", api_key=KEY, max_retries=0)
    r = web.chat.completions.with_raw_response.create(model="auto", messages=MSG,
                                                      extra_headers={"x-router-prefer": "cloud"})
    assert r.headers["x-router-backend"] == "cloud"  # this key may steer


def test_admin_key_alone_makes_clients_need_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_ROUTER_TEST_ACCESS_ADMIN2", ADMIN)
    auth = {"admin_key_env": "AI_ROUTER_TEST_ACCESS_ADMIN2"}
    stack = Stack(lambda local, cloud: make_config(local, cloud, auth=auth)).start()
    try:
        with httpx.Client() as c:
            r = c.post(stack.url + "/v1/chat/completions", json={"model": "auto", "messages": MSG})
        assert r.status_code == 401
        assert get(stack, "/v1/models").status_code == 401
    finally:
        stack.stop()


def test_open_with_keys_serves_anonymous_but_checks_sent_keys() -> None:
    auth = {"open": True, "keys": [{"name": "web", "key_sha256": sha(KEY), "tenant": "acme/web"}]}
    stack = Stack(lambda local, cloud: make_config(local, cloud, auth=auth)).start()
    try:
        assert get(stack, "/v1/models").status_code == 200
        assert get(stack, "/v1/models", KEY).status_code == 200
        assert get(stack, "/v1/models", "sk-wrong").status_code == 401
    finally:
        stack.stop()
