"""What a cloud upstream really receives under each redaction policy, over real sockets with the openai SDK,
streamed and not; and that restore gives the client its original values byte for byte."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import Stack, make_config
from tests.recording_upstream import RecordingUpstream

VALUES = {
    "EMAIL": "ana.silva@empresa.com.br",
    "OPENAI_KEY": "sk-proj-Q9xV2mB7kLp4Rt8Zw1Yc6Nd3Hs5Jf0Ga",
    "CARD": "4539 1488 0343 6467",
    "CPF": "529.982.247-25",
    "PASSWORD": "Xy7!qPz9Lm",
    "PHONE": "+55 11 98765-4321",
}
PROMPT = (f"Olá! Meu e-mail é {VALUES['EMAIL']} (joão 😀 日本), a chave {VALUES['OPENAI_KEY']}, cartão "
          f"{VALUES['CARD']}, CPF {VALUES['CPF']}, db password={VALUES['PASSWORD']} e fone {VALUES['PHONE']}. "
          f"Repito: {VALUES['EMAIL']}.")
CLEAN = "What is the capital of France? Answer in one word."
TENANTS = {
    "redact": {"policy": "redact", "apply_to": "cloud", "restore": True},
    "norestore": {"policy": "redact", "restore": False},
    "block": {"policy": "block"},
    "local": {"policy": "local_only"},
    "all": {"policy": "redact", "apply_to": "all"},
}


def key(name: str) -> str:
    return f"sk-router-test-{name}"


class RecordingStack(Stack):
    def __init__(self, config_fn: Any) -> None:
        super().__init__(config_fn)
        self.local = RecordingUpstream("local")  # type: ignore[assignment]
        self.cloud = RecordingUpstream("cloud")  # type: ignore[assignment]

    def clear(self) -> None:
        for up in (self.local, self.cloud):
            up.requests.clear()
            up.fail_status = None


def config(local: str, cloud: str, **extra: Any) -> dict[str, Any]:
    keys = [{"name": n, "key_sha256": hashlib.sha256(key(n).encode()).hexdigest(), "tenant": f"acme/{n}"}
            for n in TENANTS]
    tenants = [{"match": f"acme/{n}", "redact": p} for n, p in TENANTS.items()]
    return make_config(local, cloud, auth={"keys": keys}, tenants=tenants, **extra)


@pytest.fixture(scope="module")
def rec() -> Iterator[RecordingStack]:
    stack = RecordingStack(config)
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture
def up(rec: RecordingStack) -> Iterator[RecordingStack]:
    rec.clear()
    yield rec
    rec.clear()


def client(stack: Stack, tenant: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=key(tenant), max_retries=0)


def chat(stack: Stack, tenant: str, model: str, text: str = PROMPT, stream: bool = False) -> str:
    c = client(stack, tenant)
    msgs = [{"role": "system", "content": f"Support bot. Escalate to {VALUES['EMAIL']}."},
            {"role": "user", "content": [{"type": "text", "text": text}]}]
    if not stream:
        return c.chat.completions.create(model=model, messages=msgs).choices[0].message.content or ""
    return "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model=model, messages=msgs, stream=True) if ch.choices)


def assert_no_values(received: str) -> None:
    for kind, value in VALUES.items():
        assert value not in received, f"{kind} reached the upstream"
        assert value.replace("/", "\\/") not in received


@pytest.mark.parametrize("stream", [False, True])
def test_redact_cloud_gets_placeholders_client_gets_its_values(up: RecordingStack, stream: bool) -> None:
    assert chat(up, "redact", "gpt-5", stream=stream) == PROMPT  # byte for byte, placeholders split in the stream
    sent = up.cloud.received()
    assert_no_values(sent)
    assert "⟦EMAIL_1⟧" in sent
    assert "⟦CARD_1⟧" in sent
    assert "⟦OPENAI_KEY_1⟧" in sent
    assert "joão 😀 日本" in sent  # the rest of the text is untouched
    assert not up.local.requests


def test_redact_local_gets_raw_text_under_apply_to_cloud(up: RecordingStack) -> None:
    assert chat(up, "redact", "qwen3:8b") == PROMPT
    assert VALUES["EMAIL"] in up.local.received()
    assert "⟦" not in up.local.received()


@pytest.mark.parametrize("stream", [False, True])
def test_apply_to_all_redacts_for_local_too(up: RecordingStack, stream: bool) -> None:
    assert chat(up, "all", "qwen3:8b", stream=stream) == PROMPT
    assert_no_values(up.local.received())


def test_without_restore_the_client_sees_placeholders(up: RecordingStack) -> None:
    answer = chat(up, "norestore", "gpt-5")
    assert VALUES["EMAIL"] not in answer
    assert "⟦EMAIL_1⟧" in answer


def test_every_endpoint_is_redacted(up: RecordingStack) -> None:
    c = client(up, "redact")
    r = c.completions.create(model="gpt-5-mini", prompt=[PROMPT, "second " + VALUES["CPF"]])
    assert r.choices[0].text == PROMPT + " second " + VALUES["CPF"]
    text = "".join(ch.choices[0].text for ch in c.completions.create(model="gpt-5-mini", prompt=PROMPT, stream=True)
                   if ch.choices)
    assert text == PROMPT
    e = c.embeddings.create(model="text-embedding-3-small", input=[PROMPT, "plain text"])
    assert len(e.data) == 2
    r2 = c.responses.create(model="gpt-5", input=[{"role": "user", "content": PROMPT}],
                            instructions=f"Reply to {VALUES['PHONE']}")
    assert r2.output_text == PROMPT
    tools = [{"type": "function", "function": {"name": "notify", "description": f"mails {VALUES['EMAIL']}",
                                               "parameters": {"type": "object", "properties": {}}}}]
    msgs: Any = [{"role": "user", "content": "go"},
                 {"role": "assistant", "content": None, "tool_calls": [
                     {"id": "call_1", "type": "function",
                      "function": {"name": "notify", "arguments": f'{{"to": "{VALUES["EMAIL"]}"}}'}}]},
                 {"role": "tool", "tool_call_id": "call_1", "content": f"sent to {VALUES['PHONE']}"},
                 {"role": "user", "content": "ok"}]
    c.chat.completions.create(model="gpt-5", messages=msgs, tools=tools)
    assert len(up.cloud.requests) == 5
    assert_no_values(up.cloud.received())


def test_block_names_kinds_never_values(up: RecordingStack) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        chat(up, "block", "gpt-5")
    assert e.value.code == "sensitive_data_blocked"
    message = str(e.value)
    assert "EMAIL" in message
    assert "CARD" in message
    assert_no_values(message)
    assert not up.cloud.requests
    assert chat(up, "block", "qwen3:8b") == PROMPT  # local may see it (apply_to: cloud)
    clean = client(up, "block").chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": CLEAN}])
    assert clean.choices[0].message.content == CLEAN  # nothing found: nothing blocked


def test_local_only_never_falls_back_to_cloud(up: RecordingStack) -> None:
    with pytest.raises(openai.InternalServerError) as e:  # 503: fail closed
        chat(up, "local", "gpt-5")
    assert e.value.status_code == 503
    assert e.value.code == "local_only_unavailable"
    hard = PROMPT + " Prove, step by step, the following theorem about primes and discuss its history." * 20
    with httpx.Client() as h:
        r = h.post(up.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key('local')}",
                                                            "x-router-prefer": "cloud"},
                   json={"model": "auto", "messages": [{"role": "user", "content": hard}]})
    assert r.status_code == 200
    assert r.headers["x-router-backend"] == "local"
    up.local.fail_status = 500  # the local backend fails: an error, never a cloud attempt
    with pytest.raises(openai.APIStatusError):
        chat(up, "local", "auto")
    assert not up.cloud.requests
    up.local.fail_status = None
    r2 = client(up, "local").chat.completions.with_raw_response.create(
        model="gpt-5", messages=[{"role": "user", "content": CLEAN}])
    assert r2.headers["x-router-backend"] == "cloud"  # nothing sensitive: cloud is fine


def test_preview_shows_local_only_routing(up: RecordingStack) -> None:
    with httpx.Client() as h:
        r = h.post(up.url + "/v1/route", headers={"authorization": f"Bearer {key('local')}"},
                   json={"model": "auto", "messages": [{"role": "user", "content": PROMPT * 30}]})
    assert r.status_code == 200
    assert r.json()["backend"] == "local"
    assert any("local_only" in reason for reason in r.json()["reasons"])
    assert not up.cloud.requests
    assert not up.local.requests


@pytest.mark.parametrize("stream", [False, True])
def test_messages_endpoint_with_the_anthropic_sdk(up: RecordingStack, stream: bool) -> None:
    c = anthropic.Anthropic(base_url=up.url, api_key=key("redact"), max_retries=0)
    args: dict[str, Any] = {"model": "gpt-5", "max_tokens": 100, "system": f"Escalate to {VALUES['EMAIL']}",
                            "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]}
    if stream:
        with c.messages.stream(**args) as s:
            text = "".join(s.text_stream)
    else:
        text = "".join(b.text for b in c.messages.create(**args).content if b.type == "text")
    assert text == PROMPT
    assert_no_values(up.cloud.received())
    with pytest.raises(anthropic.AuthenticationError) as e:  # Anthropic-shaped 401 on /v1/messages
        anthropic.Anthropic(base_url=up.url, api_key="sk-wrong", max_retries=0).messages.create(**args)
    assert e.value.body["type"] == "error"  # type: ignore[index]
    assert e.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
