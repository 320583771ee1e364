"""HTTP endpoints of observability: `GET /metrics`, `GET /dashboard` (+ its JS/CSS), `GET /dashboard/stats`.

Who may read them: when no keys are configured (no `auth.keys` and no admin key in the environment)
all are open, as for a sidecar on localhost. Otherwise `/dashboard/stats` and `/metrics` need the admin
key as `Authorization: Bearer KEY` (router/admin.py), and Prometheus sends it from a file (see
deploy/prometheus/prometheus.yml); `metrics.public: true` opens `/metrics` alone, for a scraper on a
private network. The page itself and its script carry no data and are always served: the page asks for
the key when the stats answer 401/403, and sends it as Bearer.

The page is self-contained (no CDN) and served under a strict Content-Security-Policy: no inline script
or style, only same-origin files shipped as package data next to this module (static/).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

from router.errors import NotFound, ProxyError
from router.observe.metrics import CONTENT_TYPE
from router.observe.stats import dashboard_stats

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


def _static(name: str) -> bytes:
    return resources.files("router.observe").joinpath("static", name).read_bytes()


def is_protected(service: Any) -> bool:
    """True when keys are configured (`auth.keys`, or the admin key is set so keys are managed at run
    time): observability data then needs the admin key."""
    return bool(service.keys.keyed or service.admin.enabled)


def _refuse(e: ProxyError) -> web.Response:
    return web.Response(status=e.status, body=e.body(), content_type="application/json",
                        headers={**e.headers, **({"WWW-Authenticate": "Bearer"} if e.status == 401 else {})})


def add_routes(app: web.Application, service: Callable[[], Any]) -> None:
    """Register the observability endpoints; `service()` is the live RouterService (swapped by a reload)."""
    page = _static("dashboard.html")
    files = {name: _static(name) for name in STATIC}

    def enabled() -> Any:
        svc = service()
        if svc.observer.metrics is None:
            raise NotFound("Metrics are off (metrics.enabled: false).")
        return svc

    async def metrics(request: web.Request) -> web.Response:
        try:
            svc = enabled()
            if is_protected(svc) and not svc.config.metrics.public:
                svc.admin.check(request.headers)
        except ProxyError as e:
            return _refuse(e)
        m = svc.observer.metrics
        m.sample(svc.backends.values())
        return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE})

    async def dashboard(request: web.Request) -> web.Response:
        try:
            enabled()
        except ProxyError as e:
            return _refuse(e)
        return web.Response(body=page, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:
            return _refuse(NotFound(f"Unknown path: {request.path}"))
        return web.Response(body=files[name], content_type=STATIC[name], charset="utf-8", headers=PAGE_HEADERS)

    async def stats(request: web.Request) -> web.Response:
        try:
            svc = enabled()
            if is_protected(svc):
                svc.admin.check(request.headers)
        except ProxyError as e:
            return _refuse(e)
        body = orjson.dumps(await dashboard_stats(svc), option=orjson.OPT_NON_STR_KEYS)
        return web.Response(body=body, content_type="application/json", headers={"Cache-Control": "no-store"})

    r = app.router
    r.add_get("/metrics", metrics)
    r.add_get("/dashboard", dashboard)
    r.add_get("/dashboard/stats", stats)
    r.add_get("/dashboard/{name}", static)
