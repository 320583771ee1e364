"""Where user text travels in a request body, and a redacted copy of that body.

Every string of the body is user text unless its key says otherwise (ids, roles, types, model names,
enumerations) or it is binary data (base64 images, audio, files): messages (string content and text
parts), system prompts (`system`, `instructions`), tool definitions (descriptions and schemas),
tool-call arguments, `/v1/completions` `prompt`, `/v1/embeddings` `input`, `/v1/responses` `input`
items, the `/v1/messages` blocks (text, tool_use input, tool_result content) and the end-user `user`
field. Walking the whole body, rather than a list of known paths, means a new field or endpoint is
scanned by default: the safe side. Only the containers that changed are copied; the client's body is
never mutated.
"""

from __future__ import annotations

from typing import Any

from router.redaction.placeholders import Vault, redact_text
from router.redaction.scanner import Finding, Scanner

# keys whose string values are not user text: identifiers, enumerations, routing and format fields
NOT_TEXT = frozenset({
    "model", "role", "type", "id", "tool_call_id", "call_id", "item_id", "response_id", "previous_response_id",
    "object", "detail", "format", "encoding_format", "media_type", "mime_type", "service_tier",
    "reasoning_effort", "effort", "modalities", "voice", "tool_choice", "finish_reason", "stop_reason",
    "status", "truncation", "parallel_tool_calls", "cache_control", "signature", "file_id", "image_url_detail",
})
# keys whose strings are binary payloads (base64): never text, and costly to scan
BINARY = frozenset({"data", "file_data", "b64_json", "audio", "image_base64"})
SKIP = NOT_TEXT | BINARY  # keys whose strings are never scanned
MIN_TEXT = 6  # nothing we look for is shorter
_NODES = (str, dict, list)  # what the walk looks into (subclasses too)
_SCALARS = frozenset({int, float, bool, type(None)})  # exact types the walk passes over without `isinstance`

# One body's walk shares `w`, a list that holds the vault once the first finding makes it (a body with
# nothing to redact allocates none; a list, as the cheapest mutable cell).
_Walk = list[Vault]


def _binary(v: str) -> bool:
    """A base64 data URL (`data:image/png;base64,...`), not text."""
    return v.startswith("data:") and ";base64," in v[:100]


class BodyRedactor:
    """Redact every user string of a request body into a copy, recording the originals in a vault."""

    __slots__ = ("allow", "scanner")

    def __init__(self, scanner: Scanner, allow: frozenset[str] = frozenset()) -> None:
        self.scanner = scanner
        self.allow = allow  # values that are never findings

    def redact(self, body: dict[str, Any]) -> tuple[dict[str, Any], Vault] | None:
        """(the redacted copy, its vault), or None when the body holds nothing to redact."""
        w: _Walk = []
        out = self._dict(body, w) if type(body) is dict else self._value(body, None, w)
        return (out, w[0]) if w else None

    # The walk is the redaction's own cost on a clean body, so its common shapes (exact dicts, lists and
    # strings, as orjson makes them) are tested with `type(...) is`, and a string is scanned in place (no
    # call of `_text` for it); anything else goes through `_value`.

    def _dict(self, v: dict[str, Any], w: _Walk) -> dict[str, Any]:
        out: dict[str, Any] | None = None
        for k, item in v.items():
            t = type(item)
            if t is str:
                if len(item) < MIN_TEXT or k in SKIP or (item[0] == "d" and _binary(item)):
                    continue
                findings = self.scanner.scan(item)
                if not findings:
                    continue
                new = self._redacted(item, findings, w)
            elif t is list:
                new = self._list(item, k, w)
            elif t is dict:
                new = self._dict(item, w)
            elif t in _SCALARS:
                continue
            elif isinstance(item, _NODES):  # subclasses: the general case
                new = self._value(item, k, w)
            else:
                continue
            if new is not item:
                if out is None:
                    out = dict(v)
                out[k] = new
        return v if out is None else out

    def _list(self, v: list[Any], key: str | None, w: _Walk) -> list[Any]:
        lst: list[Any] | None = None
        text = key not in SKIP
        i = -1
        for item in v:  # (a counter, not `enumerate`: no tuple per item)
            i += 1
            t = type(item)
            if t is dict:
                new = self._dict(item, w)
            elif t is str:
                if len(item) < MIN_TEXT or not text or (item[0] == "d" and _binary(item)):
                    continue
                findings = self.scanner.scan(item)
                if not findings:
                    continue
                new = self._redacted(item, findings, w)
            elif t is list:
                new = self._list(item, key, w)
            elif t in _SCALARS:
                continue
            elif isinstance(item, _NODES):
                new = self._value(item, key, w)
            else:
                continue
            if new is not item:
                if lst is None:
                    lst = list(v)
                lst[i] = new
        return v if lst is None else lst

    def _value(self, v: Any, key: str | None, w: _Walk) -> Any:
        if isinstance(v, str):
            return self._text(v, key, w)
        if isinstance(v, dict):
            return self._dict(v, w)
        if isinstance(v, list):
            return self._list(v, key, w)
        return v

    def _text(self, v: str, key: str | None, w: _Walk) -> str:
        if len(v) < MIN_TEXT or key in SKIP or _binary(v):
            return v
        findings = self.scanner.scan(v)
        return self._redacted(v, findings, w) if findings else v

    def _redacted(self, v: str, findings: list[Finding], w: _Walk) -> str:
        if self.allow:
            findings = [f for f in findings if v[f.start:f.end] not in self.allow]
            if not findings:
                return v
        if not w:
            w.append(Vault())
        return redact_text(v, findings, w[0])
