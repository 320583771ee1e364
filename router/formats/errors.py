"""Errors in the client's wire format: OpenAI's shape, or Anthropic's on `/v1/messages`.

`error_body(endpoint, status, type, message, code, param)` is a whole JSON error body; `stream_error` the
in-band event a stream ends with when it fails after its headers were sent. `upstream_error_message` reads
the message out of an upstream error body of either shape, so a translated request's error can be told to
the client in its own format.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.errors import ProxyError
from router.formats.events import encode

ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    kind = ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def openai_error(status: int, message: str, type_: str | None = None, code: str | None = None,
                 param: str | None = None) -> dict[str, Any]:
    if type_ is None:
        type_ = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_body(endpoint: str, status: int, type_: str, message: str, code: str | None, param: str | None) -> bytes:
    if endpoint == "messages":
        return orjson.dumps(anthropic_error(status, message))
    return orjson.dumps(openai_error(status, message, type_, code, param))


def stream_error(endpoint: str, status: int, type_: str, message: str, code: str | None) -> bytes:
    """The last event of a stream that failed after it began, in the endpoint's format."""
    if endpoint == "messages":
        return encode("error", anthropic_error(status, message))
    if endpoint == "responses":
        return encode("error", {"type": "error", "code": code, "message": message, "param": None,
                                "sequence_number": 0})
    return b"data: " + orjson.dumps(openai_error(status, message, type_, code)) + b"\n\n"


def upstream_error_message(body: bytes) -> str:
    """The human message of an upstream error body (OpenAI or Anthropic shape), else its start."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip()
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or "")[:1000]
    if isinstance(err, str):
        return err[:1000]
    return ""


def render(endpoint: str, e: ProxyError) -> bytes:
    """A router error as the JSON body a client of `endpoint` expects."""
    if endpoint == "messages":
        return orjson.dumps(anthropic_error(e.status, e.message))
    return e.body()


def render_stream(endpoint: str, e: ProxyError) -> bytes:
    """A router error as the in-band SSE event that ends a stream of `endpoint`."""
    if endpoint in ("messages", "responses"):
        return stream_error(endpoint, e.status, e.type, e.message, e.code)
    return b"data: " + e.body() + b"\n\n"
