"""Token counting: what a request's prompt costs, exactly where a routing threshold could flip, else bounded.

The `classify` and `route` stages ask this module how many tokens a request's prompt holds, as the upstream
would count them. `extract()` reads a body of any endpoint (chat, completions, embeddings, responses,
messages) into a `Prompt`: its text pieces, tool definitions, image parts and fixed overhead. `count()` then
either encodes every piece with tiktoken (exact) or, when the prompt is large and no threshold is near,
extrapolates from evenly spaced samples with a safety margin (estimate), so a 100k-token prompt costs a few
hundred microseconds, not tens of milliseconds. The caller passes the thresholds that matter (rules'
`max_prompt_tokens`, models' context windows minus the output reserve); a threshold inside the estimate's
margin forces the exact count.

Counting follows OpenAI's documented recipe (cookbook "How to count tokens with tiktoken"): 3 tokens per
message, 1 more per `name`, 3 to prime the reply; tool definitions by the function-calling formula;
image parts by the vision price sheet (85 tokens at `detail: low`; 85 + 170 per 512-px tile otherwise,
after fitting in 2048x2048 and scaling the short side to 768; 765 when the size is unknown, i.e. a
1024x1024 image).

Encodings load offline from the package data (`router/data/*.tiktoken.gz`, gzip of the official files),
checked against their published sha256, once per process, on first use.
"""

from __future__ import annotations

import base64
import binascii
import gc
import gzip
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

import orjson
import tiktoken

from router.routing.textscan import ascii_counts, bands

DEFAULT_ENCODING = "o200k_base"

_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""  # noqa: E501
)

