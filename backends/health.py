"""Active health checks: a background probe per backend, every `health.interval_s`.

Each probe is one GET with the backend's own credentials, bounded by `health.timeout_s`:
- OpenAI-compatible servers (OpenAI, vLLM, llama.cpp, LM Studio, Azure): `GET {base_url}/models`;
- Ollama: `GET /api/tags` at the server's root (its list of pulled models). A backend is taken for
  Ollama when `health.probe: ollama`, or with `probe: auto` (the default) when its base_url uses
  Ollama's port 11434 or a host name containing "ollama", or when `GET /` at its root answers
  "Ollama is running" (asked once, on the first probe).
The outcome: a failure (no connection, timeout, 5xx, credentials rejected) marks the backend not ready
until a probe passes (`Backend.probe_error`); the circuit breaker is left to requests (a server can
list its models and still fail every completion). With `health.check_models` (default: on for `location:
local` backends, where a model may never have been pulled; cloud lists carry aliases and regional
gaps, and a 404 at call time still marks a missing model) every configured model the answer does not
list is marked unavailable (and logged by name) until a probe lists it.
`probe: off` disables checks; the probes never block start-up. Probes use aiohttp's client (they are
rare; the hot path uses backends/http1.py), honouring HTTPS_PROXY/NO_PROXY.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from backends.base import Backend

log = logging.getLogger("ai_router.health")

OLLAMA_PORT = 11434
OLLAMA_BANNER = b"Ollama is running"
MAX_PROBE_BODY = 4 << 20
FOREVER = float("inf")


def origin(base_url: str) -> str:
    u = urlsplit(base_url)
    return f"{u.scheme}://{u.netloc}"


def ollama_by_name(base_url: str) -> bool:
    u = urlsplit(base_url)
    return u.port == OLLAMA_PORT or "ollama" in (u.hostname or "")


def ollama_models(body: Any) -> set[str] | None:
    """Model names in Ollama's `/api/tags` answer; `qwen3` and `qwen3:latest` both count."""
    models = body.get("models") if isinstance(body, dict) else None
    if not isinstance(models, list):
        return None
    out: set[str] = set()
    for m in models:
        if isinstance(m, dict):
            for k in ("name", "model"):
                v = m.get(k)
                if isinstance(v, str):
                    out.add(v)
                    if v.endswith(":latest"):
                        out.add(v.removesuffix(":latest"))
    return out


class HealthChecker:
    """Probes every backend whose `health.probe` is not `off`, each in its own background task."""

    def __init__(self, backends: Iterable[Backend]) -> None:
        self.backends = [b for b in backends if b.spec.health.probe != "off"]
        self.flavor: dict[str, str] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if not self.backends:
            return
        self.session = aiohttp.ClientSession(trust_env=True, auto_decompress=True)
        for b in self.backends:
            self.tasks.append(asyncio.create_task(self._loop(b), name=f"health:{b.name}"))

    async def aclose(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self.tasks.clear()
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def _loop(self, b: Backend) -> None:
        while True:
            if not b.key_missing:  # a backend without its key is not ready anyway: nothing to learn
                try:
                    await self.check(b)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug in a probe must not end the checks
                    log.exception("backend %s: health check failed unexpectedly", b.name)
            await asyncio.sleep(b.spec.health.interval_s)

    async def check(self, b: Backend) -> None:
        """One probe of `b`; updates its readiness and model availability."""
        h = b.spec.health
        try:
            async with asyncio.timeout(h.timeout_s):
                flavor = await self._flavor(b)
                if flavor == "ollama":
                    url = origin(b.spec.base_url) + "/api/tags"
                    status, body = await self._get(url, b.probe_headers())
                else:
                    url = b.spec.base_url + b.probe_path()
                    status, body = await self._get(url, b.probe_headers())
        except TimeoutError:
            self._failed(b, f"no answer within {h.timeout_s:g}s")
            return
        except aiohttp.ClientConnectorError as e:
            self._failed(b, f"cannot connect to {e.host}:{e.port} ({e.os_error.strerror or e.os_error})")
            return
        except (aiohttp.ClientError, OSError) as e:
            self._failed(b, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
            return
        if status in (401, 403):
            self._failed(b, f"credentials rejected ({status})")
            return
        if status >= 500 or status == 429:
            self._failed(b, f"status {status}")
            return
        self._passed(b)
        check = h.check_models if h.check_models is not None else b.spec.location == "local"
        if status != 200 or not check:
            return  # reachable, but no model list (a server without /models): nothing more to check
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        listed = ollama_models(data) if flavor == "ollama" else b.probe_models(data)
        if listed is None:
            return
        for m in b.spec.models:  # an alias (claude-sonnet-4-5) counts when a dated version is listed
            if m.id in listed or any(x.startswith(m.id + "-") for x in listed):
                b.mark_present(m.id)
            else:
                b.mark_missing(m.id, f"not listed by {url.rsplit('/', 1)[-1]}", FOREVER)

    async def _flavor(self, b: Backend) -> str:
        f = self.flavor.get(b.name)
        if f is not None:
            return f
        probe = b.spec.health.probe
        if probe in ("openai", "ollama"):
            f = probe
        elif b.kind != "openai":
            f = "openai"
        elif ollama_by_name(b.spec.base_url):
            f = "ollama"
        else:
            status, body = await self._get(origin(b.spec.base_url) + "/", {})
            f = "ollama" if status == 200 and body.startswith(OLLAMA_BANNER) else "openai"
        if f == "ollama":
            log.info("backend %s: Ollama detected, health checks use /api/tags", b.name)
        self.flavor[b.name] = f
        return f

    async def _get(self, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        assert self.session is not None
        async with self.session.get(url, headers=headers, allow_redirects=False) as r:
            return r.status, await r.content.read(MAX_PROBE_BODY)

    @staticmethod
    def _failed(b: Backend, why: str) -> None:
        if b.probe_error != why:
            log.warning("backend %s: health check failed: %s", b.name, why)
        b.probe_error = why

    @staticmethod
    def _passed(b: Backend) -> None:
        if b.probe_error is not None:
            log.info("backend %s: health check passes again", b.name)
            b.probe_error = None
