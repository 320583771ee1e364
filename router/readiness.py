"""`GET /readyz`: may this process take traffic? Draining, and the readiness of every backend.

Ready (200) while at least one backend is ready: its API key variable is set, its last health check
passed and its circuit is not open. The body names the ready backends, why the others are not, and the
models upstreams do not have, but only to the operator (the admin key as Bearer): others get the
status alone. 503 while draining (SIGTERM) or when no backend is ready.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

JSON = "application/json"


def readiness_body(service: Any) -> tuple[int, dict[str, Any]]:
    if service.draining:
        return 503, {"status": "draining"}
    ready: list[str] = []
    not_ready: dict[str, str] = {}
    missing: dict[str, list[str]] = {}
    for b in service.backends.values():
        why = b.not_ready()
        if why is None:
            ready.append(b.name)
        else:
            not_ready[b.name] = why
        gone = [m for m in list(b.missing) if not b.model_available(m)]
        if gone:
            missing[b.name] = gone
    body: dict[str, Any] = {"status": "ready" if ready else "no backend ready", "backends": ready}
    if not_ready:
        body["not_ready"] = not_ready
    if missing:
        body["missing_models"] = missing
    return (200 if ready else 503), body


def readiness(service: Any, detail: bool) -> web.Response:
    status, body = readiness_body(service)
    if not detail:
        body = {"status": body["status"]}
    return web.Response(status=status, body=orjson.dumps(body), content_type=JSON)
