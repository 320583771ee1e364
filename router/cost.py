"""Usage and cost: what an answer consumed, in tokens and USD, whatever wire format reported it.

Called once per reply, after the body or the stream's tail has been read (see router/sse.py). Prices
are USD per million tokens (config `price`); a model without a price costs 0. Cached input tokens are
billed at `cached_input` when the model has one. Anthropic's cache writes (`cache_creation_input_tokens`)
are billed at the input price, its cache reads at `cached_input`. When an upstream reports no usage
(common with vLLM, llama.cpp and Ollama), `local_usage` counts the prompt and the completion with the
model's tokenizer, and marks the usage as counted by the router. `worst_case_usd` is what a budget
reserves before the call; `priced` prices usage at the highest tier's list prices (the savings baseline).
"""

from __future__ import annotations

from typing import Any

import orjson

from router.config import ModelSpec
from router.routing.tokens import DEFAULT_ENCODING, count_exact, count_text, extract, get_encoding


def token_counts(usage: dict[str, Any]) -> tuple[int, int, int]:
    """(input, output, cached input) from OpenAI chat, Responses or Anthropic usage objects."""
    inp = usage.get("prompt_tokens")
    out = usage.get("completion_tokens")
    if inp.__class__ is int and out.__class__ is int:  # OpenAI's shape, as JSON gives it: the common case, first
        details = usage.get("prompt_tokens_details")
        if details is None:
            if "cache_read_input_tokens" not in usage:
                return inp, out, 0
        elif details.__class__ is dict:
            cached = details.get("cached_tokens")
            if cached.__class__ is int and cached:
                return inp, out, cached
    if inp is None:
        inp = usage.get("input_tokens") or 0
        # Anthropic reports cache reads apart from input_tokens.
        inp += usage.get("cache_read_input_tokens") or 0
        inp += usage.get("cache_creation_input_tokens") or 0
    if out is None:
        out = usage.get("output_tokens") or 0
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    cached = (details.get("cached_tokens") if isinstance(details, dict) else 0) or 0
    cached = cached or usage.get("cache_read_input_tokens") or 0
    return int(inp), int(out), int(cached)


def usage_counts(ex: Any) -> tuple[int, int, int] | None:
    """`token_counts(ex.usage)` of an exchange (None without usage), computed once per usage object: the
    stages and the observer that all need them share the memo (`Exchange.counts`; usage is never changed in
    place, only replaced)."""
    usage = ex.usage
    if not usage:
        return None
    memo = ex.counts
    if memo is not None and memo[0] is usage:
        return memo[1]  # type: ignore[no-any-return]
    counts = token_counts(usage)
    ex.counts = (usage, counts, None, 0.0)  # (no model priced yet: `usage_cost`)
    return counts


def usage_cost(ex: Any, model: ModelSpec) -> float:
    """`counts_cost(model, usage_counts(ex))` of an exchange's usage (0 without), memoised with the counts
    (`Exchange.counts`: usage, counts, the model priced, its cost), so the backend's price of an answer is the
    one the budget settles, computed once."""
    usage = ex.usage
    if not usage:
        return 0.0
    memo = ex.counts
    if memo is not None and memo[0] is usage:
        if memo[2] is model:
            return memo[3]  # type: ignore[no-any-return]
        counts = memo[1]
    else:
        counts = token_counts(usage)
    cost = counts_cost(model, counts)
    ex.counts = (usage, counts, model, cost)
    return cost


def cost_usd(model: ModelSpec, usage: dict[str, Any] | None) -> float:
    """What this usage costs on this model, in USD."""
    if not usage:
        return 0.0
    p = model.price
    if p.input == 0 and p.output == 0:
        return 0.0
    return counts_cost(model, token_counts(usage))


def counts_cost(model: ModelSpec, counts: tuple[int, int, int]) -> float:
    """`cost_usd` from the usage's `token_counts` (input, output, cached input)."""
    p = model.price
    if p.input == 0 and p.output == 0:
        return 0.0
    inp, out, cached = counts
    cached = min(cached, inp)
    cached_price = p.cached_input if p.cached_input is not None else p.input
    return ((inp - cached) * p.input + cached * cached_price + out * p.output) / 1_000_000


# ---------------------------------------------------------------- worst case, baseline, local counting

DEFAULT_MAX_OUTPUT = 4096  # output cap assumed for a model when the request sets no max_tokens


def worst_case_usd(model: ModelSpec, prompt_tokens: int, max_output: int | None) -> float:
    """The most this request can cost on `model`: every prompt token at the input price (no cache
    discount) plus `max_output` (else the room left in the context, at most DEFAULT_MAX_OUTPUT) output tokens."""
    p = model.price
    if p.input == 0 and p.output == 0:
        return 0.0
    out = max_output
    if not out:  # min(DEFAULT_MAX_OUTPUT, max(room, 1)), as conditionals: the budget asks on every paid attempt
        out = model.context - prompt_tokens
        out = 1 if out < 1 else DEFAULT_MAX_OUTPUT if out > DEFAULT_MAX_OUTPUT else out
    return (prompt_tokens * p.input + out * p.output) / 1_000_000


def priced(usage: dict[str, Any], price_in: float, price_out: float) -> float:
    """This usage at plain per-million prices (no cache discount): the all-highest-tier baseline."""
    inp, out, _ = token_counts(usage)
    return (inp * price_in + out * price_out) / 1_000_000


