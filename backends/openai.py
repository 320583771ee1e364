"""Backend for the OpenAI wire format: OpenAI itself, vLLM, llama.cpp server, Ollama's /v1, LM Studio.

The last step of the request's journey before the network. It
- rewrites the body once (upstream model id, the model's `params`, `stream_options.include_usage` on
  streams so cost can be computed) or sends the client's bytes untouched when nothing changes;
- sends only its own headers: the backend key from `api_key_env`, never the client's Authorization,
  no hop-by-hop headers;
- talks HTTP/1.1 through backends/http1.py (a keep-alive pool per backend, one write per request),
  applies the four timeouts (connect, first byte, idle between chunks, total) and maps every
  transport/provider failure into router.errors, so `retry` can promote; what the client is told names
  the backend, never its address or TLS details, and upstream error text reaches it only with the
  backend's key (and anything shaped like a key) masked; operators get the detail in the log;
- hands back JSON bodies whole (a truncated one is a failure), and streams as raw chunks held back
  until the first content token or tool-call delta has arrived (role-only and empty chunks do not
  count; a byte search on the first chunks only), so a failure before it can still be promoted
  invisibly; it drops the injected usage-only chunk when the client did not ask for it;
- marks a model unavailable when the upstream answers 404 for it (`ModelUnavailable`), and feeds
  every outcome to the backend's circuit breaker.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from multidict import istr

from backends import egress, http1
from backends.base import Backend
from backends.encoding import IDENTITY, EncodingError, StreamDecoder, decode_body
from router import __version__
from router.config import BackendSpec, ConfigError, ModelSpec
from router.cost import local_usage, usage_cost, with_counted_output
from router.errors import (
    InvalidRequest,
    ModelUnavailable,
    UpstreamError,
    UpstreamFailure,
    UpstreamOverloaded,
    UpstreamTimeout,
    mask_secrets,
)
from router.exchange import Candidate, Exchange, Reply
from router.formats.bridge import StreamTranslator, Translation
from router.formats.errors import upstream_error_message
from router.sse import (
    HOLD_MAX_BYTES,
    EventTooLarge,
    UsageStripper,
    error_event,
    find_usage,
    has_content,
    is_sse,
    open_event_bytes,
    truncated,
)

log = logging.getLogger("ai_router.backend")

PATHS = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
    "responses": "/responses",
}
STREAM_USAGE_ENDPOINTS = ("chat", "completions")
# (istr names: the server's answer keeps them as they are, see H_REQUEST_ID in router/server.py)
JSON_HEADERS = {istr("Content-Type"): "application/json"}
SSE_HEADERS = {istr("Content-Type"): "text/event-stream", istr("Cache-Control"): "no-cache",
               istr("X-Accel-Buffering"): "no"}
MAX_ERROR_BODY = 65536
SEEN_MAX_BYTES = 16 << 20  # of a stream kept for local token counting (upstreams that send no usage)
PCHAR = "!$&'()*+,;=:@-._~"
_ABSENT = object()  # what a path segment may hold unescaped (RFC 3986)


class OpenAIBackend(Backend):
    kind = "openai"

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        self.client: http1.Client | None = None
        self.api_key: str | None = None
        self.headers: dict[str, str] = {}

    # ------------------------------------------------------------ lifecycle

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def start(self) -> None:
        spec = self.spec
        if spec.api_key_env:
            self.api_key = os.environ.get(spec.api_key_env) or None
            self.key_missing = not self.api_key
            if not self.api_key:
                log.warning("backend %s: $%s is not set; it is not ready", spec.name, spec.api_key_env)
        # Encoded once into every request's head; only Content-Length and X-Request-Id vary per request.
        self.headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "Accept-Encoding": "identity",
            "User-Agent": f"ai-router/{__version__}",
            **self.auth_headers(),
            **spec.headers,
        }
        t = spec.timeouts
        try:
            proxy = egress.proxy_for(spec.base_url, spec.proxy)
        except ValueError as e:
            where = f"backends[{spec.name}].proxy" if spec.proxy else "HTTPS_PROXY/HTTP_PROXY"
            raise ConfigError(f"{where}: {e}") from None
        self.client = http1.Client(spec.base_url, headers=self.headers, size=spec.max_concurrency,
                                   connect_s=t.connect_s, total_s=t.total_s,
                                   limits=http1.Limits(body_bytes=self.max_body_bytes), proxy=proxy,
                                   ca_file=spec.ca_file)
        if proxy is not None:
            log.info("backend %s: through the proxy %s", spec.name, proxy.where)

    def probe_headers(self) -> dict[str, str]:
        return self.auth_headers()

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    # ------------------------------------------------------------ the call

    def target_for(self, endpoint: str, model: ModelSpec) -> str:
        """The request target under base_url's path (`/chat/completions`)."""
        path = PATHS.get(endpoint)
        if path is None:
            raise InvalidRequest(f"backend {self.name!r} does not serve {endpoint} requests", param="model")
        return path

    def plan(self, ex: Exchange, model: ModelSpec) -> tuple[str, Translation | None]:
        """Where the request goes and, when this upstream does not speak the client's format, its translation.

        Chat, completions and embeddings go as they are; Responses too when the model has the `responses`
        capability, else they are translated to chat completions, like Anthropic Messages requests."""
        ep = ex.endpoint
        if ep in PATHS and (ep != "responses" or "responses" in model.capabilities):
            return self.target_for(ep, model), None
        if ep in ("responses", "messages"):
            field = "max_tokens" if self.spec.location == "local" else "max_completion_tokens"
            return self.target_for("chat", model), Translation(ep, "chat", ex.body, max_tokens_field=field)
        raise InvalidRequest(f"backend {self.name!r} does not serve {ep} requests", param="model")

    def request_head(self, client: http1.Client, target: str, ex: Exchange) -> bytes:
        """The request head for `target` (a subclass may add per-request headers)."""
        return client.head(target)

    def payload(self, ex: Exchange, model: ModelSpec, tr: Translation | None = None) -> tuple[bytes, bool]:
        """The bytes to send, and whether the router injected stream usage (so must strip it)."""
        if tr is not None:
            tr.model = model.id
            return orjson.dumps({**{k: v for k, v in model.params.items() if k not in tr.body},
                                 **tr.body, **model.force_params, "model": model.id}), False
        body = ex.body
        changes: dict[str, Any] = {}
        if body.get("model") != model.id:
            changes["model"] = model.id
        for k, v in model.params.items():  # `params` fill what the client left out …
            if k not in body:
                changes[k] = v
        for k, v in model.force_params.items():  # … `force_params` win over what it sent
            if body.get(k, _ABSENT) != v:
                changes[k] = v
        strip = False
        if ex.stream and ex.endpoint in STREAM_USAGE_ENDPOINTS:
            so = body.get("stream_options")
            if not (isinstance(so, dict) and so.get("include_usage") is True):  # the client didn't ask: inject, strip
                changes["stream_options"] = {**(so if isinstance(so, dict) else {}), "include_usage": True}
                strip = True
        if not changes and ex.raw is not None and _forwardable(ex.raw):
            return ex.raw, strip
        return orjson.dumps({**body, **changes} if changes else body), strip

    async def send(self, ex: Exchange, target: Candidate, first_token_s: float | None = None) -> Reply:
        """One upstream call. The timeouts (backends/http1.py enforces them, one timer per request):
        `first_byte_s` bounds the wait for the response's first byte (its head); from then on `idle_s`
        bounds every gap between data, the hold-back's wait for the first content token included, and
        `total_s` the whole call. `first_token_s` (set by `retry` from `promotion.first_token_ms` when a
        stream could still be promoted) is a deadline for the first content token counted from the request:
        data that is not content (a role-only or empty chunk) does not move it."""
        client = self.client
        if client is None:
            raise UpstreamError(f"backend {self.name!r} is not started")
        if self.spec.api_key_env and not self.api_key:
            raise UpstreamError(f"backend {self.name!r} has no API key (${self.spec.api_key_env} is not set)")
        path, tr = self.plan(ex, target.model)
        head = self.request_head(client, path, ex)
        data, strip = self.payload(ex, target.model, tr)
        timeouts = self.spec.timeouts
        limit = timeouts.first_byte_s if first_token_s is None else min(timeouts.first_byte_s, first_token_s)
        t0 = time.perf_counter()
        resp: http1.Response | None = None
        try:
            resp = await client.post(head, data, http1.encode_header_value(ex.request_id), limit, ex.stream,
                                     ex.upstream_headers)
            resp.read_gap(timeouts.idle_s)  # the first byte is in: from now on, gaps between data
            if resp.status >= 400:
                reply = await self._error_reply(resp, ex, target, t0)
                if tr is not None and reply.body is not None:
                    reply.body = tr.answer(reply.status, reply.body)
                return reply
            if ex.stream and resp.is_event_stream:
                if first_token_s is not None:
                    resp.content_within(first_token_s)
                first, done = await self._hold_back(resp)
                if first_token_s is not None:
                    resp.content_within(None)
                elapsed = time.perf_counter() - t0
                ex.upstream_s += elapsed
                if tr is not None:  # translated before returning: an error event in it can still be promoted
                    if resp.content_encoding not in IDENTITY:
                        raise EncodingError("a compressed stream, which the router does not translate")
                    stream: Any = TranslatedStream(self, resp, first, tr.stream(), ex)
                    stream.first = stream.translator.feed(first)
                else:
                    stream = self.native_stream(resp, first, strip, ex)
                stream.done = done
                self.record_success(elapsed * 1000)
                return Reply(200, SSE_HEADERS, stream=stream)
            body = decode_body(await resp.read(), resp.content_encoding, self.max_body_bytes)
        except TimeoutError as e:
            self._abort(resp)
            err = self._timeout_error(e, ex, limit, first_token_s, resp is not None)
            self.record_failure(err.reason)
            raise err from None
        except http1.HTTPClientError as e:
            self._abort(resp)
            self.record_failure("error")
            raise self.transport_error(e, ex) from None
        except EncodingError as e:
            self._abort(resp)
            self.record_failure("error")
            raise self.bad_body(e, ex) from None
        except BadStream as e:
            self._abort(resp)
            self.record_failure("error")
            raise UpstreamError(e.message) from None
        except BaseException:
            self._abort(resp)
            raise
        elapsed = time.perf_counter() - t0
        ex.upstream_s += elapsed
        if resp.status == 200 and not _whole_json(body):
            self.record_failure("error")
            raise UpstreamError(f"upstream {self.name!r} sent an incomplete JSON body ({len(body)} bytes)")
        self.record_success(elapsed * 1000)
        if tr is not None:
            body = tr.answer(resp.status, body)
            usage = ex.usage = tr.usage
        else:
            usage = ex.usage = find_usage(body)
        ex.truncated = truncated(body)
        if usage is not None:  # (the counts and cost are kept on the exchange for the stages and the observer)
            ex.cost_usd = usage_cost(ex, target.model)
        return Reply(resp.status, JSON_HEADERS, body=body)

    def native_stream(self, resp: http1.Response, first: bytes, strip: bool, ex: Exchange) -> Any:
        """The relay of a stream in the client's own format."""
        return OpenAIStream(self, resp, first, strip, ex)

    def _timeout_error(self, e: TimeoutError, ex: Exchange, limit: float, first_token_s: float | None,
                       started: bool) -> UpstreamTimeout:
        """Which limit ran out, in the client's words; `slow_first_token` (promotable) when it was the
        first-token deadline of a stream that could still be promoted."""
        t = self.spec.timeouts
        if isinstance(e, http1.ConnectTimeout):
            return UpstreamTimeout(f"upstream {self.name!r}: no connection within {t.connect_s:g}s")
        if isinstance(e, http1.ContentTimeout) or (
                isinstance(e, http1.ReadTimeout) and not started and first_token_s is not None
                and first_token_s <= t.first_byte_s):
            return UpstreamTimeout(f"upstream {self.name!r} sent no first token within {first_token_s:g}s",
                                   reason="slow_first_token")
        if isinstance(e, http1.ReadTimeout):
            if not started:
                what = "first byte" if ex.stream else "answer"
                return UpstreamTimeout(f"upstream {self.name!r} sent no {what} within {limit:g}s")
            what = "before its first token" if ex.stream else "mid-answer"
            return UpstreamTimeout(f"upstream {self.name!r} stalled {what} (no data for {t.idle_s:g}s)")
        return UpstreamTimeout(f"upstream {self.name!r} did not finish within {t.total_s:g}s")

    def transport_error(self, e: http1.HTTPClientError, ex: Exchange, mid_stream: bool = False) -> UpstreamError:
        """The client's view of a transport failure (the backend's name and what went wrong); the detail,
        which may hold addresses and TLS errors, goes to the operator's log."""
        log.warning("request %s: backend %s: %s%s", ex.request_id, self.name, _describe(e),
                    " (mid-stream)" if mid_stream else "")
        if isinstance(e, http1.ConnectError):
            what = "is unreachable"
        elif isinstance(e, http1.ResponseTooLarge):
            what = "sent a response over the router's limits"
        elif isinstance(e, http1.ServerDisconnected):
            what = "broke the stream" if mid_stream else "closed the connection before answering"
        elif isinstance(e, http1.ProtocolError):
            what = "sent an invalid HTTP response"
        else:
            what = "failed"
        return UpstreamError(f"upstream {self.name!r} {what}")

    def bad_body(self, e: Exception, ex: Exchange) -> UpstreamError:
        """An answer the router cannot relay (an SSE event over its bound, an encoding it cannot decode)."""
        log.warning("request %s: backend %s: %s", ex.request_id, self.name, e)
        return UpstreamError(f"upstream {self.name!r} sent an answer the router cannot relay ({e})")

    def stream_error(self, e: Exception, ex: Exchange) -> UpstreamFailure:
        """The client's view of a failure after a stream has started (sent in-band by the server)."""
        if isinstance(e, http1.TotalTimeout):
            return UpstreamTimeout(f"upstream {self.name!r} did not finish within {self.spec.timeouts.total_s:g}s")
        if isinstance(e, TimeoutError):
            return UpstreamTimeout(f"upstream {self.name!r} stalled mid-stream")
        if isinstance(e, http1.HTTPClientError):
            return self.transport_error(e, ex, mid_stream=True)
        return self.bad_body(e, ex)

    def mask(self, text: str) -> str:
        """Upstream text fit for a client: this backend's key and anything key-shaped masked."""
        return mask_secrets(text, (self.api_key,) if self.api_key else ())

    @staticmethod
    def _abort(resp: http1.Response | None) -> None:
        if resp is not None:
            resp.close()

    async def _hold_back(self, resp: http1.Response) -> tuple[bytes, bool]:
        """Read until the first content token or tool-call delta (or the end): (held bytes, stream done).

        Until then nothing reaches the client, so a failure (reset, stall, error event, junk) is still
        promotable. Gaps are bounded by `idle_s`, the whole wait by the first-token deadline when the
        caller set one (`Response.content_within`) and by `total_s`. A compressed stream
        (never asked for) is not inspected: its first chunk is enough."""
        first = await resp.chunk()
        if not first:
            raise BadStream(f"upstream {self.name!r} closed the stream before any event")
        if resp.content_encoding not in IDENTITY:
            return first, False
        if not is_sse(first):
            raise BadStream(f"upstream {self.name!r} sent a malformed event stream")
        if error_event(first):
            raise BadStream(f"upstream {self.name!r} sent an error event before any content: "
                            f"{self.mask(_event_error_message(first))}")
        if has_content(first):
            return first, False
        held = [first]
        size = len(first)
        tail = first[-96:]
        while size < HOLD_MAX_BYTES:
            chunk = await resp.chunk()
            if not chunk:
                return b"".join(held), True
            if b'{"error"' in chunk or b"event: error" in chunk:
                raise BadStream(f"upstream {self.name!r} sent an error event before any content: "
                                f"{self.mask(_event_error_message(chunk))}")
            held.append(chunk)
            size += len(chunk)
            if has_content(tail + chunk):
                break
            tail = chunk[-96:]
        return b"".join(held), False

    async def _error_reply(self, resp: http1.Response, ex: Exchange, target: Candidate, t0: float) -> Reply:
        """Map an upstream error status: overload/5xx/credential problems raise; client errors pass through."""
        body = await resp.read(MAX_ERROR_BODY)
        if resp.content_encoding not in IDENTITY:
            try:
                body = decode_body(body, resp.content_encoding, MAX_ERROR_BODY)
            except EncodingError:
                body = b""
        ex.upstream_s += time.perf_counter() - t0
        status = resp.status
        detail = self.mask(_error_message(body))
        if detail:
            log.info("request %s: backend %s answered %d: %s", ex.request_id, self.name, status, detail)
        if status in (429, 503, 529):
            if status != 429:  # a 429 is about our rate, not the server's health
                self.record_failure("overload")
            retry_after = resp.retry_after
            raise UpstreamOverloaded(
                f"upstream {self.name!r} is overloaded ({status}){': ' + detail if detail else ''}",
                headers={"Retry-After": retry_after.decode("latin-1")} if retry_after else None,
            )
        if status == 404:
            self.mark_missing(target.model.id, f"upstream 404: {detail or 'not found'}")
            raise ModelUnavailable(
                f"The model '{target.model.id}' is not available on backend '{self.name}' "
                f"(upstream 404{': ' + detail if detail else ''}).", param="model",
            )
        if status >= 500 or status in (401, 403, 405):
            if status >= 500:
                self.record_failure("error")
            what = "rejected the router's credentials" if status in (401, 403) else "failed"
            raise UpstreamError(f"upstream {self.name!r} {what} ({status}){': ' + detail if detail else ''}")
        if not body.startswith(b"{"):
            return Reply(status, JSON_HEADERS, body=_wrap_error(status, detail))
        text = body.decode("utf-8", "replace")
        masked = self.mask(text)
        return Reply(status, JSON_HEADERS, body=body if masked == text else masked.encode())


