"""The HTTP server: the request's entry and exit. Parses once, runs the pipeline, pumps the answer.

`RouterService` is one loaded config made live (backends with their pools, the catalog, the composed
pipeline, the terminal step that calls the chosen backend). `create_app` wraps it in an aiohttp
application with the endpoints of DESIGN.md; `run_worker` serves it on uvloop with graceful drain on
SIGTERM/SIGINT. Streams are pumped here, once, chunk by chunk: no stage re-encodes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import itertools
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError
from multidict import istr

from backends import make_backend
from backends.base import Backend
from backends.health import HealthChecker
from router import messages_api
from router.admin import AdminGate
from router.auth import KeyRing
from router.catalog import Catalog
from router.config import Config
from router.context import Context
from router.cost import cost_usd
from router.errors import (
    InternalError,
    InvalidRequest,
    ModelNotFound,
    NoBackendAvailable,
    NotFound,
    ProxyError,
    RequestTooLarge,
    UpstreamFailure,
    echo,
)
from router.exchange import Candidate, Exchange, Reply
from router.feedback_api import FeedbackEndpoint
from router.formats import errors as wire_errors
from router.keys import KeysAPI, KeyStore
from router.observe.dashboard import add_routes as add_observe_routes
from router.observe.observer import Observer
from router.pipeline import Pipeline
from router.protocol import GuardedRunner, client_request_id
from router.readiness import readiness
from router.reload import Reloader, release_reloads
from router.routing.feedback import build_feedback
from router.routing.preview import describe
from router.spend import SpendAPI
from router.state import open_store
from router.tenants import Tenants
from router.validate import check

log = logging.getLogger("ai_router")

ENDPOINTS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
}
JSON = "application/json"
# The answer's header names as istr: aiohttp's CIMultiDict keeps an istr name as it is, where a str one is made into
# a new istr in every answer (when the dict is copied in, and again when the head is serialized): ~500 instructions
# a header. The bytes on the wire are the same (an istr's text is the name as written).
H_REQUEST_ID = istr("x-request-id")
H_OVERHEAD = istr("x-router-overhead-ms")
H_MODEL = istr("x-router-model")
H_BACKEND = istr("x-router-backend")
H_TIER = istr("x-router-tier")
H_TASK = istr("x-router-task")
H_COMPLEXITY = istr("x-router-complexity")
H_DIFFICULTY = istr("x-router-difficulty")
H_ATTEMPTS = istr("x-router-attempts")
H_SPILLED = istr("x-router-spilled")
H_QUEUE = istr("x-router-queue-ms")
H_COST = istr("x-router-cost-usd")
SERVICE_KEY = web.AppKey("service", object)
RELOADER_KEY = web.AppKey("reloader", Reloader)


class RouterService:
    """A config made live: backends, catalog, pipeline and the terminal step."""

    def __init__(self, config: Config, metrics: Any = None, previous: RouterService | None = None) -> None:
        self.config = config
        # a reload (router/reload.py) keeps the backends whose config did not change: pools, slots, breakers
        kept = previous.backends if previous is not None else {}
        self.backends: dict[str, Backend] = {
            b.name: kept[b.name] if b.name in kept and kept[b.name].spec == b else make_backend(b)
            for b in config.backends}
        self.kept = {n for n, b in self.backends.items() if kept.get(n) is b}
        store = previous.ctx.store if previous is not None and previous.config.state_url == config.state_url else None
        self.store_kept = store is not None
        self.successor: RouterService | None = None  # the service a reload replaced this one with
        for backend in self.backends.values():
            backend.max_body_bytes = int(config.server.max_upstream_body_mb * 1024 * 1024)
        self.catalog = Catalog(config, self.backends)
        self.keys = KeyRing(config.auth, config.pipeline, config.routing.tiers)
        self.feedback = build_feedback(config, self.catalog)  # /v1/feedback and the adaptive policy
        self.ctx = Context(config=config, backends=self.backends, catalog=self.catalog, keys=self.keys,
                           store=store or open_store(config.state_url), feedback=self.feedback)
        self.key_store = KeyStore(self.ctx.store, self.keys, config.routing.tiers)  # /admin/keys
        if self.keys.keyed:
            self.keys.attach(self.key_store.lookup)
        self.pipeline = Pipeline.from_config(config.pipeline, self.ctx, self.dispatch)
        self.max_body = int(config.server.max_body_mb * 1024 * 1024)
        self.observer = Observer(config, self.backends, metrics)
        self.admin = AdminGate(config.auth)
        self.tenants = Tenants(config)  # validates tenants/cache/budget/limits even when their stage is off
        self.draining = False
        self.models_body = orjson.dumps({"object": "list", "data": self.catalog.models_json()})
        self.health = HealthChecker(self.backends.values())

    async def start(self) -> None:
        if not self.store_kept:
            await self.ctx.store.start()
        await self.feedback.start(self.ctx.store)  # the adaptive counters, read before the first request
        for name, b in self.backends.items():
            if name not in self.kept:
                await b.start()
        self.observer.start(self.ctx.store, self.tenants)
        await self.health.start()

    async def aclose(self) -> None:
        await self.health.aclose()
        await self.pipeline.aclose()  # stages' connections (the cache's Redis client)
        for b in self.backends.values():
            await b.aclose()
        await self.feedback.aclose()
        await self.ctx.store.aclose()
        self.observer.close()

    async def retire(self, successor: RouterService) -> None:
        """After a reload: close what `successor` did not keep (its requests are done, or the grace is over)."""
        await self.health.aclose()
        await self.pipeline.aclose()
        for name, b in self.backends.items():
            if successor.backends.get(name) is not b:
                await b.aclose()
        await self.feedback.aclose()
        if successor.ctx.store is not self.ctx.store:
            await self.ctx.store.aclose()
        self.observer.close()

    def dispatch(self, ex: Exchange) -> Awaitable[Reply]:
        """The terminal step: send the exchange to its target (or describe the decision on a dry run).

        A plain function returning the backend's coroutine, so the await chain has one frame less."""
        target = ex.target
        if target is None:
            if ex.decision is None or not ex.decision.candidates:
                raise NoBackendAvailable("No route was decided for this request (is `route` in the pipeline?)")
            target = ex.target = ex.decision.candidates[0]
        if ex.egress is not None:  # redaction: which body this backend may receive
            ex.egress(ex, target)
        if ex.gate is not None:  # a stage's per-attempt hook (the budget's reservation: middleware/budget.py)
            return ex.gate(ex, target, self.send)
        return self.send(ex, target)

    def send(self, ex: Exchange, target: Candidate) -> Awaitable[Reply]:
        if ex.dry_run:
            return _ready(Reply(200, {"Content-Type": JSON}, body=orjson.dumps(describe(ex))))
        if ex.trace is not None:
            return self.observer.tracer.attempt(ex, target)
        return target.backend.call(ex, target, ex.first_token_s)


