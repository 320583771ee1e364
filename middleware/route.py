"""The `route` stage: turns the request's features into a `Decision` (chosen model, then the fallback chain).

It reads `ex.features` (from `classify`, or computes them itself when `classify` is not in the pipeline,
e.g. `pipeline: [route, retry]`), the client's `model` field and steering headers, the tenant, and any cap
an earlier stage set (`ex.max_tier`, `ex.prefer`), then asks `router.routing.policy.Policy` for the chain. It sets
`ex.decision` and `ex.target` (the primary; `retry` moves it along the chain). A dry run (`POST /v1/route`)
goes through here exactly like a real request.

Fast path: a request naming a concrete model id with no features yet (no `classify` stage) is not classified
at all: it goes to the backends serving that model, unrerouted, so only the catalog lookup is needed and
`ex.features` stays None (a dry run still computes them, for the preview).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from middleware.classify import Analyzer, build_analyzer
from router.catalog import is_routed
from router.exchange import CallNext, Exchange, Reply
from router.pipeline import Stage


class RouteStage(Stage):
    """Decide where the request goes."""

    name = "route"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.analyzer: Analyzer = build_analyzer(ctx)
        self.policy = self.analyzer.policy
        self._mixed_encodings = any(
            m.encoding and m.encoding != ctx.config.routing.encoding for m in ctx.config.models()
        )

    def handle(self, ex: Exchange, call_next: CallNext) -> Awaitable[Reply]:
        self.route(ex)
        return call_next(ex)  # before-only: hand back the rest's awaitable, adding no frame to the chain

    def route(self, ex: Exchange) -> None:
        """Fill `ex.features` (if missing), `ex.decision` and `ex.target`."""
        prompt = None
        if ex.features is None and (ex.dry_run or is_routed(ex.client_model)):
            ex.features, prompt = self.analyzer.features(ex)
        ex.decision = self.policy.decide(
            ex.features,
            endpoint=ex.endpoint,
            model=ex.client_model,
            tenant=ex.tenant,
            headers=ex.headers,
            max_tier=ex.max_tier,
            prefer=ex.prefer,
            tokens_for=Analyzer.recounter(ex, prompt) if self._mixed_encodings else None,
        )
        ex.target = ex.decision.primary
