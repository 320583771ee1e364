"""Backend for Anthropic's Messages API (`kind: anthropic`; base_url includes /v1, like the others).

The last step before the network for Claude models. It
- passes `POST /v1/messages` requests through untouched (only `model` and the model's `params` change),
  with the client's `anthropic-beta` header, so Anthropic-SDK clients and coding agents keep every feature;
- translates chat completions and Responses requests to Messages and the answers back
  (router/formats/: JSON and SSE event by event, tool calls, thinking, usage with cache reads and writes);
- sends its own key as `x-api-key` with `anthropic-version` (config `api_version`, default 2023-06-01),
  never the client's credentials;
- shares the transport, timeouts and error mapping of the OpenAI adapter (backends/openai.py), where
  Anthropic's 529 `overloaded_error` counts as overload like a 503.
"""

from __future__ import annotations

from typing import Any

from backends import http1
from backends.openai import OpenAIBackend, OpenAIStream
from router.config import ModelSpec
from router.cost import local_usage, with_counted_output
from router.errors import InvalidRequest
from router.exchange import Exchange
from router.formats.bridge import Translation
from router.sse import find_usage

ANTHROPIC_VERSION = "2023-06-01"
MESSAGES = "/messages"


class AnthropicBackend(OpenAIBackend):
    kind = "anthropic"

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.spec.api_version or ANTHROPIC_VERSION}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return headers

    def plan(self, ex: Exchange, model: ModelSpec) -> tuple[str, Translation | None]:
        ep = ex.endpoint
        if ep == "messages":
            return MESSAGES, None
        if ep in ("chat", "responses"):
            return MESSAGES, Translation(ep, "messages", ex.body)
        raise InvalidRequest(
            f"backend {self.name!r} (kind anthropic) does not serve {ep} requests; use /v1/chat/completions, "
            f"/v1/responses or /v1/messages", param="model",
        )

    def request_head(self, client: http1.Client, target: str, ex: Exchange) -> bytes:
        head = client.head(target)
        beta = ex.headers.get("anthropic-beta") if ex.endpoint == "messages" and ex.headers is not None else None
        if beta:
            head += b"anthropic-beta: " + http1.encode_header_value(beta) + b"\r\n"
        return head

    def native_stream(self, resp: http1.Response, first: bytes, strip: bool, ex: Exchange) -> Any:
        return MessagesStream(self, resp, first, strip, ex)


class MessagesStream(OpenAIStream):
    """A passed-through Messages stream: input and cache counts come in `message_start` (the first chunk),
    the output count in the last `message_delta`; `usage` merges the two."""

    __slots__ = ("start_usage",)

    def __init__(self, backend: Any, resp: http1.Response, first: bytes, strip: bool, ex: Exchange) -> None:
        super().__init__(backend, resp, first, strip, ex)
        self.start_usage = _usage_at(first)

    async def _relay(self) -> Any:
        async for chunk in super()._relay():
            yield chunk
        tail = self.usage or {}
        self.usage = {**self.start_usage, **{k: v for k, v in tail.items() if v is not None}} or None

    def count_partial(self) -> None:
        """Cut short: message_start's input and cache counts, the output relayed so far counted locally."""
        if self.usage is None and self.ex.target is not None:
            self.usage = with_counted_output(self.start_usage, local_usage(self.ex, None, self.seen))


def _usage_at(first: bytes) -> dict[str, Any]:
    i = first.find(b"message_start")
    if i < 0:
        return {}
    end = first.find(b"\n\n", i)
    usage = find_usage(first[i : end if end > 0 else len(first)])
    return {k: v for k, v in (usage or {}).items() if v is not None}
