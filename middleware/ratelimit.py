"""Stage `ratelimit`: requests and tokens per minute, per key and per tenant (config `limits`).

Wired into the pipeline at its place in the request's journey; its behaviour lands with its own issue.
Until then it is inactive (`active = False`), so the pipeline leaves it out of the chain and it costs
nothing per request.
"""

from __future__ import annotations

from router.pipeline import Stage


class RateLimitStage(Stage):
    name = "ratelimit"
    active = False