async def _ready(reply: Reply) -> Reply:
    return reply


# ---------------------------------------------------------------- handlers


def _decision_headers(ex: Exchange, overhead_ms: float, h: dict[str, str] | None = None) -> dict[str, str]:
    """The answer's x-request-id, x-router-* and stages' headers, set into `h` (a copy of the reply's headers:
    the same dict `{**h, **these}` would give, without making these apart first) or a new dict."""
    ex.overhead_s = overhead_ms / 1000
    if h is None:
        h = {}
    h[H_REQUEST_ID] = ex.request_id
    h[H_OVERHEAD] = f"{overhead_ms:.3f}"
    t = ex.target
    if t is not None:
        h[H_MODEL] = t.model.id
        h[H_BACKEND] = t.model.backend
        h[H_TIER] = t.tier or ("embedding" if t.model.type == "embedding" else "")
    f = ex.features
    if f is None and ex.endpoint == "embeddings":
        h[H_TASK] = "embedding"
    if f is not None:
        h[H_TASK] = f.task
        h[H_COMPLEXITY] = f.complexity
        h[H_DIFFICULTY] = "%.3f" % f.difficulty  # noqa: UP031 (faster than f"")
    h[H_ATTEMPTS] = str(len(ex.attempts) or 1)
    if ex.spilled is not None:
        h[H_SPILLED] = ex.spilled
    if ex.queue_s:
        h[H_QUEUE] = f"{ex.queue_s * 1000:.1f}"
    if ex.reply_headers is not None:  # the stages' (Exchange.reply_headers)
        h.update(ex.reply_headers)
    return h


def _error_response(e: ProxyError, request_id: str, endpoint: str = "chat") -> web.Response:
    headers = {H_REQUEST_ID: request_id, **e.headers}
    if e.status == 429 and "Retry-After" not in headers:
        headers["Retry-After"] = "1"
    return web.Response(status=e.status, body=wire_errors.render(endpoint, e), content_type=JSON, headers=headers)


class RequestIds:
    """Request ids for clients that send none: a random per-process prefix and a counter (no syscall)."""

    __slots__ = ("_next", "_prefix")

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._next = itertools.count(1).__next__

    def __call__(self) -> str:
        return f"{self._prefix}{self._next():x}"