def tier_prices(models: list[ModelSpec], tiers: list[str]) -> dict[str, tuple[float, float]]:
    """Per tier, the highest (input, output) price among its chat models: the tier's worst case."""
    out: dict[str, tuple[float, float]] = {t: (0.0, 0.0) for t in tiers}
    for m in models:
        if m.tier in out and m.type == "chat":
            pi, po = out[m.tier]
            out[m.tier] = (max(pi, m.price.input), max(po, m.price.output))
    return out


class Baseline:
    """What an answer would have cost with every request on the highest priced tier (embeddings: on the
    priciest embedding model): the savings baseline of the spend ledger, the metrics and the dashboard."""

    __slots__ = ("embedding", "top")

    def __init__(self, models: list[ModelSpec], tiers: list[str]) -> None:
        prices = tier_prices(models, tiers)
        top = next((t for t in reversed(tiers) if prices[t] != (0.0, 0.0)), None)
        self.top = prices[top] if top else (0.0, 0.0)
        emb = [m.price.input for m in models if m.type == "embedding"]
        self.embedding = max(emb) if emb else 0.0

    def __call__(self, endpoint: str, usage: dict[str, Any] | None) -> float:
        if not usage:
            return 0.0
        tin, tout, _ = token_counts(usage)
        return self.tokens(endpoint, tin, tout)

    def tokens(self, endpoint: str, tokens_in: int, tokens_out: int) -> float:
        if endpoint == "embeddings":
            return tokens_in * self.embedding / 1_000_000
        pi, po = self.top
        return (tokens_in * pi + tokens_out * po) / 1_000_000


def _texts_json(endpoint: str, data: Any, out: list[str]) -> None:
    """Completion text of a JSON answer (chat, completions, responses)."""
    if not isinstance(data, dict):
        return
    for ch in data.get("choices") or ():
        if not isinstance(ch, dict):
            continue
        msg = ch.get("message") or ch.get("delta") or {}
        if isinstance(msg, dict):
            if isinstance(msg.get("content"), str):
                out.append(msg["content"])
            for tc in msg.get("tool_calls") or ():
                fn = tc.get("function") if isinstance(tc, dict) else None
                if isinstance(fn, dict):
                    out.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))
        if isinstance(ch.get("text"), str):
            out.append(ch["text"])
    for item in data.get("output") or ():  # Responses
        for part in (item.get("content") or ()) if isinstance(item, dict) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
    if data.get("type") == "response.output_text.delta" and isinstance(data.get("delta"), str):
        out.append(data["delta"])
    delta = data.get("delta")  # Anthropic Messages events
    if data.get("type") == "content_block_delta" and isinstance(delta, dict):
        out.append(str(delta.get("text") or delta.get("partial_json") or ""))
    for block in data.get("content") or () if data.get("type") == "message" else ():
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            out.append(block["text"])


def completion_text(endpoint: str, body: bytes | None = None, chunks: list[bytes] | None = None) -> str:
    """The completion of a JSON body or of an SSE stream's chunks, for counting tokens locally.

    Only called when the upstream reported no usage; it parses what the hot path never parses."""
    out: list[str] = []
    if body is not None:
        try:
            _texts_json(endpoint, orjson.loads(body), out)
        except orjson.JSONDecodeError:
            pass
    if chunks:
        for line in b"".join(chunks).splitlines():
            if line.startswith(b"data:") and line[5:].strip() not in (b"[DONE]", b""):
                try:
                    _texts_json(endpoint, orjson.loads(line[5:]), out)
                except orjson.JSONDecodeError:
                    continue
    return "".join(out)


def local_usage(ex: Any, body: bytes | None = None, chunks: list[bytes] | None = None) -> dict[str, Any]:
    """Usage counted by the router (tiktoken) when the upstream sent none: the prompt as sent, the completion
    from the answer. Marked `"x_router_counted": true` so logs and the ledger say so."""
    model = ex.target.model if ex.target is not None else None
    encoding = (model.encoding if model is not None and model.encoding else None) or DEFAULT_ENCODING
    f = ex.features
    if f is not None and f.tokens_exact:
        prompt = f.tokens
    else:
        prompt = count_exact(extract(ex.endpoint, ex.body), get_encoding(encoding))
    completion = 0 if ex.endpoint == "embeddings" else count_text(completion_text(ex.endpoint, body, chunks),
                                                                   encoding)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "x_router_counted": True}


def with_counted_output(reported: dict[str, Any] | None, counted: dict[str, Any]) -> dict[str, Any]:
    """The usage of a stream cut short: the upstream's own counts where it sent them (an Anthropic
    stream's input and cache counts arrive first), the completion relayed so far as the router counted
    it when that is more than the upstream reported. `counted` comes from `local_usage`."""
    if not reported:
        return counted
    usage = dict(reported)
    key = "completion_tokens" if "prompt_tokens" in usage or "completion_tokens" in usage else "output_tokens"
    usage[key] = max(int(usage.get(key) or 0), counted["completion_tokens"])
    if "total_tokens" in usage and "prompt_tokens" in usage:
        usage["total_tokens"] = int(usage["prompt_tokens"] or 0) + usage[key]
    usage["x_router_counted"] = True
    return usage