class BadStream(UpstreamError):
    """The stream went wrong before its first content (closed, junk, an error event): promotable."""


class OpenAIStream:
    """The upstream's SSE body, relayed chunk by chunk; `usage` is set once it has ended.

    `seen` keeps references to the relayed chunks (no copy) until the end: if the upstream sent no usage,
    the budget stage counts the completion from them (router/cost.py `local_usage`); otherwise it is dropped.
    A stream cut short (upstream failure mid-stream, client gone) is counted the same way at once, so the
    partial usage and cost are settled even without the budget stage."""

    __slots__ = ("backend", "decoder", "done", "ended", "ex", "first", "resp", "seen", "strip", "usage")

    def __init__(self, backend: OpenAIBackend, resp: http1.Response, first: bytes, strip: bool,
                 ex: Exchange) -> None:
        self.backend = backend
        self.ex = ex
        self.decoder = None if resp.content_encoding in IDENTITY else \
            StreamDecoder(resp.content_encoding, backend.max_body_bytes)  # a gzip stream the router did not ask for
        self.resp = resp
        self.first = first
        self.strip = strip
        self.usage: dict[str, Any] | None = None
        self.seen: list[bytes] | None = []
        self.done = False  # `first` is the whole stream (set by the backend after the hold-back)
        self.ended = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._relay()

    async def _relay(self) -> AsyncIterator[bytes]:
        resp = self.resp
        raw = self.first
        done = self.done
        stripper = UsageStripper() if self.strip else None
        decoder = self.decoder
        t1 = t2 = b""
        seen = self.seen.append  # type: ignore[union-attr]
        open_n = 0  # bytes of the SSE event still open (relayed untouched: only counted, against EventTooLarge)
        kept = 0  # bytes held in `seen`: at most SEEN_MAX_BYTES, so an endless stream costs no memory
        try:
            while raw:
                chunk = raw if decoder is None else decoder.feed(raw)
                if kept < SEEN_MAX_BYTES:
                    kept += len(chunk)
                    seen(chunk)
                if stripper is not None:
                    chunk = stripper.feed(chunk)
                elif chunk:
                    open_n = open_event_bytes(chunk, open_n)
                    t2, t1 = t1, chunk
                if chunk:
                    yield chunk
                if done:
                    break
                raw = await resp.chunk()
            if decoder is not None:
                decoder.finish()
        except (TimeoutError, http1.HTTPClientError, EventTooLarge, EncodingError) as e:
            resp.close()
            self.count_partial()
            error = self.backend.stream_error(e, self.ex)
            if open_n:  # the client holds half an event: end it, so the in-band error event stands alone
                yield b"\n" if t1.endswith(b"\n") else b"\n\n"
            raise error from None
        self.ended = True
        if stripper is not None:
            rest = stripper.flush()
            if rest:
                yield rest
            self.usage = stripper.usage
        else:
            self.usage = find_usage(t2 + t1)
        tail = self.seen[-3:]  # type: ignore[index]
        self.ex.truncated = truncated(b"".join(tail))  # the finish event sits just before usage and [DONE]
        if self.usage is not None:
            self.seen = None

    def count_partial(self) -> None:
        """The usage of a stream cut short: the prompt and what was relayed, counted by the router."""
        if self.usage is None and self.ex.target is not None:
            self.usage = local_usage(self.ex, None, self.seen)

    async def aclose(self) -> None:
        """Stop early (client gone, error): close the connection, never reuse it, so the upstream sees the
        cancellation. After a complete stream the connection is already back in the pool and this is a no-op."""
        if not self.ended:
            self.count_partial()
        self.resp.close()


