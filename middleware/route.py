"""The `route` stage: turns the request's features into a `Decision` (chosen model, then the fallback chain).

It reads `ex.features` (from `classify`, or computes them itself when `classify` is not in the pipeline,
e.g. `pipeline: [route, retry]`), the client's `model` field and steering headers, the tenant, and any cap
an earlier stage set (`ex.max_tier`, `ex.prefer`), then asks `router.routing.policy.Policy` for the chain.
Two restrictions narrow it, never widen it: the client key's `tiers` globs (403 when none is left) and a
`local_only` redaction policy (`ex.local_only`: local models only, 503 when none can serve: fail closed). It sets
`ex.decision` and `ex.target` (the primary; `retry` moves it along the chain). A dry run (`POST /v1/route`)
goes through here exactly like a real request. The policy's adaptive layer and the feedback loop that
remembers each answer (router/routing/feedback.py, a finish hook) are the context's `feedback`.

Fast path: a request naming a concrete model id with no features yet (no `classify` stage) is not classified
at all: it goes to the backends serving that model, unrerouted, so only the catalog lookup is needed and
`ex.features` stays None (a dry run still computes them, for the preview).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from middleware.classify import Analyzer, build_analyzer
from router.auth import ApiKey
from router.catalog import is_routed
from router.errors import NoBackendAvailable, PermissionDenied
from router.exchange import CallNext, Decision, Exchange, Reply
from router.pipeline import Stage
from router.routing.feedback import build_feedback


class RouteStage(Stage):
    """Decide where the request goes."""

    name = "route"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.analyzer: Analyzer = build_analyzer(ctx)
        self.policy = self.analyzer.policy
        if ctx.feedback is None:
            ctx.feedback = build_feedback(ctx.config, ctx.catalog)
        self.finished = ctx.feedback.finished
        self.policy.adaptive = ctx.feedback.adaptive
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
        key = ex.key
        restricted = (key is not None and key.tiers != ("*",)) or ex.local_only
        ex.decision = self.policy.decide(
            ex.features,
            endpoint=ex.endpoint,
            model=ex.client_model,
            tenant=ex.tenant,
            headers=ex.headers if key is None or key.steering else None,
            max_tier=self._top_allowed(key, ex.max_tier) if restricted else ex.max_tier,
            prefer="local" if ex.local_only else ex.prefer,
            tokens_for=Analyzer.recounter(ex, prompt) if self._mixed_encodings else None,
            live=not ex.dry_run,
        )
        if restricted:
            restrict(ex, ex.decision)
        ex.target = ex.decision.primary
        if not ex.dry_run:
            ex.finish_hooks.append(self.finished)  # the feedback loop remembers the answer when it ends

    def _top_allowed(self, key: ApiKey | None, max_tier: str | None) -> str | None:
        """The highest tier the key's `tiers` allow (capped by `max_tier`), so routing looks there first."""
        if key is None or key.tiers == ("*",):
            return max_tier
        rank = self.policy.rank
        top = max((t for t in self.policy.tiers if key.allows_tier(t)), key=rank.__getitem__, default=None)
        if top is None or (max_tier is not None and max_tier in rank and rank[max_tier] < rank[top]):
            return max_tier
        return top


def restrict(ex: Exchange, decision: Decision) -> None:
    """Keep only the candidates the key's `tiers` allow and, under a `local_only` redaction policy, the
    local ones: refuse (403) or fail closed (503) when none is left, never widening the choice."""
    cands = decision.candidates
    key = ex.key
    if key is not None and key.tiers != ("*",):
        cands = [c for c in cands if c.tier is None or key.allows_tier(c.tier)]
        if not cands:
            raise PermissionDenied(f"This key may only use the tiers {', '.join(key.tiers)}, and none of them "
                                   "can serve this request.", param="model", code="tier_not_allowed")
        decision.reasons.append(f"key {key.name}: tiers {', '.join(key.tiers)} only")
    if ex.local_only:
        cands = [c for c in cands if c.model.location == "local"]
        if not cands:
            raise NoBackendAvailable("This request may only go to local models (redaction policy local_only) and "
                                     "none can serve it; it was not sent to any cloud model.",
                                     code="local_only_unavailable")
        decision.reasons.append("redaction policy local_only: local models only")
    decision.candidates = cands