# name -> (data file, sha256 of the decompressed file, pat_str, special tokens); from tiktoken_ext/openai_public.py
ENCODINGS: dict[str, tuple[str, str, str, dict[str, int]]] = {
    "o200k_base": (
        "o200k_base.tiktoken.gz",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PAT,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": (
        "cl100k_base.tiktoken.gz",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _CL100K_PAT,
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
}

# OpenAI's chat format overhead (gpt-4o / gpt-4.1 / gpt-5 family)
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
# function-calling definitions (cookbook formula for the gpt-4o family)
FUNC_INIT, PROP_INIT, PROP_KEY, ENUM_INIT, ENUM_ITEM, FUNC_END = 7, 3, 3, -3, 3, 12
# vision price sheet
IMAGE_LOW, IMAGE_TILE, IMAGE_BASE = 85, 170, 85
IMAGE_UNKNOWN = IMAGE_BASE + 4 * IMAGE_TILE  # a 1024x1024 image at detail high/auto

# estimation: pieces up to EXACT_CHARS are always encoded; longer ones are sampled
EXACT_CHARS = 2048
SAMPLES = 6
SAMPLE_CHARS = 192
# relative half-width of the sampled estimate's band: on 300 long texts mixing prose, questions and source
# code (40k-150k chars), six 192-char samples were off by more than 15% on 7% of them (at most 29%), so a
# context window or a rule's limit could fall outside a band that claimed to hold the count
MARGIN = 0.3


class UnknownEncoding(ValueError):
    """An encoding name with no bundled BPE file."""


class _Encoding(tiktoken.Encoding):
    """A bundled encoding without the Python-side copy of its ranks (see `get_encoding`); pickled by name."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return get_encoding, (self.name,)


@cache
def get_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """The tiktoken Encoding `name`, built from the bundled, hash-checked BPE file (once per process, lazily:
    only the first exact count or tokenizer sample loads it).

    tiktoken keeps the `mergeable_ranks` dict it was built from (`_mergeable_ranks`, ~200k bytes objects, tens
    of MB for o200k) only to pickle the encoding; encoding and decoding use the Rust `CoreBPE`, which holds its
    own copy. The dict is dropped (the encoding pickles by name instead) and collected."""
    try:
        filename, sha256, pat_str, special = ENCODINGS[name]
    except KeyError:
        raise UnknownEncoding(f"unknown encoding {name!r} (bundled: {', '.join(ENCODINGS)})") from None
    raw = gzip.decompress(resources.files("router").joinpath("data", filename).read_bytes())
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"router/data/{filename}: sha256 {digest} does not match the official {sha256}")
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    enc = _Encoding(name=name, pat_str=pat_str, mergeable_ranks=ranks, special_tokens=special)
    enc._mergeable_ranks = {}
    del ranks, raw
    gc.collect()
    _trim_heap()
    return enc


def _trim_heap() -> None:
    """Give the freed build-time memory (decompressed file, ranks dict) back to the OS (glibc only)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# ---------------------------------------------------------------- what a request's prompt is made of


@dataclass(slots=True)
class Prompt:
    """The token-bearing parts of one request body, in a shape common to every endpoint."""

    texts: list[str] = field(default_factory=list)  # message contents, names, tool calls, system
    roles: list[str] = field(default_factory=list)  # role of each message (for the classifier)
    contents: list[str] = field(default_factory=list)  # text of each message, parallel to roles
    system: str = ""
    tools: list[dict[str, Any]] = field(default_factory=list)  # normalised {name, description, parameters}
    image_tokens: list[int] = field(default_factory=list)
    overhead: int = 0  # fixed tokens: per-message, names, reply priming
    max_output: int | None = None
    wants_json: bool = False
    chars: int = 0


def _image_cost(part: dict[str, Any]) -> int:
    src = part.get("image_url")
    if isinstance(src, dict):
        detail, url = src.get("detail"), src.get("url")
    else:
        detail, url = part.get("detail"), src
    if part.get("type") == "image":  # Anthropic block: {"source": {"type": "base64", "data": ...}}
        source = part.get("source")
        if isinstance(source, dict) and source.get("type") == "base64":
            url = "data:;base64," + str(source.get("data", ""))[:64]
    if detail == "low":
        return IMAGE_LOW
    size = _data_url_size(url) if isinstance(url, str) else None
    if size is None:
        return IMAGE_UNKNOWN
    return image_tokens(*size)


def image_tokens(width: int, height: int) -> int:
    """Tokens of an image at detail high: fit in 2048x2048, short side to 768, 170 per 512-px tile + 85."""
    scale = min(1.0, 2048 / max(width, height, 1))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / max(min(w, h), 1))
    w, h = w * scale, h * scale
    tiles = -(-int(w) // 512) * -(-int(h) // 512)
    return IMAGE_BASE + IMAGE_TILE * max(tiles, 1)


def _data_url_size(url: str) -> tuple[int, int] | None:
    """Width and height of a PNG or GIF data URL, from its first bytes (None when unknown)."""
    if not url.startswith("data:"):
        return None
    comma = url.find(",")
    if comma < 0 or ";base64" not in url[:comma]:
        return None
    try:
        head = base64.b64decode(url[comma + 1 : comma + 1 + 32] + "==")
    except (binascii.Error, ValueError):
        return None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        w, h = struct.unpack(">II", head[16:24])
        return w, h
    if head[:4] == b"GIF8" and len(head) >= 10:
        w, h = struct.unpack("<HH", head[6:10])
        return w, h
    return None


def _content_text(content: Any, prompt: Prompt) -> str:
    """Text of a message content (string or parts); image parts are costed into the prompt."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return "" if content is None else str(content)
    out: list[str] = []
    for part in content:
        if isinstance(part, str):
            out.append(part)
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("image_url", "input_image", "image"):
            prompt.image_tokens.append(_image_cost(part))
        elif isinstance(part.get("text"), str):
            out.append(part["text"])
        elif kind == "tool_result":
            out.append(_content_text(part.get("content"), prompt))
        elif kind == "tool_use":
            out.append(str(part.get("name", "")) + orjson.dumps(part.get("input")).decode())
    return "\n".join(out)


def _tool(t: Any) -> dict[str, Any] | None:
    if not isinstance(t, dict):
        return None
    f = t.get("function") if isinstance(t.get("function"), dict) else t
    params = f.get("parameters", f.get("input_schema"))
    return {
        "name": str(f.get("name", "")),
        "description": str(f.get("description") or ""),
        "parameters": params if isinstance(params, dict) else {},
    }


def _add_message(prompt: Prompt, role: str, content: Any, msg: dict[str, Any] | None = None) -> None:
    text = content if type(content) is str else _content_text(content, prompt)
    prompt.roles.append(role)
    prompt.contents.append(text)
    prompt.texts.append(text)
    prompt.overhead += TOKENS_PER_MESSAGE
    if msg is None:
        return
    if isinstance(msg.get("name"), str):
        prompt.texts.append(msg["name"])
        prompt.overhead += TOKENS_PER_NAME
    calls = msg.get("tool_calls")
    if isinstance(calls, list):
        for c in calls:
            f = c.get("function") if isinstance(c, dict) else None
            if isinstance(f, dict):
                prompt.texts.append(str(f.get("name", "")) + str(f.get("arguments", "")))


_NEW = object.__new__
_ABSENT = object()  # a message without "content" (a Responses output item): its "output" is the text
_MAX_OUTPUT_KEYS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
# the chat-like keys `extract` reads besides messages and the output limit (absent: nothing to read)
_RARE_KEYS = frozenset(("system", "instructions", "tools", "functions", "response_format", "text"))


def extract(endpoint: str, body: dict[str, Any]) -> Prompt:
    """Read the token-bearing parts of a request body of `endpoint` into a `Prompt`."""
    p = _NEW(Prompt)  # = Prompt(): every field set, without the dataclass __init__'s own frame
    p.texts, p.roles, p.contents, p.system, p.tools, p.image_tokens = [], [], [], "", [], []
    p.overhead, p.max_output, p.wants_json, p.chars = 0, None, False, 0
    if endpoint == "embeddings":
        inp = body.get("input")
        items = inp if isinstance(inp, list) else [inp]
        for item in items:
            if isinstance(item, str):
                _add_message(p, "user", item)
                p.overhead -= TOKENS_PER_MESSAGE
            elif isinstance(item, list):  # pre-tokenised input
                p.overhead += len(item)
    elif endpoint == "completions":
        prompt = body.get("prompt")
        for item in prompt if isinstance(prompt, list) else [prompt]:
            if isinstance(item, str):
                _add_message(p, "user", item)
                p.overhead -= TOKENS_PER_MESSAGE
    else:
        rare = not _RARE_KEYS.isdisjoint(body)  # most bodies have none of them: their reads are skipped
        if rare:
            system = body.get("system", body.get("instructions"))
            if system is not None:
                p.system = _content_text(system, p)
                _add_message(p, "system", p.system)
        msgs = body.get("messages")
        if msgs is None and endpoint == "responses":
            inp = body.get("input")
            msgs = [{"role": "user", "content": inp}] if isinstance(inp, str) else inp
        roles, contents, texts = p.roles, p.contents, p.texts
        for m in msgs if isinstance(msgs, list) else []:
            if not isinstance(m, dict):
                continue
            role = m.get("role", "user")
            if type(role) is not str:
                role = str(role)
            if (role == "system" or role == "developer") and not p.system:
                p.system = _content_text(m.get("content"), p)
            content = m.get("content", _ABSENT)
            if "name" in m or "tool_calls" in m:
                _add_message(p, role, m.get("output") if content is _ABSENT else content, m)
                continue
            # = _add_message(p, role, content, m) for a message with neither a name nor tool calls, inlined
            if content is _ABSENT:
                content = m.get("output")
            text = content if type(content) is str else _content_text(content, p)
            roles.append(role)
            contents.append(text)
            texts.append(text)
            p.overhead += TOKENS_PER_MESSAGE
        p.overhead += REPLY_PRIMING
        if rare:
            tools = body.get("tools")
            if isinstance(tools, list):
                p.tools = [t for t in map(_tool, tools) if t is not None]
            if not p.tools and isinstance(body.get("functions"), list):
                p.tools = [t for t in map(_tool, body["functions"]) if t is not None]
            rf = body.get("response_format")
            if isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema"):
                p.wants_json = True
            text = body.get("text")
            if isinstance(text, dict) and isinstance(text.get("format"), dict):
                p.wants_json = text["format"].get("type") in ("json_object", "json_schema")
    for key in _MAX_OUTPUT_KEYS:  # the first positive integer of them (a bool is not one)
        v = body.get(key)
        if v is not None and isinstance(v, int) and not isinstance(v, bool) and v > 0:
            p.max_output = v
            break
    p.chars = sum(map(len, p.texts))
    return p


# ---------------------------------------------------------------- counting


class TokenCount(NamedTuple):
    """Prompt tokens: `tokens` is exact when `exact`, else an estimate known to lie in [low, high].

    A named tuple (immutable, and about 10x cheaper to make than a frozen dataclass: one per request)."""

    tokens: int
    exact: bool
    low: int
    high: int


def tool_tokens(enc: tiktoken.Encoding, tools: Sequence[dict[str, Any]]) -> int:
    """Tokens of function definitions, by OpenAI's cookbook formula."""
    if not tools:
        return 0
    n = 0
    for f in tools:
        n += FUNC_INIT
        desc = f["description"].removesuffix(".")
        n += len(enc.encode_ordinary(f"{f['name']}:{desc}"))
        props = f["parameters"].get("properties")
        if isinstance(props, dict) and props:
            n += PROP_INIT
            for key, spec in props.items():
                spec = spec if isinstance(spec, dict) else {}
                n += PROP_KEY
                enum = spec.get("enum")
                if isinstance(enum, list):
                    n += ENUM_INIT
                    for item in enum:
                        n += ENUM_ITEM + len(enc.encode_ordinary(str(item)))
                p_desc = str(spec.get("description", "")).removesuffix(".")
                n += len(enc.encode_ordinary(f"{key}:{spec.get('type', '')}:{p_desc}"))
    return n + FUNC_END


def _sampled(enc: tiktoken.Encoding, text: str) -> float:
    """Tokens of a long text, extrapolated from SAMPLES evenly spaced windows."""
    n = len(text)
    step = (n - SAMPLE_CHARS) / (SAMPLES - 1)
    sample = 0
    for i in range(SAMPLES):
        start = int(i * step)
        sample += len(enc.encode_ordinary(text[start : start + SAMPLE_CHARS]))
    return sample * n / (SAMPLES * SAMPLE_CHARS)


def count_exact(prompt: Prompt, enc: tiktoken.Encoding) -> int:
    """Exact prompt tokens, as the upstream bills them."""
    encode = enc.encode_ordinary
    n = prompt.overhead + sum(prompt.image_tokens) + tool_tokens_cached(enc, prompt.tools)
    for t in prompt.texts:
        if t:
            n += len(encode(t))
    return n


def count(prompt: Prompt, encoding: str = DEFAULT_ENCODING, thresholds: Iterable[int] = ()) -> TokenCount:
    """Prompt tokens: exact when small or when a threshold lies inside the estimate band, else estimated.

    A threshold `t` means "is tokens <= t?" flips between t and t+1 (a rule's `max_prompt_tokens`, a
    model's context minus the output reserve).
    """
    enc = get_encoding(encoding)
    if prompt.chars <= EXACT_CHARS * 2:
        n = count_exact(prompt, enc)
        return TokenCount(n, True, n, n)
    encode = enc.encode_ordinary
    fixed = prompt.overhead + sum(prompt.image_tokens) + tool_tokens_cached(enc, prompt.tools)
    exact_part, estimated = 0, 0.0
    for t in prompt.texts:
        if len(t) <= EXACT_CHARS:
            if t:
                exact_part += len(encode(t))
        else:
            estimated += _sampled(enc, t)
    base = fixed + exact_part
    est = base + round(estimated)
    low = base + int(estimated * (1 - MARGIN))
    high = base + int(estimated * (1 + MARGIN)) + 1
    if any(low <= t < high for t in thresholds):
        n = count_exact(prompt, enc)
        return TokenCount(n, True, n, n)
    return TokenCount(est, False, low, high)


# ---------------------------------------------------------------- the cheap bound (no tokenizer)

# ASCII text with spaces (prose, code): tokens ~ a*chars + b*spaces + c*newlines + d*digits (least squares on
# prose, markdown, logs and source code); [-LOW_MARGIN, +HIGH_MARGIN] (+HIGH_SLACK) holds >99.5% of such texts and
# all of those above 100 tokens in the calibration set. Space-poor ASCII (base64, hex, minified code) and
# non-ASCII text get wide, conservative bands (a token is at least one UTF-8 byte). Texts longer than
# SAMPLED_CHARS are extrapolated from tokenizer samples (`_sampled`, +-MARGIN) instead: six tokenizer calls
# cost ~25 µs, the character counts ~1 µs per 4k chars, and below ~8k tokens the wide band rarely holds a
# routing threshold (when it does, the classify stage asks `count()`, which samples).
PER_CHAR, PER_SPACE, PER_NEWLINE, PER_DIGIT = 0.2288, -0.069, 0.4989, 0.5154
LOW_MARGIN, HIGH_MARGIN, HIGH_SLACK = 0.45, 0.7, 3.0
DENSE_LOW, DENSE_EST, DENSE_HIGH = 0.12, 0.3, 0.8  # tokens per char, ASCII with few spaces
WIDE_LOW, WIDE_EST = 0.1, 0.3  # tokens per char (low) and per byte (estimate), non-ASCII; high = bytes
SAMPLED_CHARS = 32768
_LOW_FACTOR, _HIGH_FACTOR = 1 - LOW_MARGIN, 1 + HIGH_MARGIN  # the same floats, computed once
_NOT_DIGIT = bytes(c for c in range(256) if not 48 <= c <= 57)  # bytes.translate(None, _NOT_DIGIT): the digits
# `textscan.bands`' params: the ASCII branches of `estimate` below, the same constants
_BAND_PARAMS = (PER_CHAR, PER_SPACE, PER_NEWLINE, PER_DIGIT, _LOW_FACTOR, _HIGH_FACTOR, HIGH_SLACK, DENSE_EST,
                DENSE_LOW, DENSE_HIGH, float(SAMPLED_CHARS))
_TOOL_MEMO: dict[tuple[str, bytes], int] = {}
_TUPLE_NEW = tuple.__new__
_TOOL_MEMO_MAX = 256


def _text_band(text: str) -> tuple[float, float, float]:
    """(estimate, low, high) tokens of one text from character counts only."""
    n = len(text)
    if text.isascii():
        sp = text.count(" ")
        if sp * 12 >= n:
            e = (PER_CHAR * n + PER_SPACE * sp + PER_NEWLINE * text.count("\n")
                 + PER_DIGIT * len(text.encode().translate(None, _NOT_DIGIT)))
            return e, e * (1 - LOW_MARGIN), e * (1 + HIGH_MARGIN) + HIGH_SLACK
        return DENSE_EST * n, DENSE_LOW * n, DENSE_HIGH * n + HIGH_SLACK
    b = len(text.encode("utf-8", "surrogatepass"))
    return WIDE_EST * b, WIDE_LOW * n, float(b)


def tool_tokens_cached(enc: tiktoken.Encoding, tools: Sequence[dict[str, Any]]) -> int:
    """`tool_tokens`, memoised on the definitions' JSON (clients resend the same tools with every request)."""
    if not tools:
        return 0
    key = (enc.name, orjson.dumps(tools))
    n = _TOOL_MEMO.get(key)
    if n is None:
        n = tool_tokens(enc, tools)
        if len(_TOOL_MEMO) >= _TOOL_MEMO_MAX:
            _TOOL_MEMO.clear()
        _TOOL_MEMO[key] = n
    return n


def estimate(prompt: Prompt, encoding: str = DEFAULT_ENCODING) -> TokenCount:
    """Prompt tokens bounded without running the tokenizer on small texts: an estimate in [low, high].

    Exact only for an empty prompt. Callers compare their routing thresholds with the band and call
    `count()` / `count_exact()` when one lies inside it.
    """
    fixed = prompt.overhead
    if prompt.image_tokens:
        fixed += sum(prompt.image_tokens)
    if prompt.tools:
        fixed += tool_tokens_cached(get_encoding(encoding), prompt.tools)
    # the usual prompt (ASCII texts, none sampled): every text's band in one call (textscan.bands_python)
    summed = bands(prompt.texts, _BAND_PARAMS)
    if summed is not None:
        est, low, high = summed
        if high:
            lo_i = fixed + int(low)
            hi_i = fixed + int(high) + 1
            e_i = fixed + round(est)
            return _TUPLE_NEW(TokenCount, (lo_i if e_i < lo_i else hi_i if e_i > hi_i else e_i, False, lo_i, hi_i))
        return TokenCount(fixed, True, fixed, fixed)
    est = low = high = 0.0  # high stays 0 only when every text is empty (each adds at least HIGH_SLACK or 1)
    for t in prompt.texts:
        n = len(t)
        if not n:
            continue
        if n > SAMPLED_CHARS:
            s = _sampled(get_encoding(encoding), t)
            est += s
            low += s * (1 - MARGIN)
            high += s * (1 + MARGIN) + 1
            continue
        counts = ascii_counts(t)  # (spaces, newlines, digits) in one pass; None: not ASCII
        if counts is not None:  # `_text_band`, inlined (the common case)
            sp, nl, digits = counts
            if sp * 12 >= n:
                e = PER_CHAR * n + PER_SPACE * sp + PER_NEWLINE * nl + PER_DIGIT * digits
                lo = e * _LOW_FACTOR
                est += e
                low += lo if lo > 1.0 else 1.0  # a non-empty text is at least one token
                high += e * _HIGH_FACTOR + HIGH_SLACK
                continue
            e, lo, hi = DENSE_EST * n, DENSE_LOW * n, DENSE_HIGH * n + HIGH_SLACK
        else:
            e, lo, hi = _text_band(t)
        est += e
        low += lo if lo > 1.0 else 1.0
        high += hi
    if not high:
        return TokenCount(fixed, True, fixed, fixed)
    lo_i = fixed + int(low)
    hi_i = fixed + int(high) + 1
    e_i = fixed + round(est)
    # = TokenCount(...), without the named tuple's Python-level __new__ (once per request)
    return _TUPLE_NEW(TokenCount, (lo_i if e_i < lo_i else hi_i if e_i > hi_i else e_i, False, lo_i, hi_i))


def count_text(text: str, encoding: str = DEFAULT_ENCODING) -> int:
    """Exact tokens of a plain string (no message overhead)."""
    return len(get_encoding(encoding).encode_ordinary(text))
