"""Which endpoint a bare request body belongs to, for `POST /v1/route` (which takes any of them).

`?endpoint=chat|completions|responses|messages|embeddings` decides when given. Otherwise: `messages` with a
top-level `system`, Anthropic content blocks or `max_tokens` and no OpenAI-only field is a Messages body,
other `messages` bodies are chat; `prompt` is completions; `input`, `instructions` or another Responses-only
field is a Responses body, unless the model named is an embedding model (then it is embeddings).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from router.errors import InvalidRequest

ENDPOINTS = ("chat", "completions", "responses", "messages", "embeddings")
_RESPONSES_ONLY = ("instructions", "previous_response_id", "conversation", "max_output_tokens", "text",
                   "reasoning", "include", "truncation", "background")
_ANTHROPIC_BLOCKS = frozenset({"tool_use", "tool_result", "image", "document", "thinking"})


def detect(body: dict[str, Any], asked: str | None, is_embedding_model: Callable[[str], bool]) -> str:
    if asked:
        if asked not in ENDPOINTS:
            raise InvalidRequest(f"endpoint: expected one of {', '.join(ENDPOINTS)}", param="endpoint")
        return asked
    if "messages" in body:
        return "messages" if _looks_anthropic(body) else "chat"
    if "prompt" in body and "input" not in body:
        return "completions"
    model = body.get("model")
    if isinstance(model, str) and is_embedding_model(model):
        return "embeddings"
    if "input" in body or any(k in body for k in _RESPONSES_ONLY):
        return "responses"
    return "chat"


def _looks_anthropic(body: dict[str, Any]) -> bool:
    if "system" in body or "stop_sequences" in body or "anthropic_version" in body:
        return True
    msgs = body.get("messages")
    for m in msgs if isinstance(msgs, list) else ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") in _ANTHROPIC_BLOCKS:
                    return True
    return False
