"""The decision, explained: what `POST /v1/route` and `ai-router route` print for a routed exchange.

`describe(ex)` reads what `classify` and `route` left on the exchange (features, decision, target) and
returns a plain dict, ready for orjson.
"""

from __future__ import annotations

from typing import Any

from router.exchange import Exchange

DEFAULT_OUTPUT_TOKENS = 256


def estimated_cost(tokens: int, max_output: int | None, price_in: float, price_out: float) -> float:
    """USD for `tokens` input tokens plus the expected output at per-million prices."""
    out = max_output or DEFAULT_OUTPUT_TOKENS
    return round((tokens * price_in + out * price_out) / 1_000_000, 8)


def describe(ex: Exchange) -> dict[str, Any]:
    """The routing decision of `ex` as `{"model", "backend", "tier", "task", "complexity", "difficulty",
    "tokens", "tokens_exact", "confidence", "estimated_cost_usd", "reasons", "signals", "fallbacks"}`.

    `estimated_cost_usd` prices the chosen model for the prompt's input tokens plus an output estimate:
    the request's `max_tokens` (or `max_completion_tokens` / `max_output_tokens`) when given, else
    DEFAULT_OUTPUT_TOKENS (256, a typical chat answer). It is an upper-bound-ish preview, not a bill.
    `fallbacks` lists the rest of the chain as `{"model", "backend", "tier"}`, in the order `retry` walks it.
    """
    f = ex.features
    d = ex.decision
    target = ex.target or (d.primary if d and d.candidates else None)
    tokens = f.tokens if f else 0
    out: dict[str, Any] = {
        "model": target.model.id if target else None,
        "backend": target.model.backend if target else None,
        "tier": target.tier if target else None,
        "task": f.task if f else None,
        "complexity": f.complexity if f else None,
        "difficulty": f.difficulty if f else None,
        "tokens": tokens,
        "tokens_exact": f.tokens_exact if f else False,
        "confidence": f.confidence if f else None,
        "estimated_cost_usd": 0.0,
        "reasons": list(d.reasons) if d else [],
        "signals": list(f.signals) if f else [],
        "fallbacks": [],
    }
    if target:
        p = target.model.price
        out["estimated_cost_usd"] = estimated_cost(tokens, f.max_output_tokens if f else None, p.input, p.output)
    if d:
        out["fallbacks"] = [c.describe() for c in d.candidates if c is not target]
    return out
