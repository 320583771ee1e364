"""Where user text travels in a request body, and a redacted copy of that body.

Every string of the body is user text unless its key says otherwise (ids, roles, types, model names,
enumerations) or it is binary data (base64 images, audio, files): messages (string content and text
parts), system prompts (`system`, `instructions`), tool definitions (descriptions and schemas),
tool-call arguments, `/v1/completions` `prompt`, `/v1/embeddings` `input`, `/v1/responses` `input`
items, the `/v1/messages` blocks (text, tool_use input, tool_result content) and the end-user `user`
field. Walking the whole body, rather than a list of known paths, means a new field or endpoint is
scanned by default: the safe side. Only the containers that changed are copied; the client's body is
never mutated.

A body is first decided whole, from the client's bytes, when they are ASCII without a backslash: the JSON
document then holds every string of the body verbatim (no escape can hide or make a character). First the
compiled `_prescan.clean` (router/redaction/_prescan.c: one C pass for what every detector's finding needs,
~1-3 instructions a byte), then, for a small body, one pass of the scanner's compiled search
(`clean_json`). No candidate in any string value means no finding anywhere, so the common clean body
costs one pass: no walk, no per-text scan, no memo. Otherwise (escapes, non-ASCII, a finding, a large
body) the walk below decides, as before.
"""

from __future__ import annotations

import re
from typing import Any

from router.redaction.placeholders import Vault, redact_text
from router.redaction.scanner import Finding, Scanner

try:  # the compiled clean-body test; without it (no C compiler at install) the scanner's pass decides alone
    from router.redaction._prescan import clean as prescan_clean
except ImportError:  # pragma: no cover
    prescan_clean = None

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

RAW_MAX = 4096  # bodies up to this many bytes (and turns) are decided whole first: the walk's memo wins beyond
RAW_TURNS = 2  # messages: a longer conversation repeats earlier turns, which the memo answers cheaper
RAW_CANDIDATES = 8  # candidates looked at before leaving the body to the walk
_KEY_END = re.compile(rb'"[ \t\n\r]*:')  # a string's closing quote followed by a colon: it was a key


def clean_json(scanner: Scanner, raw: bytes) -> bool:
    """True when the JSON object `raw` provably holds nothing to redact in any string value, so the body
    parsed from it has none; False means "not decided here" (the walk decides).

    It applies only to ASCII bytes without a backslash: there every string's text is the very bytes between
    its quotes (the scanner's Latin-1 bytes of it) and every quote opens or closes a string, so the
    scanner's compiled pass over the whole document meets every candidate of every string. One in a key
    (never scanned) or between strings (a number: `"max_tokens":1024`) is passed over; one inside a value
    string gets that string scanned from there (`Scanner.scan_from`: nothing before it can be a candidate),
    and a finding sends the body to the walk. Each time the search goes on after what was decided: any
    match within a later value string starts inside that string, so the search from there still meets it."""
    if len(raw) > RAW_MAX or 92 in raw or not raw.isascii():  # 92: a backslash (an escape)
        return False
    search = scanner.search_bytes
    s = search(raw, 0)
    seen = 0
    while s >= 0:
        seen += 1
        if seen > RAW_CANDIDATES:
            return False
        if not raw.count(b'"', 0, s) & 1:  # an even number of quotes before it: between strings
            s = search(raw, s + 1)
            continue
        end = raw.find(b'"', s)  # the string's closing quote
        if _KEY_END.match(raw, end) is None:  # a value: scan it from the candidate on
            start = raw.rfind(b'"', 0, s) + 1
            data = raw[start:end]
            if scanner.scan_from(data.decode("ascii"), data, s - start):
                return False
        s = search(raw, end + 1)
    return True


# One body's walk shares `w`, a list that holds the vault once the first finding makes it (a body with
# nothing to redact allocates none; a list, as the cheapest mutable cell).
_Walk = list[Vault]


def _binary(v: str) -> bool:
    """A base64 data URL (`data:image/png;base64,...`), not text."""
    return v.startswith("data:") and ";base64," in v[:100]


class BodyRedactor:
    """Redact every user string of a request body into a copy, recording the originals in a vault."""

    __slots__ = ("_prescan", "_whole", "allow", "scanner")

    def __init__(self, scanner: Scanner, allow: frozenset[str] = frozenset()) -> None:
        self.scanner = scanner
        self.allow = allow  # values that are never findings
        self._whole = getattr(scanner, "search_bytes", None) is not None  # clean_json can decide bodies
        # _prescan knows the shipped detectors only: a scanner with others of its own goes without it
        self._prescan = prescan_clean if getattr(scanner, "builtin", False) else None

    def redact(self, body: dict[str, Any], raw: bytes | None = None) -> tuple[dict[str, Any], Vault] | None:
        """(the redacted copy, its vault), or None when the body holds nothing to redact. `raw`: the bytes
        `body` was parsed from, if unchanged (lets a small clean body be decided in one pass, `clean_json`)."""
        if type(raw) is bytes and type(body) is dict:
            if self._prescan is not None and self._prescan(raw):
                return None
            if self._whole and len(raw) <= RAW_MAX:  # (clean_json's own first test, without its call)
                turns = body.get("messages")
                if (turns is None or type(turns) is not list or len(turns) <= RAW_TURNS) and clean_json(
                        self.scanner, raw):
                    return None
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
