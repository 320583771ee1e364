"""The redaction engine alone: checksums, the scanner's kinds and hard negatives, placeholders, the body
walk over every endpoint's shape, restore in bodies and in streams split anywhere, and policy parsing."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from router.config import ConfigError
from router.redaction import BodyRedactor, RestoredStream, Restorer, Scanner, TenantPolicies, parse_policy
from router.redaction import body as body_module
from router.redaction.body import clean_json
from router.redaction.checksums import cnpj_ok, cpf_ok, entropy, entropy_at_least, iban_ok, is_card, luhn, ssn_ok
from router.redaction.detectors import Detector

SCANNER = Scanner()
CORPUS = Path(__file__).parent / "data" / "redaction_corpus"


def found(text: str, scanner: Scanner = SCANNER) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start:f.end]) for f in scanner.scan(text)]


def test_entropy_is_the_plain_sum() -> None:
    """`entropy` loops for speed, but adds the same terms in the same order as `sum` over a Counter: the
    same float to the bit, so no threshold (`_looks_random`) moves."""
    rnd = random.Random(13)
    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=_-é²⟦"
    for _ in range(5000):
        s = "".join(rnd.choice(chars[:rnd.randint(1, len(chars))]) for _ in range(rnd.randint(0, 120)))
        n = len(s)
        plain = -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0
        assert entropy(s) == plain, s


@pytest.mark.parametrize("bits", [3.0, 3.2, 3.3, 0.5, 4.0])
def test_entropy_at_least_answers_as_the_sum_does(bits: float) -> None:
    """The distinct-count bounds settle most calls; the answer is always `entropy(s) >= bits`, on random
    strings and on ones exactly at a threshold (8 characters equally often: 3.0 bits to the bit)."""
    rnd = random.Random(29)
    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=_-é²⟦"
    cases = ["", "a", "ab" * 40, "abcdefgh" * 3, "abcdefgh12345678", "aaaaaaaabcdefgh"]
    for _ in range(5000):
        cases.append("".join(rnd.choice(chars[:rnd.randint(1, len(chars))]) for _ in range(rnd.randint(0, 120))))
    for s in cases:
        assert entropy_at_least(s, bits) == (entropy(s) >= bits), s


def test_checksums() -> None:
    assert luhn("4539148803436467")
    assert not luhn("4539148803436468")
    assert is_card("4539148803436467")
    assert not is_card("4242424242424242")  # a published test card
    assert not is_card("1234567812345670")  # Luhn-valid, but no card network starts with 1
    assert iban_ok("DE89370400440532013000")
    assert iban_ok("GB82WEST12345698765432")
    assert not iban_ok("DE89370400440532013001")
    assert not iban_ok("DE8937040044053201300")  # Germany's length is 22
    assert cpf_ok("52998224725")
    assert not cpf_ok("52998224724")
    assert not cpf_ok("11111111111")
    assert cnpj_ok("11222333000181")
    assert not cnpj_ok("11222333000182")
    assert cnpj_ok("12ABC34501DE35")  # the alphanumeric CNPJ (2026)
    assert ssn_ok("536", "22", "1234")
    assert not ssn_ok("666", "22", "1234")
    assert not ssn_ok("900", "22", "1234")
    assert not ssn_ok("536", "00", "1234")


@pytest.mark.parametrize(("text", "expected"), [
    ("mail john.doe+work@example.co.uk now", [("EMAIL", "john.doe+work@example.co.uk")]),
    ("escreva para joão.silva@empresa.com.br", [("EMAIL", "joão.silva@empresa.com.br")]),
    ("call +55 (11) 98765-4321 or (415) 555-0132", [("PHONE", "+55 (11) 98765-4321"), ("PHONE", "(415) 555-0132")]),
    ("uk 07700 900123, fr 06 12 34 56 78", [("PHONE", "07700 900123"), ("PHONE", "06 12 34 56 78")]),
    ("(11) 9 8765-4321 or 1-800-555-0199", [("PHONE", "(11) 9 8765-4321"), ("PHONE", "1-800-555-0199")]),
    ("pk_live_51H8xYZabcdefghijklmnop", [("STRIPE_KEY", "pk_live_51H8xYZabcdefghijklmnop")]),
    ("card 4539-1488-0343-6467 exp 09/27", [("CARD", "4539-1488-0343-6467")]),
    ("amex 3782 822463 10006?", []),  # Luhn fails
    ("IBAN DE89 3704 0044 0532 0130 00.", [("IBAN", "DE89 3704 0044 0532 0130 00")]),
    ("SSN 536-22-1234; SSN: 536221234", [("SSN", "536-22-1234"), ("SSN", "536221234")]),
    ("CPF 529.982.247-25 e cpf 52998224725", [("CPF", "529.982.247-25"), ("CPF", "52998224725")]),
    ("CNPJ 11.222.333/0001-81, CNPJ 12.ABC.345/01DE-35", [("CNPJ", "11.222.333/0001-81"),
                                                          ("CNPJ", "12.ABC.345/01DE-35")]),
    ("from 203.0.113.42:8080 and fe80::1ff:fe23:4567:890a",
     [("IP", "203.0.113.42"), ("IP", "fe80::1ff:fe23:4567:890a")]),
    ("OPENAI_API_KEY=sk-proj-Q9xV2mB7kLp4Rt8Zw1Yc6Nd3Hs5Jf0Ga",
     [("OPENAI_KEY", "sk-proj-Q9xV2mB7kLp4Rt8Zw1Yc6Nd3Hs5Jf0Ga")]),
    ("key sk-ant-api03-" + "xQ7_kP2m-Zr9" * 8 + "AA", [("ANTHROPIC_KEY", "sk-ant-api03-" + "xQ7_kP2m-Zr9" * 8 + "AA")]),
    ("AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     [("AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE")]),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     [("AWS_SECRET_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")]),
    ("ghp_1234567890abcdefghijABCDEFGHIJ123456 ok", [("GITHUB_TOKEN", "ghp_1234567890abcdefghijABCDEFGHIJ123456")]),
    ("glpat-Ab3dEf6hIj9kLm2nOp5q", [("GITLAB_TOKEN", "glpat-Ab3dEf6hIj9kLm2nOp5q")]),
    ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
     [("SLACK_TOKEN", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx")]),
    ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", [("STRIPE_KEY", "sk_live_4eC39HqLyjWDarjtT1zdp7dc")]),
    ("sid AC0123456789abcdef0123456789abcdef", [("TWILIO_KEY", "AC0123456789abcdef0123456789abcdef")]),
    ("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",
     [("SENDGRID_KEY", "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")]),
    ("redis://:p4ssw0rd@cache:6379/0", [("PASSWORD", "p4ssw0rd")]),
    ("Password=Tr0ub4dor&3;Database=x", [("PASSWORD", "Tr0ub4dor&3")]),
    ("curl -H 'Authorization: Bearer 8f3kD92jdLq0xPzW7mNc4vB1'", [("TOKEN", "8f3kD92jdLq0xPzW7mNc4vB1")]),
    ("TWILIO_AUTH_TOKEN=9f8e7d6c5b4a39281706f5e4d3c2b1a0", [("SECRET", "9f8e7d6c5b4a39281706f5e4d3c2b1a0")]),
])
def test_scanner_finds(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


def test_private_key_and_jwt() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc+/=\n-----END RSA PRIVATE KEY-----"
    assert found(f"key:\n{pem}\nbye") == [("PRIVATE_KEY", pem)]
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    assert found(f"Authorization: Bearer {jwt}") == [("JWT", jwt)]


@pytest.mark.parametrize("text", [
    "request 550e8400-e29b-41d4-a716-446655440000 took 12ms",
    "commit e83c5163316f89bfbde7d9ab23ca2e25604af290",
    "image: nginx@sha256:3f1b2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809",
    "version 1.2.3.4 and v2.10.0-rc.1, chrome/120.0.6099.129",
    "2025-03-04T12:01:55.123Z ts=1733053080123 elapsed 00:12:30",
    "order #4532015112830366 and pedido nº 2024112345",
    "use the test card 4242 4242 4242 4242 or 4111111111111111",
    "def login(username: str, password: str) -> Token:",
    "OPENAI_API_KEY=<your-key-here> password: ${DB_PASSWORD} token = \"xxxxxxxxxxxxxxxx\"",
    "listening on 0.0.0.0:8082 and 127.0.0.1 and ::1",
    "mac 00:1A:2B:3C:4D:5E at 10:30:45 std::vector<int>",
    "<img src=\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6"
    "kgAAAABJRU5ErkJggg==\">",
    "icon@2x.png and npm i @types/node@20.1.0",
    "CEP 01310-100, R$ 1.299,90, ISBN 978-3-16-148410-0",
    'STAGES = {"auth": "middleware.auth:AuthStage"}; tokens_for: Callable[[str], int]',
    "auth = proxy.seen[0][1]; proxy: http://[user:pass@]host:port; NO_PROXY=10.0.0.0/8",
    "Authorization: Bearer YOUR_TOKEN_HERE and sk-your-api-key-here",
])
def test_hard_negatives(text: str) -> None:
    assert found(text) == []


def test_engines_agree_and_kinds_filter() -> None:
    text = "mail a.b@c.io card 4539 1488 0343 6467 key sk-proj-Q9xV2mB7kLp4Rt8Zw1Yc6Nd3Hs5Jf0Ga ip 10.1.2.3"
    assert found(text, Scanner(engine="re")) == found(text)
    assert [k for k, _ in found(text, Scanner(kinds={"EMAIL", "IP"}))] == ["EMAIL", "IP"]
    with pytest.raises(ValueError, match="unknown engine"):
        Scanner(engine="pcre")


# ---------------------------------------------------------------- bodies


def redact(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    out = BodyRedactor(SCANNER).redact(body)
    assert out is not None
    return out[0], out[1].values


def test_chat_body_every_place_and_no_mutation() -> None:
    body: dict[str, Any] = {
        "model": "auto", "user": "ana@x.io",
        "messages": [
            {"role": "system", "content": "Escalate to ops@acme.io"},
            {"role": "user", "content": [{"type": "text", "text": "I am bob@y.io"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]},
            {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {
                "name": "mail", "arguments": "{\"to\": \"bob@y.io\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sent to bob@y.io"},
        ],
        "tools": [{"type": "function", "function": {"name": "mail", "description": "from bot@acme.io",
                                                    "parameters": {"type": "object", "properties": {
                                                        "to": {"type": "string", "description": "e.g. z@w.io"}}}}}],
    }
    before = orjson.dumps(body)
    out, values = redact(body)
    assert orjson.dumps(body) == before  # the client's body is untouched
    text = orjson.dumps(out).decode()
    assert "@" not in text.replace("data:image", "")
    assert values == {"EMAIL_1": "ana@x.io", "EMAIL_2": "ops@acme.io", "EMAIL_3": "bob@y.io", "EMAIL_4": "bot@acme.io",
                      "EMAIL_5": "z@w.io"}
    assert out["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"to": "⟦EMAIL_3⟧"}'
    assert out["messages"][1]["content"][1] is body["messages"][1]["content"][1]  # unchanged parts are shared
    assert BodyRedactor(SCANNER).redact({"model": "m", "messages": [{"role": "user", "content": "hi there"}]}) is None


@pytest.mark.parametrize("body", [
    {"model": "m", "prompt": ["call +55 11 98765-4321", [1, 2, 3]]},  # completions (token arrays untouched)
    {"model": "m", "input": ["cpf 529.982.247-25", "x"]},  # embeddings
    {"model": "m", "instructions": "cpf 529.982.247-25",
     "input": [{"role": "user", "content": [{"type": "input_text", "text": "ip 10.2.3.4"}]},
               {"type": "function_call_output", "call_id": "c", "output": "card 4539148803436467"}]},  # responses
    {"model": "m", "system": [{"type": "text", "text": "mail a@b.io"}],  # /v1/messages
     "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ip 10.2.3.4"}]},
                  {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                                     "input": {"q": "a@b.io"}}]}]},
])
def test_other_endpoints(body: dict[str, Any]) -> None:
    out, values = redact(body)
    text = orjson.dumps(out).decode()
    for v in values.values():
        assert v not in text
    assert values


# ---------------------------------------------------------------- restore


def test_restore_json_body() -> None:
    r = Restorer({"EMAIL_1": "a@b.io", "PASSWORD_1": 'p"w\\d\nx'})
    body = orjson.dumps({"content": "to ⟦EMAIL_1⟧ pw ⟦PASSWORD_1⟧ other ⟦EMAIL_7⟧"})
    assert orjson.loads(r.body(body))["content"] == 'to a@b.io pw p"w\\d\nx other ⟦EMAIL_7⟧'
    escaped = b'{"content": "to \\u27e6EMAIL_1\\u27E7."}'
    assert orjson.loads(r.body(escaped))["content"] == "to a@b.io."
    plain = b'{"content": "nothing here"}'
    assert r.body(plain) is plain


def _sse(deltas: list[str], sep: bytes = b"\n\n") -> bytes:
    events = [b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": d}}]}) + sep for d in deltas]
    return b"".join(events) + b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}' + sep + \
        b"data: [DONE]" + sep


def _content(stream: bytes, sep: bytes = b"\n\n") -> str:
    out = []
    for block in stream.split(sep):
        if block.startswith(b"data: {"):
            out.append(orjson.loads(block[6:])["choices"][0]["delta"].get("content", ""))
    return "".join(out)


@pytest.mark.parametrize("sep", [b"\n\n", b"\r\n\r\n"])
def test_restore_stream_split_anywhere(sep: bytes) -> None:
    values = {"EMAIL_1": "ana@empresa.com.br", "OPENAI_KEY_1": "sk-proj-Q9xV2mB7kLp4Rt8Zw1Yc6Nd3Hs5Jf0Ga"}
    original = "Escreva para ana@empresa.com.br, chave sk-proj-Q9xV2mB7kLp4Rt8Zw1Yc6Nd3Hs5Jf0Ga ⟦ fim ⟦X"
    redacted = "Escreva para ⟦EMAIL_1⟧, chave ⟦OPENAI_KEY_1⟧ ⟦ fim ⟦X"
    rnd = random.Random(7)
    r = Restorer(values)
    for _ in range(120):
        text, deltas = redacted, []
        while text:  # the model's tokens: 1 to 4 characters
            n = rnd.randint(1, 4)
            deltas.append(text[:n])
            text = text[n:]
        data = _sse(deltas, sep)
        cuts = sorted(rnd.sample(range(1, len(data)), rnd.randint(0, 12)))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        sr = r.stream()
        out = b"".join(sr.feed(c) for c in chunks) + sr.flush()
        assert _content(out, sep) == original
        assert out.endswith(b"data: [DONE]" + sep)


def test_stream_without_placeholders_passes_the_same_objects() -> None:
    sr = Restorer({"EMAIL_1": "a@b.io"}).stream()
    chunk = _sse(["hello", " world"])
    assert sr.feed(chunk) is chunk
    assert sr.flush() == b""


# ---------------------------------------------------------------- policy


@pytest.mark.parametrize(("raw", "message"), [
    ("redact", r"tenants\[0\].redact: expected a mapping"),
    ({"policy": "mask"}, r"tenants\[0\].redact.policy: expected one of off, redact, block, local_only"),
    ({"apply_to": "local"}, r"tenants\[0\].redact.apply_to: expected one of cloud, all"),
    ({"restore": "yes"}, r"tenants\[0\].redact.restore: expected true or false"),
    ({"detectors": ["EMAIL", "PASSPORT"]}, r"tenants\[0\].redact.detectors\[1\]: unknown kind 'PASSPORT'"),
    ({"allow": "a@b.io"}, r"tenants\[0\].redact.allow: expected a list"),
    ({"policy": "redact", "mode": "x"}, r"tenants\[0\].redact.mode: unknown key"),
])
def test_policy_errors_name_the_key_path(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TenantPolicies([{"match": "acme/*", "redact": raw}])


def test_policy_lookup_and_groups() -> None:
    tp = TenantPolicies([{"match": "acme/web", "redact": {"policy": "block", "detectors": ["PII"]}},
                         {"match": "acme/*", "steering": False}],
                        default=parse_policy({"policy": "redact"}, "x"))
    web = tp.for_tenant("acme/web")
    assert web.policy == "block"
    assert web.kinds is not None
    assert "EMAIL" in web.kinds
    assert "OPENAI_KEY" not in web.kinds
    assert tp.for_tenant("acme/batch").policy == "redact"  # no redact section: the stage's default
    assert tp.for_tenant(None).policy == "redact"
    assert not TenantPolicies([]).any_active


def test_allow_list_and_detectors_subset() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "mail support@acme.io or ana@x.io, ip 10.1.2.3"}]}
    out = BodyRedactor(Scanner(kinds={"EMAIL"}), allow=frozenset({"support@acme.io"})).redact(body)
    assert out is not None
    assert out[0]["messages"][0]["content"] == "mail support@acme.io or ⟦EMAIL_1⟧, ip 10.1.2.3"


async def test_restored_stream_relays_and_delegates() -> None:
    class Inner:
        usage = {"prompt_tokens": 1}
        truncated = False
        closed = False

        async def _gen(self) -> Any:
            chunks = (b'data: {"delta":{"content":"hi \xe2\x9f\xa6EM', b'AIL_1\xe2\x9f\xa7"}}\n\n', b"data: [DONE]\n\n")
            for c in chunks:
                yield c

        def __aiter__(self) -> Any:
            return self._gen()

        async def aclose(self) -> None:
            self.closed = True

    inner = Inner()
    rs = RestoredStream(inner, Restorer({"EMAIL_1": "a@b.io"}))
    out = b"".join([c async for c in rs])
    assert out == b'data: {"delta":{"content":"hi a@b.io"}}\n\ndata: [DONE]\n\n'
    assert rs.usage == {"prompt_tokens": 1}
    assert rs.truncated is False
    await rs.aclose()
    assert inner.closed


def test_scanner_remembers_texts_it_has_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    """A repeated text (a system prompt, an earlier turn) is looked up, not scanned again: same findings,
    a fresh list each time, the memo bounded in characters, and off with memo=False."""
    from router.redaction import scanner as scanner_module

    s = Scanner()
    text = "mail me at jane.doe@example.com or call +55 11 91234-5678"
    first = s.scan(text)
    assert [f.kind for f in first] == ["EMAIL", "PHONE"]
    walked: list[bytes] = []  # the texts the compiled pass ran over (from their start)
    real_match = s._match  # a text's first search (the scan loop's later ones go through s._search)
    monkeypatch.setattr(s, "_match", lambda a, d, p, e: (p == 0 and walked.append(d)) or real_match(a, d, p, e))
    again = s.scan(text)
    assert again == first
    assert again is not first
    again.clear()  # the caller's list: the memo keeps its own
    assert s.scan(text) == first
    assert s.scan("nothing to see here at all") == []
    assert walked == [b"nothing to see here at all"]  # only the new text was scanned
    monkeypatch.setattr(scanner_module, "MEMO_CHARS", 100)
    for i in range(20):
        s.scan(f"filler text number {i} with no findings")
    assert s._memo_chars <= 100
    assert len(s._memo) < 20
    assert s.scan("x" * (scanner_module.MEMO_TEXT_CHARS + 1)) == []
    assert "x" * (scanner_module.MEMO_TEXT_CHARS + 1) not in s._memo  # long texts are not kept
    off = Scanner(memo=False)
    assert [f.kind for f in off.scan(text)] == ["EMAIL", "PHONE"]
    assert off._memo == {}


def _both(body: dict[str, Any], raw: bytes | None = None, redactor: BodyRedactor | None = None) -> Any:
    """The redaction of `body` with its bytes (the whole-body pass first) and without (the walk): the same."""
    redactor = redactor or BodyRedactor(SCANNER)
    raw = orjson.dumps(body) if raw is None else raw
    with_raw, walked = redactor.redact(body, raw), redactor.redact(body)
    assert (with_raw is None) == (walked is None), raw
    if walked is not None:
        assert with_raw is not None
        assert with_raw[0] == walked[0], raw
        assert with_raw[1].values == walked[1].values, raw
        assert with_raw[1].counts == walked[1].counts
    return walked


def test_whole_body_pass_agrees_with_the_walk_on_the_corpus() -> None:
    """Every corpus text as a chat message, beside a number that the pass meets between strings
    (`"max_tokens":1024` is a SECRET candidate in the key): the same findings with and without the bytes,
    and a body the pass calls clean has none."""
    rows = []
    for name in ("positives.jsonl", "negatives.jsonl"):
        with open(CORPUS / name, encoding="utf-8") as f:
            rows += [orjson.loads(line) for line in f]
    decided = 0
    for row in rows:
        body = {"model": "auto", "messages": [{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": row["text"]}], "max_tokens": 1024}
        raw = orjson.dumps(body)
        if clean_json(SCANNER, raw):
            decided += 1
            assert BodyRedactor(SCANNER).redact(body) is None, row["text"]
        _both(body, raw)
    assert decided > 100


def test_whole_body_pass_escapes_and_other_bytes() -> None:
    """JSON escapes and non-ASCII bytes never hide a finding: the body goes to the walk."""
    raw = b'{"messages":[{"role":"user","content":"write to ana\\u0040example.com"}]}'
    assert not clean_json(SCANNER, raw)
    out = _both(orjson.loads(raw), raw)
    assert out is not None
    assert out[1].counts == {"EMAIL": 1}
    raw = b'{"messages":[{"role":"user","content":"db password:\\thunter2x"}]}'
    assert _both(orjson.loads(raw), raw)[1].counts == {"PASSWORD": 1}
    body = {"messages": [{"role": "user", "content": "escreva para joão@empresa.com.br"}]}
    assert not clean_json(SCANNER, orjson.dumps(body))
    assert _both(body)[1].counts == {"EMAIL": 1}


def test_whole_body_pass_keys_numbers_and_values() -> None:
    """A candidate in a key or a number is passed over; one in a value is scanned from there: a test card
    (no finding) keeps the body clean, a real card does not."""
    clean = {"model": "auto", "max_tokens": 1024, "seed": 123456789012, "messages": [
        {"role": "user", "content": "pay with 4242 4242 4242 4242 then call me"}]}
    assert clean_json(SCANNER, orjson.dumps(clean))
    assert _both(clean) is None
    dirty = {"messages": [{"role": "user", "content": "pay with 4242 4242 4242 4242, or 4539 1488 0343 6467"}]}
    assert not clean_json(SCANNER, orjson.dumps(dirty))
    assert _both(dirty)[1].counts == {"CARD": 1}
    skipped = {"model": "ana@example.com", "messages": [{"role": "user", "content": "hello there"}]}
    assert _both(skipped) is None  # a value the walk never scans: the pass sends it to the walk, which skips it
    pretty = b'{\n  "max_tokens" : 1024,\n  "messages": [{"role": "user", "content": "call 555-867-5309 now"}]\n}'
    assert _both(orjson.loads(pretty), pretty)[1].counts == {"PHONE": 1}


def test_whole_body_pass_agrees_on_random_bodies() -> None:
    """Random texts dense in the characters detectors start at, in several fields and shapes."""
    rnd = random.Random(5)
    alphabet = "abcdefxyzABCDEFQSXKG0123456789 @:=._-/+~\"'(){}[]"
    words = ["password", "token", "sk-", "eyJ", "AKIA", "Bearer ", "basic ", "ghp_", "xoxb-", "4111", "::",
             "https://", "CPF ", "cnpj ", "phone ", "192.168.", "+55 ", "DE89", "AccountKey="]
    for _ in range(3000):
        def text() -> str:
            parts = [rnd.choice(words) if rnd.random() < 0.3 else
                     "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 12))) for _ in range(rnd.randint(1, 8))]
            return "".join(parts)
        body: dict[str, Any] = {"model": "auto", "max_tokens": rnd.choice([16, 256, 1024, 123456789]),
                                "messages": [{"role": "user", "content": text()}]}
        if rnd.random() < 0.5:
            body["messages"].append({"role": "assistant", "content": [{"type": "text", "text": text()}]})
        if rnd.random() < 0.3:
            body["user"] = text()
        _both(body)


@pytest.mark.skipif(body_module.prescan_clean is None, reason="router/redaction/_prescan.c not compiled")
def test_prescan_never_passes_a_finding() -> None:
    """The compiled clean-body test against the detectors: number-shaped texts around each of its thresholds
    (digits in a row, in a run, separators, 0/9/+/( starts, IBAN's letters), and a body it calls clean has
    no finding; with the other scanners' detectors (a subset of kinds) too; a custom detector goes without."""
    clean = body_module.prescan_clean
    assert clean is not None
    rnd = random.Random(21)
    pieces = ["0", "1", "5", "9", " ", "-", ".", "(", ")", "+", "a", "ssn ", "cpf ", "cnpj ", "tel ", "card ", "id ",
              "DE", "GB", "NO", "AB", "x", "order ", "v", "Q", "BR", "  ", "eyJ", "bEaReR ", "Basic ", "----", "AKIA"]
    decided = 0
    for _ in range(20000):
        t = "".join(rnd.choice(pieces) if rnd.random() < 0.5 else rnd.choice("0123456789")
                    for _ in range(rnd.randint(1, 40)))
        body = {"messages": [{"role": "user", "content": t}]}
        if clean(orjson.dumps(body)):
            decided += 1
            assert BodyRedactor(SCANNER).redact(body) is None, t
    assert decided > 2000
    assert clean(b'{"max_tokens":1024,"messages":[{"role":"user","content":"hello there"}]}')
    assert not clean(b'{"messages":[{"role":"user","content":"hello there"}],"x":"a\\u0040b.io"}')
    assert not clean('{"m":"olá"}'.encode())
    assert BodyRedactor(Scanner(kinds={"EMAIL"}))._prescan is clean
    custom = Scanner(detectors=[Detector("WORD", "pii", r"hello")])
    assert BodyRedactor(custom)._prescan is None
    assert BodyRedactor(custom).redact({"m": "hello there"}, b'{"m":"hello there"}') is not None
