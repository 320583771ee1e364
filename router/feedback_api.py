"""`POST /v1/feedback`: a client rates an answer the router gave; the rating feeds its tenant's adaptive routing.

    {"request_id": "...", "score": 0.8}      a score in [0, 1]
    {"request_id": "...", "rating": "up"}    or "down" (1 and 0)

204 on success. The caller is identified by the same keys as a proxied request (`router.auth.KeyRing`),
so the tenant is the one the key gives; a request id that is unknown, expired or another tenant's is 404
`request_not_found`, so ids never leak across tenants. A malformed body is 400. The engine behind it is
router/routing/feedback.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from router.errors import InvalidRequest, NotFound, ProxyError, RequestTooLarge

MAX_BODY = 16 * 1024
MAX_ID = 128
RATINGS = {"up": 1.0, "down": 0.0}
FIELDS = ("request_id", "score", "rating")
JSON = "application/json"


def decode(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The body must be a JSON object.", code="invalid_json") from None


def parse_feedback(body: Any) -> tuple[str, float]:
    """The rated request id and the score in [0, 1]; InvalidRequest (400) naming the field otherwise."""
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object: {\"request_id\", \"score\" | \"rating\"}.")
    for k in body:
        if k not in FIELDS:
            raise InvalidRequest(f"Unknown field {k!r}: expected request_id and score or rating.", param=str(k))
    rid = body.get("request_id")
    if not isinstance(rid, str) or not 0 < len(rid) <= MAX_ID:
        raise InvalidRequest(f"request_id: expected the x-request-id of an answer (1-{MAX_ID} characters).",
                             param="request_id")
    has_score, has_rating = "score" in body, "rating" in body
    if has_score == has_rating:
        raise InvalidRequest("Give exactly one of score (0..1) or rating (up | down).",
                             param="rating" if has_rating else "score")
    if has_rating:
        rating = body["rating"]
        if rating not in RATINGS:
            raise InvalidRequest(f"rating: expected up or down, got {rating!r}.", param="rating")
        return rid, RATINGS[rating]
    score = body["score"]
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
        raise InvalidRequest(f"score: expected a number between 0 and 1, got {score!r}.", param="score")
    return rid, float(score)


class FeedbackEndpoint:
    """The handler; `service()` returns the live RouterService (a reload may swap it)."""

    def __init__(self, service: Callable[[], Any]) -> None:
        self.service = service

    async def handle(self, request: web.Request) -> web.Response:
        own_id = os.urandom(8).hex()
        try:
            svc = self.service()
            key = await svc.keys.identify(request.headers)  # 401 before anything about the body or the id
            if request.content_length is not None and request.content_length > MAX_BODY:
                raise RequestTooLarge(f"A feedback body is at most {MAX_BODY} bytes.")
            raw = await request.content.read(MAX_BODY + 1)
            if len(raw) > MAX_BODY:
                raise RequestTooLarge(f"A feedback body is at most {MAX_BODY} bytes.")
            request_id, score = parse_feedback(decode(raw))
            if not await svc.feedback.rate_anywhere(request_id, key.tenant if key else None, score):
                raise NotFound(f"No answer with request id {request_id!r} is known for you: unknown, expired, "
                               "or not yours.", param="request_id", code="request_not_found")
        except ProxyError as e:
            return web.Response(status=e.status, body=e.body(), content_type=JSON, headers={"x-request-id": own_id})
        return web.Response(status=204, headers={"x-request-id": own_id})
