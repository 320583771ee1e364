"""The small endpoint pieces of the Anthropic and multi-format surface that the server wires in.

- `count_tokens_body`: `POST /v1/messages/count_tokens` answered locally (`{"input_tokens": N}`), with the
  router's tokenizer (tiktoken, `routing.encoding`) over the same prompt parts routing counts: system,
  messages, tool definitions, images. Anthropic's own tokenizer is not public, so this is an estimate
  close to, not equal to, what Claude bills.
- `preview_endpoint`: which endpoint a `POST /v1/route` body belongs to (router/formats/detect.py).
"""

from __future__ import annotations

from typing import Any

import orjson

from router.catalog import Catalog
from router.exchange import Exchange
from router.formats.detect import detect
from router.routing.tokens import count_exact, extract, get_encoding


def count_tokens_body(ex: Exchange, encoding: str) -> bytes:
    n = count_exact(extract("messages", ex.body), get_encoding(encoding))
    return orjson.dumps({"input_tokens": n})


def preview_endpoint(body: Any, asked: str | None, catalog: Catalog) -> str:
    if not isinstance(body, dict):
        return "chat"  # the body check that follows refuses it

    def is_embedding(model_id: str) -> bool:
        cands = catalog.by_id.get(model_id)
        return bool(cands) and cands[0].model.type == "embedding"

    return detect(body, asked, is_embedding)
