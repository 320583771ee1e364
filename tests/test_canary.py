"""Canary: known secrets go into prompts, client keys and upstream errors; no log line, access-log line,
metric, dashboard entry or error answer shows them (kinds and counts only)."""

from __future__ import annotations

import hashlib
import logging

import httpx
import openai
import pytest

from tests.conftest import make_config
from tests.test_redaction_http import RecordingStack

CANARIES = {
    "email": "canary.person@leak-test.example",
    "key": "sk-proj-CanaryKey7Zq4Lm9Xw2Rt6Yp1Hs8Nd3Vb",
    "card": "4556 7375 8689 9855",
    "cpf": "390.533.447-05",
    "client_key": "sk-canary-client-Zt9Qw3Lm7Xk1",
    "upstream_key": "sk-canary-upstream-Pp4Rr8Tt2",
}
GOOD_KEY = "sk-router-canary-good"
ADMIN = "sk-router-canary-admin"


def test_no_secret_reaches_a_log(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_ROUTER_TEST_CLOUD_KEY", CANARIES["upstream_key"])
    monkeypatch.setenv("AI_ROUTER_TEST_CANARY_ADMIN", ADMIN)
    caplog.set_level(logging.DEBUG)
    keys = [{"name": "app", "key_sha256": hashlib.sha256(GOOD_KEY.encode()).hexdigest(), "tenant": "acme/app"},
            {"name": "strict", "key_sha256": hashlib.sha256(b"sk-router-canary-strict").hexdigest(),
             "tenant": "acme/strict"}]
    tenants = [{"match": "acme/app", "redact": {"policy": "redact"}},
               {"match": "acme/strict", "redact": {"policy": "block"}}]
    stack = RecordingStack(lambda local, cloud: make_config(
        local, cloud, auth={"keys": keys, "admin_key_env": "AI_ROUTER_TEST_CANARY_ADMIN"}, tenants=tenants,
        logging={"level": "debug", "access_log": True}))
    stack.start()
    prompt = (f"mail {CANARIES['email']} key {CANARIES['key']} card {CANARIES['card']} cpf {CANARIES['cpf']}")
    try:
        c = openai.OpenAI(base_url=stack.url + "/v1", api_key=GOOD_KEY, max_retries=0)
        msgs = [{"role": "user", "content": prompt}]
        assert c.chat.completions.create(model="gpt-5", messages=msgs).choices[0].message.content == prompt
        streamed = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
            model="gpt-5", messages=msgs, stream=True) if ch.choices)
        assert streamed == prompt
        c.chat.completions.create(model="qwen3:8b", messages=msgs)  # local: raw text, never logged
        with pytest.raises(openai.BadRequestError):
            openai.OpenAI(base_url=stack.url + "/v1", api_key="sk-router-canary-strict",
                          max_retries=0).chat.completions.create(model="gpt-5", messages=msgs)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=stack.url + "/v1", api_key=CANARIES["client_key"],
                          max_retries=0).chat.completions.create(model="gpt-5", messages=msgs)
        with httpx.Client() as h:  # a broken body carrying a secret
            r = h.post(stack.url + "/v1/chat/completions", content=b'{"messages": "' + prompt.encode(),
                       headers={"authorization": f"Bearer {GOOD_KEY}", "content-type": "application/json"})
            assert r.status_code == 400
            answers = r.text
        stack.cloud.fail_status = 500  # an upstream error that repeats what it was sent (placeholders)
        stack.cloud.error_detail = "cannot process: " + stack.cloud.requests[-1]["messages"][0]["content"]
        with pytest.raises(openai.APIStatusError) as e:
            c.chat.completions.create(model="gpt-5", messages=msgs)
        answers += str(e.value.body)
        with httpx.Client(headers={"authorization": f"Bearer {ADMIN}"}) as h:
            metrics = h.get(stack.url + "/metrics").text
            dashboard = h.get(stack.url + "/dashboard/stats").text
    finally:
        stack.stop()
    out, err = capfd.readouterr()
    logged = "\n".join([caplog.text, out, err, metrics, dashboard])
    for name, value in CANARIES.items():
        assert value not in logged, f"{name} reached a log line"
        assert value not in answers, f"{name} reached an error answer"
    assert '"redacted":{' in err  # the access log counts kinds: {"EMAIL":1,"OPENAI_KEY":1,...}
    assert '"EMAIL":1' in err
    assert 'ai_router_redactions_total{kind="EMAIL",tenant="acme/app"}' in metrics
    assert CANARIES["email"] not in stack.cloud.received()