class TranslatedStream:
    """An upstream stream in another wire format, translated event by event (router/formats/bridge.py).

    `first` is the translation of the upstream's first chunk (done before the reply is returned, so an
    error event in it is still promotable); `usage` is the upstream's own usage object. Like `OpenAIStream`
    it keeps references to the upstream's chunks (`seen`) until usage is known, so a stream cut short
    (upstream failure mid-stream, client gone) or one whose upstream reports no usage is still counted:
    the upstream's counts where it sent them (Anthropic's input and cache counts come first), the
    completion relayed so far counted by the router."""

    __slots__ = ("backend", "done", "ended", "ex", "first", "partial", "resp", "seen", "translator")

    def __init__(self, backend: OpenAIBackend, resp: http1.Response, first: bytes, translator: StreamTranslator,
                 ex: Exchange) -> None:
        self.backend = backend
        self.ex = ex
        self.resp = resp
        self.first = b""
        self.translator = translator
        self.done = False  # the hold-back read the whole upstream stream
        self.ended = False
        self.partial: dict[str, Any] | None = None  # the usage of a stream cut short
        self.seen: list[bytes] | None = [first]

    @property
    def usage(self) -> dict[str, Any] | None:
        return self.partial or self.translator.usage

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._relay()

    async def _relay(self) -> AsyncIterator[bytes]:
        resp = self.resp
        tr = self.translator
        seen = self.seen.append  # type: ignore[union-attr]
        kept = len(self.seen[0])  # type: ignore[index]
        if self.first:
            yield self.first
        try:
            while not self.done and (chunk := await resp.chunk()):
                if tr.done:
                    continue  # after the last event: read to the end, so the connection can be reused
                if kept < SEEN_MAX_BYTES:
                    kept += len(chunk)
                    seen(chunk)
                out = tr.feed(chunk)
                if out:
                    yield out
            rest = tr.close()
        except (TimeoutError, http1.HTTPClientError) as e:
            resp.close()
            self.count_partial()
            raise self.backend.stream_error(e, self.ex) from None
        except UpstreamFailure:
            resp.close()
            self.count_partial()
            raise
        self.ended = True
        if tr.usage is not None:
            self.seen = None
        if rest:
            yield rest

    def count_partial(self) -> None:
        """The usage of a stream cut short: what the upstream reported so far, its completion counted."""
        if self.partial is None and self.ex.target is not None:
            self.partial = with_counted_output(self.translator.usage, local_usage(self.ex, None, self.seen))

    async def aclose(self) -> None:
        if not self.ended:
            self.count_partial()
        self.resp.close()


