"""One request's translation between the client's wire format and the upstream's, chat as the pivot.

A backend builds a `Translation` when it does not speak the client's format (`chat`, `messages` or
`responses`) natively; its upstream format is `chat` (OpenAI-compatible servers) or `messages` (Anthropic):

    Translation(client, upstream, body)   .body: what to send upstream (the caller sets model and params)
    .answer(status, raw) -> bytes         the upstream's JSON answer (or error) in the client's format
    .usage                                the upstream's own usage object, once an answer was read
    .stream()                             a `StreamTranslator`: upstream SSE bytes in, client SSE bytes out

The stream translator decodes each upstream event once (the one per-chunk cost of a translated stream;
passed-through streams never get here), turns it into chat chunk dicts and encodes those for the client,
event by event, never holding more than a partial event. An upstream `error` event raises
`UpstreamOverloaded` or `UpstreamError`, so a failure in the first chunk can still be promoted and a later
one ends the stream with an in-band error in the client's format.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.errors import UpstreamError, UpstreamOverloaded
from router.formats import anthropic, responses
from router.formats.errors import anthropic_error, openai_error, upstream_error_message
from router.formats.events import DONE, EventDecoder, EventTooLarge, encode_data

CLIENT_FORMATS = ("chat", "messages", "responses")
UPSTREAM_FORMATS = ("chat", "messages")


class Translation:
    """How one request crosses from the client's format to the upstream's and back."""

    __slots__ = ("body", "client", "model", "req", "upstream", "usage")

    def __init__(self, client: str, upstream: str, body: dict[str, Any], *,
                 max_tokens_field: str = "max_tokens") -> None:
        if client not in CLIENT_FORMATS or upstream not in UPSTREAM_FORMATS or client == upstream:
            raise ValueError(f"no translation from {client} to {upstream}")
        self.client = client
        self.upstream = upstream
        self.req = body
        self.model: str | None = None
        self.usage: dict[str, Any] | None = None
        if client == "chat":
            chat = body
        elif client == "messages":
            chat = anthropic.messages_to_chat(body, max_tokens_field)
        else:
            chat = responses.responses_to_chat(body, max_tokens_field)
        if upstream == "messages":
            self.body = anthropic.chat_to_messages(chat)
        else:
            self.body = chat
            if chat.get("stream") is True:  # the translator needs the usage chunk; the client never sees it raw
                chat["stream_options"] = {"include_usage": True}

    # ------------------------------------------------------------ JSON

    def answer(self, status: int, raw: bytes) -> bytes:
        """The upstream's JSON answer (success or error) in the client's format."""
        if status >= 400:
            message = upstream_error_message(raw) or f"upstream error {status}"
            if self.client == "messages":
                return orjson.dumps(anthropic_error(status, message))
            return orjson.dumps(openai_error(status, message, code=str(status)))
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError("the upstream's answer is not valid JSON") from None
        if not isinstance(data, dict):
            raise UpstreamError("the upstream's answer is not a JSON object")
        self.usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
        chat = anthropic.message_to_chat(data) if self.upstream == "messages" else data
        if self.client == "chat":
            out = chat
        elif self.client == "messages":
            out = anthropic.chat_to_message(chat, self.model)
        else:
            out = responses.chat_to_response(chat, self.req)
        return orjson.dumps(out)

    # ------------------------------------------------------------ streams

    def stream(self) -> StreamTranslator:
        return StreamTranslator(self)


class StreamTranslator:
    """Upstream SSE bytes in, the client's SSE bytes out; `usage` is the upstream's usage seen so far."""

    __slots__ = ("decoder", "done", "encoder", "started", "to_chat", "tr")

    def __init__(self, tr: Translation) -> None:
        self.tr = tr
        self.decoder = EventDecoder()
        self.done = False
        self.started = False
        so = tr.req.get("stream_options")
        # a chat client gets the usage chunk if it asked; the other encoders read it for their last event
        wants_usage = tr.client != "chat" or (isinstance(so, dict) and so.get("include_usage") is True)
        self.to_chat = anthropic.MessagesToChat(wants_usage) if tr.upstream == "messages" else None
        if tr.client == "messages":
            self.encoder: Any = anthropic.ChatToMessages(tr.model)
        elif tr.client == "responses":
            self.encoder = responses.ChatToResponses(tr.req, tr.model)
        else:
            self.encoder = None  # a chat client: chunks are encoded as they are

    @property
    def usage(self) -> dict[str, Any] | None:
        return self.to_chat.usage or None if self.to_chat is not None else self.tr.usage

    def feed(self, data: bytes) -> bytes:
        try:
            events = self.decoder.feed(data)
        except EventTooLarge as e:
            raise UpstreamError(f"the upstream's stream is broken: {e}") from None
        out = b"" if self.started or self.encoder is None else self._start()
        for _name, payload in events:
            if self.done:
                break
            out += self._event(payload)
        return out

    def close(self) -> bytes:
        """The end of the upstream's body: whatever the client still needs to see a complete stream."""
        out = b""
        for _name, payload in self.decoder.flush():
            if not self.done:
                out += self._event(payload)
        if not self.done:
            out += self._end()
        return out

    def _start(self) -> bytes:
        self.started = True
        return self.encoder.start() if isinstance(self.encoder, responses.ChatToResponses) else b""

    def _event(self, payload: bytes) -> bytes:
        if payload == b"[DONE]":
            return self._end()
        try:
            ev = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamError("the upstream sent an SSE event that is not JSON") from None
        if not isinstance(ev, dict):
            return b""
        if self.to_chat is not None:
            kind = ev.get("type")
            if kind == "error":
                raise _stream_failure(ev)
            chunks = self.to_chat.feed(ev)
            out = b"".join(self._client(c) for c in chunks)
            if kind == "message_stop":
                out += self._end()
            return out
        if "error" in ev and not ev.get("choices"):
            raise _stream_failure(ev)
        if ev.get("usage"):
            self.tr.usage = ev["usage"]
        return self._client(ev)

    def _client(self, chunk: dict[str, Any]) -> bytes:
        enc = self.encoder
        if enc is None:
            return encode_data(chunk)
        return enc.feed(chunk)

    def _end(self) -> bytes:
        self.done = True
        enc = self.encoder
        if enc is None:
            return DONE
        out = b"" if self.started else self._start()
        return out + enc.end()


def _stream_failure(ev: dict[str, Any]) -> UpstreamError:
    err = ev.get("error") if isinstance(ev.get("error"), dict) else {}
    kind = str(err.get("type") or "")
    message = str(err.get("message") or kind or "error event")
    if kind in ("overloaded_error", "rate_limit_error"):
        return UpstreamOverloaded(f"the upstream reported {kind} mid-stream: {message}")
    return UpstreamError(f"the upstream's stream failed: {message}")