class Handlers:
    """The endpoints; the live service is looked up per request so a reload can swap it."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.new_id = RequestIds()

    def request_id(self, request: web.Request) -> str:
        """The client's `x-request-id` if it is 1-128 visible ASCII characters, else a new one."""
        return client_request_id(request.headers) or self.new_id()

    @property
    def service(self) -> RouterService:
        return self.app[SERVICE_KEY]  # type: ignore[return-value]

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type=JSON)

    async def readyz(self, request: web.Request) -> web.Response:
        svc = self.service
        return readiness(svc, detail=svc.admin.is_admin(request.headers))  # names are for the operator only

    async def models(self, request: web.Request) -> web.Response:
        try:
            await self.service.keys.identify(request.headers)
        except ProxyError as e:
            return _error_response(e, request.headers.get("x-request-id") or self.new_id())
        if messages_api.ANTHROPIC_VERSION in request.headers:  # an Anthropic SDK: its own list shape
            return web.Response(body=messages_api.anthropic_models(self.service.catalog.models_json(), request.query),
                                content_type=JSON)
        return web.Response(body=self.service.models_body, content_type=JSON)

    async def model(self, request: web.Request) -> web.Response:
        try:
            await self.service.keys.identify(request.headers)
        except ProxyError as e:
            return _error_response(e, request.headers.get("x-request-id") or self.new_id())
        model_id = request.match_info["model_id"]
        m = self.service.catalog.model_json(model_id)
        anthropic = messages_api.ANTHROPIC_VERSION in request.headers
        if m is None:
            e = ModelNotFound(f"The model '{echo(model_id)}' does not exist", param="model")
            return _error_response(e, self.request_id(request), "messages" if anthropic else "chat")
        return web.Response(body=messages_api.anthropic_model(m) if anthropic else orjson.dumps(m), content_type=JSON)

    async def not_found(self, request: web.Request) -> web.Response:
        rid = self.request_id(request)
        if request.path in ENDPOINTS or request.path in ("/v1/route", "/v1/feedback"):
            e: ProxyError = InvalidRequest(f"Method {request.method} is not allowed on {request.path}; use POST.")
            e.status = 405
            return _error_response(e, rid)
        return _error_response(NotFound(f"Unknown path: {echo(request.method)} {echo(request.path, 256)}"), rid)

    async def _read_json(self, request: web.Request, svc: RouterService) -> tuple[bytes, Any]:
        """The body's bytes and their parse (the callers `check` it: no coroutine more per request)."""
        cl = request.content_length
        if cl is not None and cl > svc.max_body:
            raise RequestTooLarge(f"Request body of {cl} bytes exceeds the limit of {svc.max_body} bytes.")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise RequestTooLarge(f"Request body exceeds the limit of {svc.max_body} bytes.") from None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidRequest(
                "We could not parse the JSON body of your request. The body must be valid JSON.",
                code="invalid_json",
            ) from None
        return raw, body

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        svc = self.service
        endpoint = ENDPOINTS[request.path]
        rid = self.request_id(request)
        ex: Exchange | None = None
        try:
            raw, parsed = await self._read_json(request, svc)
            ex = Exchange(rid, endpoint, check(endpoint, parsed, raw), raw, request.headers)
            svc.observer.begin(ex, request.headers)
            reply = await svc.pipeline(ex)
        except ProxyError as e:
            resp = _error_response(e, rid, endpoint)
            if ex is not None:
                ex.status = e.status
                overhead = (time.perf_counter() - ex.started - ex.upstream_s) * 1000
                resp.headers.update(_decision_headers(ex, overhead))
                _finish(ex)
                svc.observer.finish(ex, e.code)
            else:
                svc.observer.rejected(endpoint, e.status, e.code)
            return resp
        except Exception:
            return self._internal_error(svc, ex, rid, endpoint)
        if reply.stream is not None:
            return await self._pump(request, svc, ex, reply)
        overhead = (time.perf_counter() - ex.started - ex.upstream_s) * 1000
        headers = _decision_headers(ex, overhead, dict(reply.headers))
        if ex.cost_usd is not None:
            headers[H_COST] = f"{ex.cost_usd:.8f}"
        ex.status = reply.status
        _finish(ex)
        svc.observer.finish(ex)
        return web.Response(status=reply.status, body=reply.body, headers=headers)

    @staticmethod
    def _internal_error(svc: RouterService, ex: Exchange | None, rid: str, endpoint: str = "chat") -> web.Response:
        """A bug: the traceback goes to the operator's log (never the body), the client gets an OpenAI-shaped
        500 with its request id, and the request still gets its access-log line."""
        log.exception("request %s failed unexpectedly", rid)
        resp = _error_response(InternalError("The router failed to handle this request."), rid, endpoint)
        try:
            if ex is not None:
                ex.status = 500
                svc.observer.finish(ex, "internal_error")
            else:
                svc.observer.rejected(endpoint, 500, "internal_error")
        except Exception:
            log.exception("request %s: observing it failed", rid)
        return resp

    async def _pump(self, request: web.Request, svc: RouterService, ex: Exchange, reply: Reply) -> web.StreamResponse:
        """Relay the stream once, chunk by chunk; close the upstream when the client goes away."""
        stream = reply.stream
        assert stream is not None
        now = time.perf_counter()
        ex.ttft_s = now - ex.started  # the first event is in hand (the backend read it before returning)
        overhead = (now - ex.started - ex.upstream_s) * 1000
        resp = web.StreamResponse(status=reply.status, headers=_decision_headers(ex, overhead, dict(reply.headers)))
        ex.status = reply.status
        error: str | None = None
        client_gone = False
        try:
            await resp.prepare(request)
            async for chunk in stream:
                await resp.write(chunk)
        except UpstreamFailure as e:  # mid-stream: headers are sent, so the error goes in-band
            error = e.code
            client_gone = not await _write_quietly(resp, wire_errors.render_stream(ex.endpoint, e))
        except (ConnectionResetError, ClientConnectionResetError, asyncio.CancelledError):
            error = "client_closed"
            client_gone = True
            raise
        except Exception:
            log.exception("request %s: stream relay failed", ex.request_id)
            error = "internal_error"
            client_gone = not await _write_quietly(
                resp, wire_errors.render_stream(ex.endpoint, InternalError("stream relay failed")))
        finally:
            await stream.aclose()  # after a complete stream a no-op; otherwise the upstream sees us leave
            _close_stream(svc, ex, stream, error)
        if not client_gone:
            await _write_quietly(resp, None)
        return resp

    async def route_preview(self, request: web.Request) -> web.Response:
        svc = self.service
        rid = self.request_id(request)
        try:
            raw, parsed = await self._read_json(request, svc)
            endpoint = messages_api.preview_endpoint(parsed, request.query.get("endpoint"), svc.catalog)
            ex = Exchange(rid, endpoint, check(endpoint, parsed, raw), raw, request.headers)
            ex.dry_run = True
            reply = await svc.pipeline(ex)
        except ProxyError as e:
            return _error_response(e, rid)
        except Exception:
            return self._internal_error(svc, None, rid)
        return web.Response(status=reply.status, body=reply.body, content_type=JSON, headers={H_REQUEST_ID: rid})

    async def count_tokens(self, request: web.Request) -> web.Response:
        """`POST /v1/messages/count_tokens`, answered locally after the stages a real call passes (auth …)."""
        svc = self.service
        rid = self.request_id(request)
        try:
            raw, parsed = await self._read_json(request, svc)
            ex = Exchange(rid, "messages", check("count_tokens", parsed, raw), raw, request.headers)
            ex.dry_run = True
            await svc.pipeline(ex)
        except ProxyError as e:
            return _error_response(e, rid, "messages")
        return web.Response(body=messages_api.count_tokens_body(ex, svc.config.routing.encoding), content_type=JSON,
                            headers={H_REQUEST_ID: rid})


