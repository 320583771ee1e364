"""Stage `retry`: spill-over and promotion. Walks the decision's candidate chain when a backend cannot
take the request or fails before anything reached the client.

It wraps the call to the backend. The chain (the policy orders it: same tier on another backend first,
then the next tiers up to the caps of tenant, client and budget) is first cut to what can serve:
- backends that are not ready (circuit open, key unset) are skipped; one whose last health check
  failed goes after all the others (it may have come up since the check);
- `Exchange.local_only` (the tenant's redaction policy) keeps only `location: local` backends;
- a model known to be missing upstream is skipped for another candidate of the same tier; moving up a
  tier because of it happens only when `routing.promotion.on` lists `missing_model`, else the client
  gets 404 `model_not_found` naming the model (never a 502 that SDKs would retry).

Then, for each candidate in turn:
- **spill-over** (`routing.spill`, on by default): a backend whose `max_concurrency` slots stay busy for
  its `queue_ms` raises `Saturated`; the request moves on to the next candidate without it counting as
  a promotion step, and the answer carries `x-router-spilled: TIER`. The last candidate (and every
  candidate when spill is off) waits longer for a slot (`timeouts.connect_s`), then 503
  `no_backend_available` with `retry-after`. A circuit found open at call time spills the same way.
- **promotion**: an upstream failure whose reason is in `routing.promotion.on` (error, timeout,
  overload, slow_first_token: no first content within `first_token_ms` on streams, missing_model)
  moves to the next candidate, at most `max_steps` times.
Every attempt is recorded in `ex.attempts` (`x-router-attempts`). Bytes are never duplicated: a backend
returns a stream only once its first content has arrived, and nothing is written to the client until
the pipeline returns.
"""

from __future__ import annotations

import time
from typing import Any

from router.errors import CircuitOpen, ModelUnavailable, NoBackendAvailable, Saturated, UpstreamFailure
from router.exchange import Attempt, CallNext, Candidate, Exchange, Reply
from router.pipeline import Stage


class RetryStage(Stage):
    name = "retry"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        routing = ctx.config.routing
        promo = routing.promotion
        self.on = promo.on
        self.max_steps = promo.max_steps
        self.first_token_s = promo.first_token_ms / 1000 if "slow_first_token" in promo.on else None
        self.spill = routing.spill
        self.missing_promotes = "missing_model" in promo.on

    async def handle(self, ex: Exchange, call_next: CallNext) -> Reply:
        if ex.dry_run or ex.decision is None:
            return await call_next(ex)
        chain = self.usable(ex, ex.decision.candidates)
        n = len(chain)
        spill = self.spill and n > 1  # then a candidate with a later one on another backend waits briefly
        steps = 0
        full: list[Any] = []  # backends found saturated: their later candidates are skipped
        last: UpstreamFailure | NoBackendAvailable | None = None
        spilled = False
        for i, cand in enumerate(chain):
            if full and cand.backend in full:
                continue
            more = i + 1 < n and any(c.backend not in full for c in chain[i + 1:]) if full else i + 1 < n
            promotable = more and steps < self.max_steps
            ex.target = cand
            ex.slot_wait_s = cand.backend.spec.queue_ms / 1000 if spill and _elsewhere(chain, i) else None
            ex.first_token_s = self.first_token_s if (ex.stream and promotable) else None
            t0 = time.perf_counter()
            try:
                reply = await call_next(ex)
            except (Saturated, CircuitOpen) as e:
                ex.attempts.append(_attempt(cand, e.reason, t0))
                full.append(cand.backend)
                if isinstance(e, Saturated) and ex.slot_wait_s is None:
                    raise  # it waited as long as it may (spill off, or nowhere else to go)
                cand.backend.count_spill(e.reason)
                spilled = True
                last = e
                continue
            except UpstreamFailure as e:
                ex.attempts.append(_attempt(cand, e.reason, t0))
                if isinstance(e, ModelUnavailable) and more and chain[i + 1].tier == cand.tier:
                    cand.backend.count_spill(e.reason)  # the same tier elsewhere: not a promotion
                    last = e
                    continue
                if e.reason not in self.on or not promotable:
                    raise
                steps += 1
                last = e
                continue
            ex.attempts.append(_attempt(cand, "ok", t0))
            if spilled:
                ex.spilled = cand.tier or cand.model.backend
            return reply
        raise last or NoBackendAvailable("No backend is available for this request.",
                                         headers={"Retry-After": "1"})

    def usable(self, ex: Exchange, candidates: list[Candidate]) -> list[Candidate]:
        """The candidates that can serve now, in order (see the module docstring)."""
        if ex.local_only:
            candidates = [c for c in candidates if c.model.location == "local"]
            if not candidates:
                raise NoBackendAvailable("This request must stay on local backends (local_only) and none "
                                         "can take it.", headers={"Retry-After": "1"})
        for c in candidates:  # the usual case first: every backend healthy with no model missing, when
            b = c.backend       # `Backend.usable` says yes to each (anything else takes its full answer below)
            if b.missing or not b.healthy:
                break
        else:
            return candidates  # all can serve: the chain as decided (the walk never changes it)
        ok = [c for c in candidates if c.backend.usable(c.model.id)]
        ok += [c for c in candidates if c not in ok and c.backend.usable(c.model.id, last_resort=True)]
        primary = candidates[0]
        b = primary.backend
        missing = b.healthy and not b.model_available(primary.model.id)
        if missing and not self.missing_promotes:
            ok = [c for c in ok if c.tier == primary.tier]  # another backend of the same tier, not higher
        if not ok:
            if missing or all(c.backend.healthy for c in candidates):
                why = b.missing.get(primary.model.id, ("missing upstream", 0.0))[0]
                raise ModelUnavailable(
                    f"The model '{primary.model.id}' is not available on backend '{b.name}' ({why}).",
                    param="model",
                )
            raise _none_ready(candidates)
        return ok


def _elsewhere(chain: list[Candidate], i: int) -> bool:
    """Is a candidate after the i-th on another backend (so waiting for the i-th's slot can be short)? Asked
    per attempt: the first usually answers, so the later candidates' answers are never needed."""
    backend = chain[i].backend
    for c in chain[i + 1:]:  # noqa: SIM110 (no generator per call)
        if c.backend is not backend:
            return True
    return False


def _none_ready(candidates: list[Candidate]) -> NoBackendAvailable:
    seen: dict[str, str] = {}
    wait = 1.0
    for c in candidates:
        b = c.backend
        if b.name not in seen:
            seen[b.name] = b.not_ready() or f"model {c.model.id!r} unavailable"
            if b.breaker.retry_after() > wait:
                wait = b.breaker.retry_after()
    detail = "; ".join(f"{name}: {why}" for name, why in seen.items())
    return NoBackendAvailable(f"No backend can take this request now ({detail}).",
                              headers={"Retry-After": str(max(1, round(wait)))})


def _attempt(cand: Any, outcome: str, t0: float) -> Attempt:
    return Attempt(cand.model.id, cand.model.backend, cand.tier, outcome, (time.perf_counter() - t0) * 1000)
