"""Backend for the OpenAI wire format: OpenAI itself, vLLM, llama.cpp server, Ollama's /v1, LM Studio.

The last step of the request's journey before the network. It
- rewrites the body once (upstream model id, the model's `params`, `stream_options.include_usage` on
  streams so cost can be computed) or sends the client's bytes untouched when nothing changes;
- sends only its own headers: the backend key from `api_key_env`, never the client's Authorization,
  no hop-by-hop headers;
- applies the four timeouts (connect, first byte, idle between chunks, total) and maps every
  aiohttp/provider failure into router.errors, so `retry` can promote;
- hands back JSON bodies whole, and streams as raw chunks with the first one already read (the point
  where promotion is still possible), dropping the injected usage-only chunk when the client did not
  ask for it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from yarl import URL

from backends.base import Backend
from router import __version__
from router.config import BackendSpec, ModelSpec
from router.cost import cost_usd
from router.errors import (
    InvalidRequest,
    UpstreamError,
    UpstreamFailure,
    UpstreamOverloaded,
    UpstreamTimeout,
)
from router.exchange import Candidate, Exchange, Reply
from router.sse import UsageStripper, find_usage

log = logging.getLogger("ai_router.backend")

PATHS = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
    "responses": "/responses",
}
STREAM_USAGE_ENDPOINTS = ("chat", "completions")
JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MAX_ERROR_BODY = 65536


class OpenAIBackend(Backend):
    kind = "openai"

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        self.session: aiohttp.ClientSession | None = None
        self.urls = {ep: URL(spec.base_url + path) for ep, path in PATHS.items()}
        self.api_key: str | None = None
        self.headers: dict[str, str] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    # ------------------------------------------------------------ lifecycle

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def start(self) -> None:
        spec = self.spec
        if spec.api_key_env:
            self.api_key = os.environ.get(spec.api_key_env) or None
            if not self.api_key:
                log.warning("backend %s: $%s is not set; its calls will fail", spec.name, spec.api_key_env)
        # Sent on every call as the session's defaults (one C-level copy per request, no per-request dict);
        # giving User-Agent, Accept and Accept-Encoding ourselves leaves aiohttp no auto headers to add.
        self.headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "Accept-Encoding": "identity",
            "User-Agent": f"ai-router/{__version__}",
            **self.auth_headers(),
            **spec.headers,
        }
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=spec.max_concurrency, limit_per_host=0, keepalive_timeout=60, ttl_dns_cache=300
            ),
            timeout=self.timeout_for(spec.timeouts.first_byte_s),
            headers=self.headers,
            auto_decompress=False,
        )

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    # ------------------------------------------------------------ the call

    def url_for(self, ex: Exchange, model: ModelSpec) -> URL:
        url = self.urls.get(ex.endpoint)
        if url is None:
            raise InvalidRequest(f"backend {self.name!r} does not serve {ex.endpoint} requests", param="model")
        return url

    def payload(self, ex: Exchange, model: ModelSpec) -> tuple[bytes, bool]:
        """The bytes to send, and whether the router injected stream usage (so must strip it)."""
        body = ex.body
        changes: dict[str, Any] = {}
        if body.get("model") != model.id:
            changes["model"] = model.id
        for k, v in model.params.items():
            if k not in body:
                changes[k] = v
        strip = False
        if ex.stream and ex.endpoint in STREAM_USAGE_ENDPOINTS:
            so = body.get("stream_options")
            if isinstance(so, dict) and so.get("include_usage") is True:
                ex.include_usage = True
            else:
                changes["stream_options"] = {**(so if isinstance(so, dict) else {}), "include_usage": True}
                strip = True
        if not changes and ex.raw is not None:
            return ex.raw, strip
        return orjson.dumps({**body, **changes} if changes else body), strip

    def timeout_for(self, first_byte_s: float) -> aiohttp.ClientTimeout:
        """One aiohttp timeout per first-byte limit, made once: `sock_read` is the first-byte limit until the
        first chunk arrives (streams then switch it to `idle_s`), `total` caps the whole call."""
        t = self._timeouts.get(first_byte_s)
        if t is None:
            s = self.spec.timeouts
            t = self._timeouts[first_byte_s] = aiohttp.ClientTimeout(
                total=s.total_s, connect=s.connect_s, sock_connect=s.connect_s, sock_read=first_byte_s
            )
        return t

    async def send(self, ex: Exchange, target: Candidate, first_byte_s: float | None = None) -> Reply:
        session = self.session
        if session is None:
            raise UpstreamError(f"backend {self.name!r} is not started")
        if self.spec.api_key_env and not self.api_key:
            raise UpstreamError(f"backend {self.name!r} has no API key (${self.spec.api_key_env} is not set)")
        url = self.url_for(ex, target.model)
        data, strip = self.payload(ex, target.model)
        headers = {"X-Request-Id": ex.request_id}
        limit = first_byte_s if first_byte_s is not None else self.spec.timeouts.first_byte_s
        t0 = time.perf_counter()
        resp: aiohttp.ClientResponse | None = None
        try:
            resp = await session.post(url, data=data, headers=headers, timeout=self.timeout_for(limit))
            if resp.status >= 400:
                return await self._error_reply(resp, ex, t0)
            if ex.stream and resp.content_type == "text/event-stream":
                first = await resp.content.readany()
                if not first:
                    raise UpstreamError(f"upstream {self.name!r} closed the stream before any event")
                conn = resp.connection
                if conn is not None and conn.protocol is not None:
                    conn.protocol.read_timeout = self.spec.timeouts.idle_s
                elapsed = time.perf_counter() - t0
                ex.upstream_s += elapsed
                self.record_success(elapsed * 1000)
                return Reply(200, SSE_HEADERS, stream=OpenAIStream(self, resp, first, strip))
            body = await resp.read()
        except TimeoutError as e:
            self._abort(resp)
            self.record_failure()
            raise self._timeout_error(e, ex, limit, first_byte_s is not None) from None
        except aiohttp.ClientError as e:
            self._abort(resp)
            self.record_failure()
            raise UpstreamError(f"upstream {self.name!r} failed: {_describe(e)}") from None
        except BaseException:
            self._abort(resp)
            raise
        elapsed = time.perf_counter() - t0
        ex.upstream_s += elapsed
        self.record_success(elapsed * 1000)
        usage = ex.usage = find_usage(body)
        if usage is not None:
            ex.cost_usd = cost_usd(target.model, usage)
        return Reply(resp.status, JSON_HEADERS, body=body)

    def _timeout_error(self, e: TimeoutError, ex: Exchange, limit: float, promoting: bool) -> UpstreamTimeout:
        t = self.spec.timeouts
        if isinstance(e, aiohttp.ConnectionTimeoutError):
            return UpstreamTimeout(f"upstream {self.name!r}: no connection within {t.connect_s:g}s")
        if isinstance(e, aiohttp.ServerTimeoutError):  # the first-byte limit (sock_read until the first chunk)
            what = "first token" if ex.stream else "answer"
            return UpstreamTimeout(f"upstream {self.name!r} sent no {what} within {limit:g}s",
                                   reason="slow_first_token" if promoting else "timeout")
        return UpstreamTimeout(f"upstream {self.name!r} did not finish within {t.total_s:g}s")

    @staticmethod
    def _abort(resp: aiohttp.ClientResponse | None) -> None:
        if resp is not None:
            resp.close()

    async def _error_reply(self, resp: aiohttp.ClientResponse, ex: Exchange, t0: float) -> Reply:
        """Map an upstream error status: overload/5xx/credential problems raise; client errors pass through."""
        try:
            body = await resp.content.read(MAX_ERROR_BODY)
        finally:
            resp.release()
        ex.upstream_s += time.perf_counter() - t0
        status = resp.status
        detail = _error_message(body)
        if status in (429, 503, 529):
            if status != 429:  # a 429 is about our rate, not the server's health
                self.record_failure()
            retry_after = resp.headers.get("Retry-After")
            raise UpstreamOverloaded(
                f"upstream {self.name!r} is overloaded ({status}){': ' + detail if detail else ''}",
                headers={"Retry-After": retry_after} if retry_after else None,
            )
        if status >= 500 or status in (401, 403, 404, 405):
            if status >= 500:
                self.record_failure()
            what = "rejected the router's credentials" if status in (401, 403) else "failed"
            raise UpstreamError(f"upstream {self.name!r} {what} ({status}){': ' + detail if detail else ''}")
        return Reply(status, JSON_HEADERS, body=body if body.startswith(b"{") else _wrap_error(status, detail))


class OpenAIStream:
    """The upstream's SSE body, relayed chunk by chunk; `usage` is set once it has ended."""

    __slots__ = ("backend", "first", "resp", "strip", "usage")

    def __init__(self, backend: Backend, resp: aiohttp.ClientResponse, first: bytes, strip: bool) -> None:
        self.backend = backend
        self.resp = resp
        self.first = first
        self.strip = strip
        self.usage: dict[str, Any] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._relay()

    async def _relay(self) -> AsyncIterator[bytes]:
        content = self.resp.content
        chunk = self.first
        stripper = UsageStripper() if self.strip else None
        t1 = t2 = b""
        try:
            while chunk:
                if stripper is None:
                    t2, t1 = t1, chunk
                    yield chunk
                else:
                    out = stripper.feed(chunk)
                    if out:
                        yield out
                chunk = await content.readany()
        except TimeoutError:
            raise UpstreamTimeout(f"upstream {self.backend.name!r} stalled mid-stream") from None
        except aiohttp.ClientError as e:
            raise UpstreamError(f"upstream {self.backend.name!r} broke the stream: {_describe(e)}") from None
        if stripper is not None:
            rest = stripper.flush()
            if rest:
                yield rest
            self.usage = stripper.usage
        else:
            self.usage = find_usage(t2 + t1)

    async def aclose(self) -> None:
        """Stop early (client gone, error): close, not release, so the upstream sees the cancellation."""
        self.resp.close()