async def _write_quietly(resp: web.StreamResponse, data: bytes | None) -> bool:
    """Write (or end, with None) a stream whose client may have left; False if it has."""
    try:
        await (resp.write(data) if data is not None else resp.write_eof())
    except (ConnectionResetError, ClientConnectionResetError):
        return False
    return True


def _close_stream(svc: RouterService, ex: Exchange, stream: Any, error: str | None) -> None:
    ex.usage = getattr(stream, "usage", None) or ex.usage
    ex.truncated = getattr(stream, "truncated", False) or ex.truncated
    if ex.usage is not None and ex.target is not None:
        ex.cost_usd = cost_usd(ex.target.model, ex.usage)
    _finish(ex)
    svc.observer.finish(ex, error)


def _finish(ex: Exchange) -> None:
    hooks = ex.finish_hooks
    for hook in hooks:
        try:
            hook(ex)
        except Exception:
            log.exception("finish hook %r failed for request %s", hook, ex.request_id)
    # The hooks and the gate are bound to per-request stage objects that refer back to the exchange (budget's
    # Spend): dropping them breaks that cycle, so reference counting frees the request now instead of the
    # cyclic collector later (thousands of garbage cycles per collection were the full pipeline's p99 tail).
    hooks.clear()
    ex.gate = None