def _forwardable(raw: bytes) -> bool:
    """May the client's bytes go upstream as they are? Not when a key the router acts on could appear twice
    (`{"model": "allowed", "model": "other"}`: the router read the last, an upstream may read the first), or
    spelled with escapes (`"mod\\u0065l"`) that hide a duplicate: then the parsed body is re-serialised, so
    what is forwarded is exactly what was authorised and routed."""
    # (find, not `in`: sse.truncated; a backslash first, by memchr: most bodies have none, and the two-byte
    # find is a pass at ~5 instructions a byte)
    return raw.count(b'"model"') <= 1 and raw.count(b'"stream"') <= 1 and (raw.find(b"\\") < 0 or raw.find(b"\\u") < 0)


def _describe(e: BaseException) -> str:
    if isinstance(e, http1.ConnectError | http1.ServerDisconnected | http1.ProtocolError):
        return str(e)
    return type(e).__name__ + (f": {e}" if str(e) else "")


def _whole_json(body: bytes) -> bool:
    """A complete JSON object or array, by its ends (a byte check: no parse on the hot path)."""
    b = body.strip()
    return len(b) >= 2 and (b[0], b[-1]) in ((0x7B, 0x7D), (0x5B, 0x5D))


def _event_error_message(buf: bytes) -> str:
    i = buf.find(b"{")
    j = buf.find(b"\n", i)
    return _error_message(buf[i : j if j > 0 else len(buf)]) if i >= 0 else ""