def _describe(e: BaseException) -> str:
    if isinstance(e, aiohttp.ClientConnectorError):
        return f"cannot connect to {e.host}:{e.port}"
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    return type(e).__name__ + (f": {e}" if str(e) else "")


def _error_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip()
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or "")[:500]
    if isinstance(err, str):
        return err[:500]
    return ""


def _wrap_error(status: int, message: str) -> bytes:
    return orjson.dumps(
        {"error": {"message": message or f"upstream error {status}", "type": "invalid_request_error",
                   "param": None, "code": str(status)}}
    )


class AzureBackend(OpenAIBackend):
    """Azure OpenAI: deployments under base_url, `api-key` header, `api-version` query parameter."""

    kind = "azure"

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        self.api_version = spec.api_version or "2024-10-21"

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.api_key} if self.api_key else {}

    def url_for(self, ex: Exchange, model: ModelSpec) -> URL:
        path = PATHS.get(ex.endpoint)
        if path is None:
            raise InvalidRequest(f"backend {self.name!r} does not serve {ex.endpoint} requests", param="model")
        return URL(f"{self.spec.base_url}/deployments/{model.id}{path}").with_query(
            {"api-version": self.api_version}
        )


__all__ = ["AzureBackend", "OpenAIBackend", "OpenAIStream", "UpstreamFailure"]