def create_app(service: RouterService) -> web.Application:
    """The aiohttp application for one service; `on_startup` opens its pools, `on_cleanup` closes them."""
    app = web.Application(client_max_size=service.max_body + 1, handler_args={
        "max_field_size": 65536, "keepalive_timeout": service.config.server.keepalive_s})
    app[SERVICE_KEY] = service
    reloader = Reloader(app, SERVICE_KEY, service.config.server.shutdown_grace_s)
    app[RELOADER_KEY] = reloader
    h = Handlers(app)
    r = app.router
    r.add_get("/healthz", h.healthz)
    r.add_get("/readyz", h.readyz)
    r.add_get("/v1/models", h.models)
    r.add_get(r"/v1/models/{model_id:[\s\S]+}", h.model)  # [\s\S]: an id with a newline is an id, not a 404
    for path in ENDPOINTS:
        r.add_post(path, h.proxy)
    r.add_post("/v1/route", h.route_preview)
    r.add_post("/v1/messages/count_tokens", h.count_tokens)
    r.add_get("/admin/spend", SpendAPI(lambda req: req.app[SERVICE_KEY]).get)
    KeysAPI(lambda req: req.app[SERVICE_KEY]).add_routes(r)
    r.add_post("/admin/reload", reloader.handle)
    r.add_post("/v1/feedback", FeedbackEndpoint(lambda: app[SERVICE_KEY]).handle)  # type: ignore[arg-type]
    add_observe_routes(app, lambda: app[SERVICE_KEY])  # /metrics, /dashboard, /dashboard/stats
    r.add_route("*", r"/{tail:[\s\S]*}", h.not_found)  # any path (newlines too) gets the JSON 404

    async def _start(app: web.Application) -> None:
        await app[SERVICE_KEY].start()  # type: ignore[attr-defined]

    async def _stop(app: web.Application) -> None:
        await app[RELOADER_KEY].aclose()
        await app[SERVICE_KEY].aclose()  # type: ignore[attr-defined]

    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app


# ---------------------------------------------------------------- serving


def bind_socket(host: str, port: int, reuse_port: bool, listen: bool = True) -> socket.socket:
    """A bound (by default listening) socket; with reuse_port, several workers bind the same port and the
    kernel balances connections among those that listen."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise OSError(e.errno, f"cannot listen on {where}: Address already in use "
                                   "(another process holds the port)") from None
        raise
    if listen:
        sock.listen(2048)
        sock.setblocking(False)
    return sock


async def serve(
    config: Config,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    stop: asyncio.Event | None = None,
    ready: Any = None,
    service: RouterService | None = None,
) -> None:
    """Serve until `stop` is set (or SIGTERM/SIGINT), then drain in-flight requests and close."""
    service = service or RouterService(config)
    app = create_app(service)
    runner = GuardedRunner(
        app, handle_signals=False, access_log=None, handler_cancellation=True,
        shutdown_timeout=config.server.shutdown_grace_s,
        head_timeout=config.server.request_head_timeout_s, write_timeout=config.server.write_timeout_s,
    )
    await runner.setup()
    gc.collect()
    gc.freeze()  # config, catalog, classifier tables: never scanned again by the cyclic collector
    # Requests free their objects by reference counting; the cyclic collector only rescans the in-flight
    # ones, so running it 30x less often (every 20k allocations, not 700) cuts its cost 30x.
    gc.set_threshold(20_000, 50, 100)
    sock = bind_socket(host, port, reuse_port)
    site = web.SockSite(runner, sock)
    await site.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests)
            pass
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, app[RELOADER_KEY].on_sighup)  # hot reload (router/reload.py)
        release_reloads()  # a SIGHUP held while this worker started reloads it now
    log.info("ai-router listening on http://%s:%d (%d backends, pipeline: %s)",
             host, sock.getsockname()[1], len(service.backends),
             ", ".join(s.name for s in service.pipeline.active) or "-")
    if (open_warning := service.keys.exposure(host)) is not None:
        log.warning("%s", open_warning)
    if ready is not None:
        ready(sock.getsockname()[1])
    await stop.wait()
    app[SERVICE_KEY].draining = True  # type: ignore[attr-defined]  # /readyz 503 (the live service, after reloads)
    log.info("draining: no new connections, waiting up to %gs for in-flight requests",
             config.server.shutdown_grace_s)
    await runner.cleanup()
    log.info("stopped")


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_worker(config: Config, host: str, port: int, reuse_port: bool = False) -> None:
    install_uvloop()
    asyncio.run(serve(config, host, port, reuse_port=reuse_port))
