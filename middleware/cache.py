"""Stage `cache`: exact-match answer cache for repeated non-streaming requests (config `cache`).

Wired into the pipeline at its place in the request's journey; its behaviour lands with its own issue.
Until then it is inactive (`active = False`), so the pipeline leaves it out of the chain and it costs
nothing per request.
"""

from __future__ import annotations

from router.pipeline import Stage


class CacheStage(Stage):
    name = "cache"
    active = False
