"""Hot reload: SIGHUP or `POST /admin/reload` swaps the live service for one built from the config file.

    validate   the file is read, expanded and checked as at start-up, and a whole new service is built
               (backends, catalog, every stage): any error refuses the reload, with the reason logged and
               answered, and the old service keeps serving untouched;
    swap       one assignment: the handlers look the service up per request, so a request that started
               before keeps the config it started with, and every request after sees the new one;
    keep       backends whose config did not change are handed over as they are (their connection pools,
               slots, breakers and health); so is the state store when `state.url` did not change;
    retire     what the new service does not keep is closed once its in-flight requests are done (at
               most `server.shutdown_grace_s` later).

Settings read only at start (server host, port, workers and the listening socket's limits) need a
restart: a reload that changes them says so in the log. Under `--workers N` a reload asked of one worker
is passed to the supervisor, which passes SIGHUP to every worker (and keeps the new config for workers
it restarts). A worker holds SIGHUP from its fork until its loop takes it (`hold_reloads`, then
`release_reloads`): one that arrives while the worker is still building its service stays pending
and is delivered then, so a worker that was starting during a reload still reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import warnings
from typing import Any

import orjson
from aiohttp import web

from router.config import ConfigError, load
from router.errors import InvalidRequest, ProxyError

log = logging.getLogger("ai_router.reload")

POLL_S = 0.05
SUPERVISOR_ENV = "AI_ROUTER_SUPERVISOR_PID"  # set by router/workers.py for its workers
RESTART_ONLY = ("host", "port", "workers", "max_body_mb", "request_head_timeout_s", "keepalive_s", "write_timeout_s",
                "shutdown_grace_s")


def hold_reloads() -> None:
    """Keep SIGHUP pending (not lost, not acted on) until `release_reloads`: a starting worker calls it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})


def release_reloads() -> None:
    """Deliver a SIGHUP held since `hold_reloads` to the handler now in place (nothing if none came)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})


class ReloadRefused(InvalidRequest):
    code = "invalid_config"


class Reloader:
    """Reloads one app's service from `path`, one reload at a time."""

    def __init__(self, app: web.Application, key: web.AppKey[Any], grace_s: float) -> None:
        self.app = app
        self.key = key
        self.grace_s = grace_s
        self.lock = asyncio.Lock()
        self.retiring: set[asyncio.Task[None]] = set()
        self.reloads = 0  # successful reloads (a counter for metrics)

    async def reload(self) -> dict[str, Any]:
        """Validate, swap, retire; returns what changed. Raises `ReloadRefused` with the reason."""
        from router.server import RouterService  # the service module builds on this one's callers

        async with self.lock:
            old = self.app[self.key]
            path = old.config.source  # the file the running config came from
            if not path or path.startswith("<"):
                raise ReloadRefused("This router was not started from a config file: there is nothing to reload.")
            try:
                config = load(path)
                new = RouterService(config, previous=old)
            except ConfigError as e:
                log.error("reload refused, the running config stays: %s", e)
                raise ReloadRefused(f"reload refused: {e}") from None
            except Exception as e:  # a stage or backend that cannot be built: refuse, never crash
                log.exception("reload refused, the running config stays")
                raise ReloadRefused(f"reload refused: {type(e).__name__}: {e}") from None
            try:
                await new.start()
            except Exception as e:
                log.exception("reload refused: the new config could not start; the running config stays")
                await new.retire(old)
                raise ReloadRefused(f"reload refused: the new config could not start ({e})") from None
            with warnings.catch_warnings():  # aiohttp deprecates changing a started app's state; this is the
                warnings.simplefilter("ignore", DeprecationWarning)  # one key meant to change
                self.app[self.key] = new
            new.draining = old.draining
            old.successor = new
            kept = sorted(n for n, b in new.backends.items() if old.backends.get(n) is b)
            started = sorted(n for n in new.backends if n not in kept)
            retired = sorted(n for n, b in old.backends.items() if new.backends.get(n) is not b)
            task = asyncio.create_task(self._retire(old, new), name="reload:retire")
            self.retiring.add(task)
            task.add_done_callback(self.retiring.discard)
            self.reloads += 1
            restart = [k for k in RESTART_ONLY
                       if getattr(old.config.server, k, None) != getattr(config.server, k, None)]
            if restart:
                log.warning("reload: server.%s changed; that takes a restart (the running values stay)",
                            ", server.".join(restart))
            log.info("reloaded %s: backends kept %s, started %s, retired %s", path,
                     ", ".join(kept) or "-", ", ".join(started) or "-", ", ".join(retired) or "-")
            return {"status": "reloaded", "source": path,
                    "backends": {"kept": kept, "started": started, "retired": retired},
                    "restart_needed": [f"server.{k}" for k in restart]}

    async def _retire(self, old: Any, new: Any) -> None:
        """Close what the new service does not keep, once the old one's requests are done."""
        gone = [b for n, b in old.backends.items() if new.backends.get(n) is not b]
        for _ in range(max(1, int(self.grace_s / POLL_S))):  # counters, not events: poll until they are idle
            if not any(b.capacity.in_flight or b.capacity.queued for b in gone):
                break
            await asyncio.sleep(POLL_S)
        await old.retire(new)

    async def aclose(self) -> None:
        """At shutdown: finish retiring at once."""
        for t in list(self.retiring):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t

    # ------------------------------------------------------------ triggers

    def on_sighup(self) -> None:
        """SIGHUP: reload in the background; a refusal is logged (the old config keeps serving)."""
        task = asyncio.ensure_future(self._quiet())
        self.retiring.add(task)
        task.add_done_callback(self.retiring.discard)

    async def _quiet(self) -> None:
        with contextlib.suppress(ProxyError):
            await self.reload()

    async def handle(self, request: web.Request) -> web.Response:
        """`POST /admin/reload` (admin key): 200 with what changed, 400 `invalid_config` with the reason."""
        svc = self.app[self.key]
        rid = request.headers.get("x-request-id") or "reload"
        try:
            svc.admin.check(request.headers)
            result = await self.reload()
        except ProxyError as e:
            return web.Response(status=e.status, body=e.body(), content_type="application/json",
                                headers={"x-request-id": rid, **e.headers})
        supervisor = os.environ.get(SUPERVISOR_ENV)
        if supervisor and supervisor.isdigit() and int(supervisor) == os.getppid():
            os.kill(int(supervisor), signal.SIGHUP)  # every other worker reloads too
            result["workers"] = "all (through the supervisor)"
        return web.Response(body=orjson.dumps(result), content_type="application/json", headers={"x-request-id": rid})
