"""The answer's head serializer (`router/_wire.c`, installed by router/protocol.py): for any status line and headers
it gives exactly the bytes aiohttp's own serializer gives, or raises the same error type; in CI (env CI set) it
must be the one in use.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from aiohttp import hdrs, http_writer
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy, istr

from router.protocol import install_head_serializer

_wire = pytest.importorskip("router._wire")
C_SERIALIZE = getattr(http_writer, "_c_serialize_headers", None)
PY_SERIALIZE = http_writer._py_serialize_headers


def _outcome(f: Any, status: Any, headers: Any) -> tuple[str, Any]:
    try:
        return "ok", f(status, headers)
    except Exception as e:  # the error type is the contract, not its message
        return "error", type(e)


def _same(status: Any, headers: Any) -> None:
    ours = _outcome(_wire.serialize_headers, status, headers)
    if C_SERIALIZE is not None:
        assert ours == _outcome(C_SERIALIZE, status, headers)
    # aiohttp's Python twin: the same where it drops no lone surrogate, ends no empty head with an extra CRLF and
    # reads no str subclass's own str()
    plain = all(type(s) in (str, istr) for kv in headers.items() for s in kv)
    if ours[0] == "ok" and headers and plain and not any(
            0xD800 <= ord(c) <= 0xDFFF for c in status + "".join(f"{k}{v}" for k, v in headers.items())):
        assert ours == _outcome(PY_SERIALIZE, status, headers)


def test_installed_as_aiohttps() -> None:
    assert install_head_serializer()
    assert http_writer._serialize_headers is _wire.serialize_headers
    if os.environ.get("CI"):
        assert C_SERIALIZE is not None


def test_a_routed_answers_head() -> None:
    h = CIMultiDict({hdrs.CONTENT_TYPE: "application/json", "x-request-id": "1580483e816f1",
                     "x-router-overhead-ms": "1.959", "x-router-model": "bench-mini", "x-router-attempts": "1",
                     "x-ratelimit-reset-tokens": "60s", "x-router-cost-usd": "0.00044000"})
    h[hdrs.CONTENT_LENGTH] = "300"
    h[hdrs.DATE] = "Wed, 02 Dec 2026 06:00:00 GMT"
    h.add("Set-Cookie", "a=1")
    h.add("Set-Cookie", "b=2")
    out = _wire.serialize_headers("HTTP/1.1 200 OK", h)
    assert out == (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-request-id: 1580483e816f1\r\n"
                   b"x-router-overhead-ms: 1.959\r\nx-router-model: bench-mini\r\nx-router-attempts: 1\r\n"
                   b"x-ratelimit-reset-tokens: 60s\r\nx-router-cost-usd: 0.00044000\r\nContent-Length: 300\r\n"
                   b"Date: Wed, 02 Dec 2026 06:00:00 GMT\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n")
    _same("HTTP/1.1 200 OK", h)
    _same("HTTP/1.1 200 OK", CIMultiDictProxy(h))
    _same("HTTP/1.1 204 No Content", CIMultiDict())


@pytest.mark.parametrize("value", ["a\tb", "caf\u00e9", "\u4e2d\u6587", "\U0001f600", "x\ud800y", "a\rb", "a\nb",
                                   "a\r\nb", "\x00", "\x1f", "\x7f", "a\x0bb", "", " ", "~" * 20_000])
def test_every_kind_of_character(value: str) -> None:
    for h in (CIMultiDict({"x-v": value}), CIMultiDict({value or "k": "v"}), CIMultiDict({istr("X-" + value): "v"})):
        _same("HTTP/1.1 200 OK", h)
    _same("HTTP/1.1 200 " + value, CIMultiDict({"a": "b"}))


def test_what_is_not_a_string() -> None:
    _same("HTTP/1.1 200 OK", {"x": 1})
    _same("HTTP/1.1 200 OK", {1: "x"})
    _same("HTTP/1.1 200 OK", {"x": b"bytes"})

    class Text(str):
        def __str__(self) -> str:
            return "other"

    _same("HTTP/1.1 200 OK", {"x": Text("v")})
    _same("HTTP/1.1 200 OK", {Text("k"): "v"})
    with pytest.raises(TypeError):
        _wire.serialize_headers(b"HTTP/1.1 200 OK", {})
    with pytest.raises(TypeError):
        _wire.serialize_headers("HTTP/1.1 200 OK")


def test_many_headers() -> None:
    for n in (63, 64, 65, 200):
        _same("HTTP/1.1 200 OK", CIMultiDict((f"x-{i}", str(i)) for i in range(n)))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12)), max_size=12))
def test_any_head(status: str, items: list[tuple[str, str]]) -> None:
    _same(status, CIMultiDict(items))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(st.characters(min_codepoint=0, max_codepoint=0x7f), max_size=8),
                          st.text(st.characters(min_codepoint=0, max_codepoint=0x7f), max_size=8)), max_size=12))
def test_any_ascii_head(items: list[tuple[str, str]]) -> None:
    _same("HTTP/1.1 200 OK", CIMultiDict(items))


def test_no_reference_is_kept_or_lost() -> None:
    import sys

    key, value, tab, bad = "x-" + "k" * 3, "v" * 5, "a\t" + "b", "a\n" + "b"
    heads = [CIMultiDict({key: value}), CIMultiDict({key: tab}), CIMultiDict({key: bad}),
             CIMultiDict((f"x-{i}", value) for i in range(80))]
    before = [sys.getrefcount(o) for o in (key, value, tab, bad)]
    for _ in range(2000):
        for h in heads:
            try:
                _wire.serialize_headers("HTTP/1.1 200 OK", h)
            except ValueError:
                pass
    assert [sys.getrefcount(o) for o in (key, value, tab, bad)] == before