def _error_message(body: bytes) -> str:
    return upstream_error_message(body)[:500]


def _wrap_error(status: int, message: str) -> bytes:
    return orjson.dumps(
        {"error": {"message": message or f"upstream error {status}", "type": "invalid_request_error",
                   "param": None, "code": str(status)}}
    )


class AzureBackend(OpenAIBackend):
    """Azure OpenAI, as its REST reference documents it: `base_url` is `https://RESOURCE.openai.azure.com/openai`;
    chat, completions and embeddings go to `/deployments/{deployment}/…?api-version=…` (a model's `id` is its
    deployment name), Responses (models with `capabilities: [responses]`) to the v1 surface `/v1/responses`;
    the key goes in the `api-key` header."""

    kind = "azure"

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        self.api_version = spec.api_version or "2024-10-21"

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.api_key} if self.api_key else {}

    def probe_path(self) -> str:
        return f"/models?{urlencode({'api-version': self.api_version})}"

    def probe_models(self, body: Any) -> set[str] | None:
        return None  # Azure lists base models, not the deployment names configured here

    def target_for(self, endpoint: str, model: ModelSpec) -> str:
        path = super().target_for(endpoint, model)
        if endpoint == "responses":  # only on Azure's v1 surface: no deployment in the path (it is the body's
            return "/v1/responses"   # `model`) and no api-version
        query = urlencode({"api-version": self.api_version})
        return f"/deployments/{quote(model.id, safe=PCHAR)}{path}?{query}"


__all__ = ["AzureBackend", "OpenAIBackend", "OpenAIStream", "TranslatedStream", "UpstreamFailure"]
