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
from router.redaction.scanner import Scanner

# keys whose string values are not user text: identifiers, enumerations, routing and format fields
NOT_TEXT = frozenset({
    "model", "role", "type", "id", "tool_call_id", "call_id", "item_id", "response_id", "previous_response_id",
    "object", "detail", "format", "encoding_format", "media_type", "mime_type", "service_tier",
    "reasoning_effort", "effort", "modalities", "voice", "tool_choice", "finish_reason", "stop_reason",
    "status", "truncation", "parallel_tool_calls", "cache_control", "signature", "file_id", "image_url_detail",
})
# keys whose strings are binary payloads (base64): never text, and costly to scan
BINARY = frozenset({"data", "file_data", "b64_json", "audio", "image_base64"})
MIN_TEXT = 6  # nothing we look for is shorter


def _is_binary(key: str | None, s: str) -> bool:
    if key in BINARY:
        return True
    return s.startswith("data:") and ";base64," in s[:100]


class BodyRedactor:
    """Redact every user string of a request body into a copy, recording the originals in a vault."""

    __slots__ = ("allow", "scanner")

    def __init__(self, scanner: Scanner, allow: frozenset[str] = frozenset()) -> None:
        self.scanner = scanner
        self.allow = allow  # values that are never findings

    def redact(self, body: dict[str, Any]) -> tuple[dict[str, Any], Vault] | None:
        """(the redacted copy, its vault), or None when the body holds nothing to redact."""
        vault = Vault()
        out = self._value(body, None, vault)
        return (out, vault) if vault else None

    def _value(self, v: Any, key: str | None, vault: Vault) -> Any:
        if isinstance(v, str):
            return self._text(v, key, vault)
        if isinstance(v, dict):
            out: dict[str, Any] | None = None
            for k, item in v.items():
                if isinstance(item, str):  # leaves are handled here: no call for the ones never scanned
                    if len(item) < MIN_TEXT or k in NOT_TEXT:
                        continue
                    new = self._text(item, k, vault)
                elif isinstance(item, dict | list):
                    new = self._value(item, k, vault)
                else:
                    continue
                if new is not item:
                    if out is None:
                        out = dict(v)
                    out[k] = new
            return v if out is None else out
        if isinstance(v, list):
            lst: list[Any] | None = None
            for i, item in enumerate(v):
                if isinstance(item, str):
                    if len(item) < MIN_TEXT or key in NOT_TEXT:
                        continue
                    new = self._text(item, key, vault)
                elif isinstance(item, dict | list):
                    new = self._value(item, key, vault)
                else:
                    continue
                if new is not item:
                    if lst is None:
                        lst = list(v)
                    lst[i] = new
            return v if lst is None else lst
        return v

    def _text(self, v: str, key: str | None, vault: Vault) -> str:
        if len(v) < MIN_TEXT or key in NOT_TEXT or _is_binary(key, v):
            return v
        findings = self.scanner.scan(v)
        if findings and self.allow:
            findings = [f for f in findings if v[f.start:f.end] not in self.allow]
        return redact_text(v, findings, vault) if findings else v
