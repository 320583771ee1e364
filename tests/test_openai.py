"""backends/openai.py's pure parts: when the client's bytes may go upstream as they are."""

from __future__ import annotations

import pytest

from backends.openai import _forwardable

BODY = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": false}'


@pytest.mark.parametrize(("raw", "ok"), [
    (BODY, True),
    (BODY.replace(b'"hi"', b'"a\\nb \\"quoted\\""'), True),  # escapes, none of them \u
    (BODY[:-1] + b', "model": "other"}', False),  # a key the router acts on, twice
    (BODY[:-1] + b', "stream": true}', False),
    (BODY.replace(b'"model"', b'"mod\\u0065l"'), False),  # spelled with an escape that may hide a duplicate
    (BODY.replace(b'"hi"', b'"\\\\u is no escape, but counts"'), False),  # (conservative: any `\u` bytes)
])
def test_forwardable(raw: bytes, ok: bool) -> None:
    assert _forwardable(raw) is ok
