"""Stage `retry`: promotion. Walks the decision's candidate chain when an upstream fails early.

It wraps the call to the backend: when the chosen upstream fails before anything reached the client
(connection error, 5xx, 429/503 overload, timeout, or no first token within
`routing.promotion.first_token_ms` on streams), the request moves to the next candidate (the policy
orders them: same tier on another backend first, then the next tier), at most `max_steps` times.
Every attempt is recorded in `ex.attempts`, which the server reports in `x-router-attempts`.
Bytes are never duplicated: a backend returns a stream only after its first chunk, and nothing is
written to the client until the pipeline returns.
"""

from __future__ import annotations

import time
from typing import Any

from router.errors import NoBackendAvailable, UpstreamFailure
from router.exchange import Attempt, CallNext, Exchange, Reply
from router.pipeline import Stage


class RetryStage(Stage):
    name = "retry"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        promo = ctx.config.routing.promotion
        self.on = promo.on
        self.max_attempts = 1 + promo.max_steps
        self.first_token_s = promo.first_token_ms / 1000 if "slow_first_token" in promo.on else None

    async def handle(self, ex: Exchange, call_next: CallNext) -> Reply:
        if ex.dry_run or ex.decision is None:
            return await call_next(ex)
        candidates = ex.decision.candidates
        if len(candidates) > 1 and not all(c.backend.healthy for c in candidates):
            candidates = [c for c in candidates if c.backend.healthy] or candidates
        chain = candidates[: self.max_attempts]
        last: UpstreamFailure | None = None
        for i, cand in enumerate(chain):
            ex.target = cand
            more = i + 1 < len(chain)
            ex.first_byte_s = self.first_token_s if (ex.stream and more) else None
            t0 = time.perf_counter()
            try:
                reply = await call_next(ex)
            except UpstreamFailure as e:
                ex.attempts.append(_attempt(cand, e.reason, t0))
                if e.reason not in self.on or not more:
                    raise
                last = e
                continue
            ex.attempts.append(_attempt(cand, "ok", t0))
            return reply
        raise last or NoBackendAvailable("No backend is available for this request.")


def _attempt(cand: Any, outcome: str, t0: float) -> Attempt:
    return Attempt(cand.model.id, cand.model.backend, cand.tier, outcome, (time.perf_counter() - t0) * 1000)
