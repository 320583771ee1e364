"""router/validate.py: the nesting check at the door (its bracket count and its walk)."""

from __future__ import annotations

import orjson
import pytest

from router.validate import MAX_DEPTH, _openers_over, too_deep


@pytest.mark.parametrize("n", [0, 1, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 3 * MAX_DEPTH])
def test_openers_over_counts_both_brackets_exactly(n: int) -> None:
    raw = b'{"a":[' + b"[]," * (n // 2) + b"{}," * (n - n // 2) + b"1]}"
    total = raw.count(b"[") + raw.count(b"{")
    assert _openers_over(raw, MAX_DEPTH) is (total > MAX_DEPTH)


@pytest.mark.parametrize("levels", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1])
def test_too_deep_at_the_limit(levels: int) -> None:
    raw = b'{"a":' * (levels - 1) + b"[1]" + b"}" * (levels - 1)
    assert too_deep(raw, orjson.loads(raw)) is (levels > MAX_DEPTH)


def test_many_brackets_but_shallow_is_not_too_deep() -> None:
    raw = orjson.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}] * 200})
    assert not too_deep(raw, orjson.loads(raw))
