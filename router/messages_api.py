"""The small endpoint pieces of the Anthropic and multi-format surface that the server wires in.

- `count_tokens_body`: `POST /v1/messages/count_tokens` answered locally (`{"input_tokens": N}`), with the
  router's tokenizer (tiktoken, `routing.encoding`) over the same prompt parts routing counts: system,
  messages, tool definitions, images. Anthropic's own tokenizer is not public, so this is an estimate
  close to, not equal to, what Claude bills.
- `preview_endpoint`: which endpoint a `POST /v1/route` body belongs to (router/formats/detect.py).
- `anthropic_models` / `anthropic_model`: `GET /v1/models[/{id}]` in Anthropic's shape, for clients that send
  `anthropic-version` (the Anthropic SDK always does): `{"data": [{"type": "model", "id", "display_name",
  "created_at"}], "has_more", "first_id", "last_id"}` with its `limit`, `after_id`, `before_id` paging.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
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


ANTHROPIC_VERSION = "anthropic-version"


def _anthropic(m: dict[str, Any]) -> dict[str, Any]:
    created = datetime.datetime.fromtimestamp(m.get("created") or 0, datetime.UTC)
    return {"type": "model", "id": m["id"], "display_name": m["id"],
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ")}


def anthropic_model(m: dict[str, Any]) -> bytes:
    return orjson.dumps(_anthropic(m))


def anthropic_models(models: list[dict[str, Any]], query: Mapping[str, str]) -> bytes:
    ids = [m["id"] for m in models]
    start, stop = 0, len(models)
    if query.get("after_id") in ids:
        start = ids.index(query["after_id"]) + 1
    if query.get("before_id") in ids:
        stop = ids.index(query["before_id"])
    try:
        limit = max(1, min(1000, int(query.get("limit") or 20)))
    except ValueError:
        limit = 20
    page = models[start:stop]
    if "before_id" in query and "after_id" not in query:
        page = page[-limit:]
        more = len(models[start:stop]) > limit
    else:
        more = len(page) > limit
        page = page[:limit]
    data = [_anthropic(m) for m in page]
    return orjson.dumps({"data": data, "has_more": more, "first_id": data[0]["id"] if data else None,
                         "last_id": data[-1]["id"] if data else None})
