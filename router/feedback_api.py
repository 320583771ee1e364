"""`POST /v1/feedback`: a client rates an answer the router gave; the rating feeds its tenant's adaptive routing.

    {"request_id": "...", "score": 0.8}      a score in [0, 1]
    {"request_id": "...", "rating": "up"}    or "down" (1 and 0)

204 on success. The caller is authenticated by the pipeline's `auth` stage exactly as a proxied request
is (same keys, same tenant); a request id that is unknown, expired or another tenant's is 404
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
from router.exchange import Exchange, Reply
from router.pipeline import Pipeline

MAX_BODY = 16 * 1024
MAX_ID = 128
RATINGS = {"up": 1.0, "down": 0.0}
FIELDS = ("request_id", "score", "rating")
JSON = "application/json"
_AUTHED = Reply(204, {})


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
        self._auth: tuple[Any, Pipeline] | None = None

    def _authenticator(self, svc: Any) -> Pipeline:
        """The pipeline's auth stages (none when auth is off) in front of a terminal that accepts."""
        if self._auth is None or self._auth[0] is not svc:
            stages = [s for s in svc.pipeline.active if s.name == "auth"]
            self._auth = (svc, Pipeline(stages, _accept))
        return self._auth[1]

    async def handle(self, request: web.Request) -> web.Response:
        own_id = os.urandom(8).hex()
        try:
            if request.content_length is not None and request.content_length > MAX_BODY:
                raise RequestTooLarge(f"A feedback body is at most {MAX_BODY} bytes.")
            raw = await request.content.read(MAX_BODY + 1)
            if len(raw) > MAX_BODY:
                raise RequestTooLarge(f"A feedback body is at most {MAX_BODY} bytes.")
            svc = self.service()
            loop = svc.ctx.feedback
            try:
                body: Any = decode(raw)
            except InvalidRequest as e:
                body = e
            rid = body.get("request_id") if isinstance(body, dict) else None
            rated = loop.lookup(rid) if isinstance(rid, str) else None
            # the rated request's model, so a key limited to some models passes auth as that request did
            ex = Exchange(own_id, "feedback", {"model": rated.model} if rated else {}, None, request.headers)
            await self._authenticator(svc)(ex)  # 401/403 before anything about the body or the rated request
            if isinstance(body, InvalidRequest):
                raise body
            request_id, score = parse_feedback(body)
            if not loop.rate(request_id, ex.tenant, score):
                raise NotFound(f"No answer with request id {request_id!r} is known for you: unknown, expired, "
                               "or not yours.", param="request_id", code="request_not_found")
        except ProxyError as e:
            return web.Response(status=e.status, body=e.body(), content_type=JSON, headers={"x-request-id": own_id})
        return web.Response(status=204, headers={"x-request-id": own_id})


async def _accept(ex: Exchange) -> Reply:
    return _AUTHED
