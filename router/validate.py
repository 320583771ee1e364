"""Request checks at the door: the parsed body has the shape its endpoint needs, or a clear 400.

Only what the router itself relies on is checked (types of `model`, `stream`, `messages`, `prompt`,
`input`, `max_tokens`); everything else is the upstream's business and passes through untouched.
First of all, nesting: JSON nested deeper than `MAX_DEPTH` parses but cannot be re-encoded (orjson's
encoder stops at 255 levels), so it is refused with a 400 before any stage sees it. The check finds the
body's brackets one `find` (memchr) at a time and stops past `MAX_DEPTH` of them: an ordinary body, with a
handful, costs a handful of calls, not a pass per byte; only a body with that many brackets in all is walked.
"""

from __future__ import annotations

from typing import Any

from router.errors import InvalidRequest

MAX_DEPTH = 128  # arrays/objects nested in each other; OpenAI's own JSON (tool schemas included) stays far below


def too_deep(raw: bytes, body: Any, limit: int = MAX_DEPTH) -> bool:
    """Is `body` (parsed from `raw`) nested deeper than `limit`?"""
    if not _openers_over(raw, limit):  # no more openers than levels: cannot be that deep
        return False
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        for c in children:
            if isinstance(c, (dict, list)) and c:
                stack.append((c, depth + 1))
            elif isinstance(c, (dict, list)) and depth + 1 > limit:
                return True
    return False


def _openers_over(raw: bytes, limit: int) -> bool:
    """Has `raw` more than `limit` `[` and `{` bytes in all? (`find` per bracket, up to `limit + 1`: memchr
    skips the rest, where `count` would look at every byte twice.)"""
    n = 0
    for opener in b"[{":
        i = raw.find(opener)
        while i >= 0:
            n += 1
            if n > limit:
                return True
            i = raw.find(opener, i + 1)
    return False


def _messages(body: dict[str, Any], param: str = "messages") -> None:
    msgs = body.get(param)
    if msgs is None:
        raise InvalidRequest(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    if not isinstance(msgs, list):
        raise InvalidRequest(f"Invalid type for '{param}': expected an array of objects.", param=param,
                             code="invalid_type")
    if not msgs:
        raise InvalidRequest(f"Invalid '{param}': empty array. Expected an array with minimum length 1.",
                             param=param, code="empty_array")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise InvalidRequest(f"Invalid type for '{param}[{i}]': expected an object.", param=f"{param}[{i}]",
                                 code="invalid_type")
        role = m.get("role")
        if not isinstance(role, str):
            raise InvalidRequest(f"Missing required parameter: '{param}[{i}].role'.", param=f"{param}[{i}].role",
                                 code="missing_required_parameter")


def _present(body: dict[str, Any], param: str, types: tuple[type, ...], what: str) -> None:
    v = body.get(param)
    if v is None:
        raise InvalidRequest(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    if not isinstance(v, types):
        raise InvalidRequest(f"Invalid type for '{param}': expected {what}.", param=param, code="invalid_type")


def _common(body: dict[str, Any]) -> None:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidRequest("Invalid type for 'model': expected a string.", param="model", code="invalid_type")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("Invalid type for 'stream': expected a boolean.", param="stream", code="invalid_type")
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        v = body.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise InvalidRequest(f"Invalid '{key}': expected a non-negative integer.", param=key, code="invalid_value")
    so = body.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise InvalidRequest("Invalid type for 'stream_options': expected an object.", param="stream_options",
                             code="invalid_type")


def check(endpoint: str, body: Any, raw: bytes | None = None) -> dict[str, Any]:
    """Raise InvalidRequest unless `body` (parsed from `raw`) fits `endpoint`; return it typed."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    if raw is not None and too_deep(raw, body):
        raise InvalidRequest(f"The request body is nested more than {MAX_DEPTH} levels deep.", code="invalid_json")
    _common(body)
    if endpoint == "chat":
        _messages(body)
    elif endpoint == "completions":
        _present(body, "prompt", (str, list), "a string or an array")
    elif endpoint == "embeddings":
        _present(body, "input", (str, list), "a string or an array")
        if body.get("stream") is True:
            raise InvalidRequest("Embeddings cannot be streamed.", param="stream", code="invalid_value")
    elif endpoint == "responses":  # `input` is optional (a stored prompt or conversation may stand in)
        inp = body.get("input")
        if inp is not None and not isinstance(inp, (str, list)):
            raise InvalidRequest("Invalid type for 'input': expected a string or an array.", param="input",
                                 code="invalid_type")
    elif endpoint == "messages":
        _messages(body)
        _present(body, "max_tokens", (int,), "an integer")
    elif endpoint == "count_tokens":
        _messages(body)
    return body
