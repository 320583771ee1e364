"""Usage and cost: what an answer consumed, in tokens and USD, whatever wire format reported it.

Called once per reply, after the body or the stream's tail has been read (see router/sse.py). Prices
are USD per million tokens (config `price`); a model without a price costs 0. Cached input tokens are
billed at `cached_input` when the model has one.
"""

from __future__ import annotations

from typing import Any

from router.config import ModelSpec


def token_counts(usage: dict[str, Any]) -> tuple[int, int, int]:
    """(input, output, cached input) from OpenAI chat, Responses or Anthropic usage objects."""
    inp = usage.get("prompt_tokens")
    if inp is None:
        inp = usage.get("input_tokens") or 0
        # Anthropic reports cache reads apart from input_tokens.
        inp += usage.get("cache_read_input_tokens") or 0
        inp += usage.get("cache_creation_input_tokens") or 0
    out = usage.get("completion_tokens")
    if out is None:
        out = usage.get("output_tokens") or 0
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    cached = (details.get("cached_tokens") if isinstance(details, dict) else 0) or 0
    cached = cached or usage.get("cache_read_input_tokens") or 0
    return int(inp), int(out), int(cached)


def cost_usd(model: ModelSpec, usage: dict[str, Any] | None) -> float:
    """What this usage costs on this model, in USD."""
    if not usage:
        return 0.0
    p = model.price
    if p.input == 0 and p.output == 0:
        return 0.0
    inp, out, cached = token_counts(usage)
    cached = min(cached, inp)
    cached_price = p.cached_input if p.cached_input is not None else p.input
    return ((inp - cached) * p.input + cached * cached_price + out * p.output) / 1_000_000
