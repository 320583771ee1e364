"""Typed errors of the request's journey, and their OpenAI-shaped JSON.

Every refusal or failure a stage, the server or a backend can raise is one of these; the server turns
it into `{"error": {"message", "type", "param", "code"}}` with the right status. The tree:

    ProxyError                      (status, type, code)
    ├── InternalError               500 server_error (a bug; never carries a traceback)
    ├── InvalidRequest              400 invalid_request_error
    ├── AuthenticationFailed        401 authentication_error
    ├── PermissionDenied            403 permission_error
    ├── ModelNotFound               404 model_not_found
    ├── NotFound                    404 not_found
    ├── RequestTooLarge             413 request_too_large
    ├── RateLimited                 429 rate_limit_exceeded   (retry-after)
    ├── BudgetExceeded              429 budget_exceeded       (retry-after)
    ├── NoBackendAvailable          503 no_backend_available  (retry-after)
    │   ├── Saturated               every slot busy for the allowed wait (spill-over)
    │   └── CircuitOpen             the backend's breaker is open
    └── UpstreamFailure             an upstream call failed; `reason` tells retry/promotion why
        ├── UpstreamError           502 upstream_error        (connection refused/reset, 5xx, bad reply)
        ├── UpstreamOverloaded      503 upstream_overloaded   (429 / 503 from the upstream)
        ├── UpstreamTimeout         504 upstream_timeout      (connect, first byte, idle, total, slow first token)
        └── ModelUnavailable        404 model_not_found       (the upstream does not have the model)

What a client may see is bounded and clean: `echo()` truncates a client value quoted back (a model id),
every message is capped at `MAX_MESSAGE` characters and made valid UTF-8, and `mask_secrets()` removes
keys (the backend's own, and anything shaped like one) from upstream text before it is passed on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import orjson

MAX_ECHO = 64  # characters of a client value quoted back in an error or a log line
MAX_MESSAGE = 1024  # characters of any error message
MASK = "***"
# Shapes of credentials an upstream may echo: OpenAI/Anthropic-style `sk-…` keys, `Bearer …` tokens, AWS and
# Google key ids, GitHub/Slack tokens, `key=…` pairs, and long opaque tokens (32+ base64/hex characters).
_KEY_SHAPES = re.compile(
    r"(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|\bsk-[A-Za-z0-9_-]{6,}"
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"
    r"|\bAIza[0-9A-Za-z_-]{30,}"
    r"|\b(?:gh[pousr]|xox[abprs])[-_][A-Za-z0-9-]{10,}"
    r"|(?i:api[_-]?key|access[_-]?token|secret)[\"']?\s*[:=]\s*[\"']?[^\s\"',;]{6,}"
    r"|\b[A-Za-z0-9_+/=-]{32,}"
)


def echo(value: object, limit: int = MAX_ECHO) -> str:
    """A client value fit to quote back: at most `limit` characters (then "…"), valid UTF-8."""
    s = value if isinstance(value, str) else str(value)
    if len(s) > limit:
        s = s[:limit] + "…"
    return _valid_utf8(s)


def _valid_utf8(s: str) -> str:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (a header's non-UTF-8 bytes, surrogate-escaped)
        return s.encode("utf-8", "replace").decode("utf-8")
    return s


def mask_secrets(text: str, known: Iterable[str] = ()) -> str:
    """`text` with every `known` secret and anything shaped like a key replaced by `***`."""
    for k in known:
        if k and k in text:
            text = text.replace(k, MASK)
    return _KEY_SHAPES.sub(MASK, text)


class ProxyError(Exception):
    """A failure the client is told about, as OpenAI-shaped JSON with `status`."""

    status = 500
    type = "server_error"
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + "…"
        message = _valid_utf8(message)
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> bytes:
        return orjson.dumps(
            {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        )


class InternalError(ProxyError):
    """A bug: logged with its traceback server-side, answered as a plain 500."""


class InvalidRequest(ProxyError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class AuthenticationFailed(ProxyError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(ProxyError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class ModelNotFound(ProxyError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class NotFound(ProxyError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class RequestTooLarge(ProxyError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(ProxyError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceeded(ProxyError):
    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class NoBackendAvailable(ProxyError):
    status = 503
    type = "server_error"
    code = "no_backend_available"


class UpstreamFailure(ProxyError):
    """An upstream call failed before its answer reached the client; retry may promote on `reason`."""

    status = 502
    type = "server_error"
    code = "upstream_error"
    reason = "error"  # one of routing.promotion.on: error | timeout | overload | slow_first_token


class UpstreamError(UpstreamFailure):
    pass


class UpstreamOverloaded(UpstreamFailure):
    status = 503
    code = "upstream_overloaded"
    reason = "overload"


class UpstreamTimeout(UpstreamFailure):
    status = 504
    code = "upstream_timeout"
    reason = "timeout"

    def __init__(self, message: str, *, reason: str = "timeout", **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.reason = reason


class Saturated(NoBackendAvailable):
    """Every slot of the backend (`max_concurrency`) stayed busy for the wait allowed; `retry` spills."""

    reason = "saturated"


class CircuitOpen(NoBackendAvailable):
    """The backend's circuit breaker is open (or a half-open probe is already in flight); `retry` spills."""

    reason = "open"


class ModelUnavailable(UpstreamFailure):
    """The upstream answered 404 for the model (never pulled, not deployed): a 404 to a client that named it."""

    status = 404
    type = "invalid_request_error"
    code = "model_not_found"
    reason = "missing_model"
