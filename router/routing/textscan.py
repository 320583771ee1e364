"""The classifier's character work on a text, in one pass when the C extension `_textscan` is built.

`scanner(words, counted, indexed, asked, probes)` gives
`scan(text) -> (lowered, hits, marks, spaces, stops, plain, counts, found, present, probed)`:

- `lowered`: `text.lower()`;
- `hits`: the vocabulary words (bytes, the vocabulary's own objects) among the words of `lowered`, where
  words are split on whitespace, ASCII punctuation but "_" and the punctuation of `WIDE_SEPARATORS`
  (`words`);
- `marks`: `lowered`'s UTF-8 bytes but a-z and " " (its punctuation, digits and non-ASCII bytes: `marks`);
- `spaces`: `text.count(" ")`; `stops`: `text.count(". ") + text.count(".\\n")`;
- `plain`: the text is ASCII and has none of the `GLUE` bytes (control characters that are neither word
  characters nor separators): then a regex's word boundary (`\\b`, `(?<![\\w])`) in `lowered` is always a
  separator or an end, so whatever matches there is made of whole words, each in `hits` if in the vocabulary;
- `counts`: per category of `counted` (sets of vocabulary words), how many of its words are in `hits`;
- `found`: per dict of `indexed` (vocabulary word -> value), the values of its keys in `hits`, in the keys'
  (bytes) order;
- `present`: the bytes of `asked` in `marks`, ascending;
- `probed`: how many of `probes` (ASCII substrings) occur in the text, counting up to 2 only (0, 1 or 2).

`ascii_counts(text)` gives (spaces, newlines, digits) of an ASCII text (None for any other) and `bands(texts,
params)` the token bands of short ASCII texts from those counts (`bands_python`), for
`router.routing.tokens.estimate`; `fold(text)` an ASCII text's bytes lower-cased without `FOLD_DROP` (None for
any other), for `router.routing.feedback.fingerprint`.

The functions here are the reference and the fallback. `router/routing/_textscan.c` (compiled by
`pip install`, optional: without a compiler the package installs and runs on these) does the same for
ASCII text in one walk over its bytes, with no object per word; for any other text it asks `scan_words`
for the first six and counts the rest from them itself; `tests/test_textscan.py` checks both agree.
`COMPILED` says which one runs.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

# everything but letters, digits and "_" becomes a space before splitting into words (ASCII punctuation only)
SEPARATORS = "!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~\t\n\r"
# and the non-ASCII punctuation that opens or closes words in the languages we read ("¿Cuánto?", «así»)
WIDE_SEPARATORS = "¿¡«»“”\u2018\u2019„—\u2013…·"
SPLIT = str.maketrans({c: " " for c in SEPARATORS + WIDE_SEPARATORS})
# `SPLIT` on bytes, plus the ASCII separators str.split() knows and bytes.split() does not (\x1c-\x1f)
SPLIT_BYTES = bytes.maketrans((SEPARATORS + "\x1c\x1d\x1e\x1f").encode(), b" " * (len(SEPARATORS) + 4))
# every byte that ends an ASCII word: SPLIT_BYTES's plus bytes.split()'s whitespace (the C scanner's table)
WORD_SEPARATORS = bytes(sorted(set((SEPARATORS + "\x1c\x1d\x1e\x1f \x0b\x0c").encode())))
# ASCII bytes that are neither word characters ([A-Za-z0-9_]) nor WORD_SEPARATORS: `plain` is their absence
GLUE = bytes(c for c in range(128) if not (chr(c).isalnum() or chr(c) == "_") and c not in WORD_SEPARATORS)
LOWER_SPACE = b"abcdefghijklmnopqrstuvwxyz "  # deleted from a lower-cased text's bytes: `marks` is the rest
_DIGITS_NL = b"0123456789\n"
FOLD_DROP = b" \t\n\r\x0b\x0c"  # the ASCII whitespace `fold` drops
_LOWER_ASCII = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")

Words = tuple[str, frozenset[bytes], bytes, int, int, bool]  # lowered, hits, marks, spaces, stops, plain
Scan = tuple[str, frozenset[bytes], bytes, int, int, bool, tuple[int, ...], tuple[tuple[Any, ...], ...], bytes, int]


@dataclass(frozen=True, slots=True)
class Extras:
    """What a scanner counts and reports beyond the words, laid out for `scan_python` (see `extras`): C-level
    set and map calls over the hits, no Python loop per word."""

    counted: frozenset[bytes]  # every counted word
    packed: dict[bytes, int]  # word -> its categories as one packed count (`width` bytes a category)
    unpack: Callable[[bytes], tuple[int, ...]]  # packed counts -> one count per category
    width: int  # bytes of all the packed counts
    indexed: tuple[dict[bytes, Any], ...]
    keys: frozenset[bytes]  # the keys of every indexed dict
    asked: frozenset[int]
    gates: frozenset[int]  # the probes' first bytes that are not a letter or " "
    gated: dict[int, tuple[str, ...]]  # the probes by that byte
    ungated: tuple[str, ...]  # probes of letters and spaces only


def extras(
    vocab: frozenset[bytes], counted: Sequence[Iterable[bytes]] = (), indexed: Sequence[dict[bytes, Any]] = (),
    asked: bytes = b"", probes: Sequence[bytes] = (),
) -> Extras:
    """`Extras` of a scanner's arguments; ValueError for a counted or indexed word not in the vocabulary or a
    probe that is not ASCII (the compiled scanner refuses the same)."""
    sets = [frozenset(c) for c in counted]
    field = 2 if max(map(len, sets), default=0) < 1 << 16 else 4  # a category's count fits its field
    packed: dict[bytes, int] = {}
    for c, words_of in enumerate(sets):
        for w in words_of:
            packed[w] = packed.get(w, 0) + (1 << (8 * field * c))
    keys = frozenset(k for d in indexed for k in d)
    if not vocab.issuperset(packed) or not vocab.issuperset(keys):
        raise ValueError("counted and indexed words must be words of the vocabulary")
    if not all(p and p.isascii() for p in probes):
        raise ValueError("probes must be non-empty ASCII bytes")
    gated: dict[int, tuple[str, ...]] = {}
    ungated: list[str] = []
    for p in probes:
        gate = next((c for c in p if not (chr(c).isalpha() or c == 32)), None)
        if gate is None:
            ungated.append(p.decode())
        else:
            gated[gate] = (*gated.get(gate, ()), p.decode())
    unpack = struct.Struct(f"<{len(sets)}{'H' if field == 2 else 'I'}").unpack
    return Extras(frozenset(packed), packed, unpack, field * len(sets), tuple(dict(d) for d in indexed), keys,
                  frozenset(asked), frozenset(gated), gated, tuple(ungated))


NO_EXTRAS = extras(frozenset())


def words(lowered: str) -> list[bytes]:
    """The words of a lower-cased text as UTF-8 bytes, repeats included: exactly `lowered.translate(SPLIT)
    .split()` (whitespace, ASCII punctuation but "_", the punctuation of `WIDE_SEPARATORS`), encoded."""
    if lowered.isascii():
        return lowered.encode().translate(SPLIT_BYTES).split()
    for c in WIDE_SEPARATORS:
        if c in lowered:
            lowered = lowered.replace(c, " ")
    split = lowered.encode("utf-8", "surrogatepass").translate(SPLIT_BYTES).decode("utf-8", "surrogatepass").split()
    return [w.encode("utf-8", "surrogatepass") for w in split]  # str.split: non-ASCII whitespace too


def marks(lowered: str) -> bytes:
    """A lower-cased text's bytes but letters and spaces: its punctuation, digits and non-ASCII bytes."""
    return lowered.encode("utf-8", "surrogatepass").translate(None, LOWER_SPACE)


def scan_words(vocab: frozenset[bytes], text: str) -> Words:
    """The first six of `scan` in Python, for any text (the C scanner's fallback for non-ASCII text: it counts
    the rest from these itself)."""
    lowered = text.lower()
    plain = lowered.isascii()
    if plain:
        raw = lowered.encode()
        hits = vocab.intersection(raw.translate(SPLIT_BYTES).split())
        plain = len(raw.translate(None, GLUE)) == len(raw)
    else:
        raw = lowered.encode("utf-8", "surrogatepass")
        hits = vocab.intersection(words(lowered))
    stops = text.count(". ") + text.count(".\n")
    return lowered, hits, raw.translate(None, LOWER_SPACE), text.count(" "), stops, plain


def scan_python(vocab: frozenset[bytes], text: str, more: Extras = NO_EXTRAS) -> Scan:
    """`scan` in Python, for any text (the reference, and the scanner where the C extension was not built)."""
    lowered, hits, marked, spaces, stops, plain = scan_words(vocab, text)
    counts = more.unpack(sum(map(more.packed.__getitem__, more.counted.intersection(hits))).to_bytes(
        more.width, "little"))
    keys = sorted(more.keys.intersection(hits))
    found = tuple(tuple(map(d.__getitem__, filter(d.__contains__, keys))) for d in more.indexed)
    seen = set(marked) if len(marked) <= 64 else None  # a long text: ask per byte
    present = bytes(sorted(more.asked.intersection(marked if seen is None else seen)))
    return (lowered, hits, marked, spaces, stops, plain, counts, found, present,
            _probed(text, more.gates.intersection(marked if seen is None else seen), more))


def _probed(text: str, gates: set[int], more: Extras) -> int:
    """How many probes occur in a text, up to 2 (`gates`: the probes' gate bytes among the text's marks)."""
    n = 0
    for gate in gates:
        for probe in more.gated[gate]:
            if probe in text:
                n += 1
                if n == 2:
                    return n
    for probe in more.ungated:
        if probe in text:
            n += 1
            if n == 2:
                return n
    return n


def ascii_counts_python(text: str) -> tuple[int, int, int] | None:
    """(spaces, newlines, digits) of an ASCII text, None for any other."""
    if not text.isascii():
        return None
    nl = text.count("\n")
    return text.count(" "), nl, len(text) - len(text.encode().translate(None, _DIGITS_NL)) - nl


def fold_python(text: str) -> bytes | None:
    """An ASCII text's bytes lower-cased, without `FOLD_DROP`; None for any other text."""
    if not text.isascii():
        return None
    return text.encode().translate(_LOWER_ASCII, FOLD_DROP)


def bands_python(texts: list[str], params: tuple[float, ...]) -> tuple[float, float, float] | None:
    """(estimate, low, high) token bands of texts each ASCII and at most `params[10]` characters long, summed;
    None when one is not. Per non-empty text of n characters, sp spaces, nl newlines and dg digits: with
    `sp * 12 >= n`, e = per_char*n + per_space*sp + per_newline*nl + per_digit*dg, low e*low_factor, high
    e*high_factor + high_slack; else dense_est*n, dense_low*n, dense_high*n + high_slack; a low under 1 counts
    as 1. params: (per_char, per_space, per_newline, per_digit, low_factor, high_factor, high_slack,
    dense_est, dense_low, dense_high, max_chars)."""
    per_char, per_space, per_newline, per_digit, low_f, high_f, slack, dense_est, dense_low, dense_high, most = params
    est = low = high = 0.0
    for t in texts:
        n = len(t)
        if not n:
            continue
        if n > most or not t.isascii():
            return None
        sp = t.count(" ")
        if sp * 12 >= n:
            nl = t.count("\n")
            e = (per_char * n + per_space * sp + per_newline * nl
                 + per_digit * (len(t) - len(t.encode().translate(None, _DIGITS_NL)) - nl))
            lo, hi = e * low_f, e * high_f + slack
        else:
            e, lo, hi = dense_est * n, dense_low * n, dense_high * n + slack
        est += e
        low += lo if lo > 1.0 else 1.0
        high += hi
    return est, low, high


API = 5  # = TEXTSCAN_API of _textscan.c: what Scanner() takes and scan() returns
try:
    from router.routing import _textscan  # type: ignore[attr-defined]
except ImportError:  # built without a compiler: the Python functions
    _textscan = None
if _textscan is not None and getattr(_textscan, "API", None) != API:  # a stale build (a pull, no reinstall)
    logging.getLogger("ai_router").warning(
        "router/routing/_textscan is an older build than the code (API %s, expected %s): classifying with the "
        "Python scan; `pip install -e .` (or `make setup`) rebuilds it", getattr(_textscan, "API", None), API)
    _textscan = None

COMPILED = _textscan is not None
ascii_counts: Callable[[str], tuple[int, int, int] | None] = (
    _textscan.ascii_counts if _textscan is not None else ascii_counts_python
)
fold: Callable[[str], bytes | None] = _textscan.fold if _textscan is not None else fold_python
bands: Callable[[list[str], tuple[float, ...]], tuple[float, float, float] | None] = (
    _textscan.bands if _textscan is not None else bands_python
)


def scanner(
    vocabulary: Iterable[bytes], compiled: bool = COMPILED, counted: Sequence[Iterable[bytes]] = (),
    indexed: Sequence[dict[bytes, Any]] = (), asked: bytes = b"", probes: Sequence[bytes] = (),
) -> Callable[[str], Scan]:
    """`scan(text)` for a vocabulary and what else it counts and reports (see the top); the compiled one unless
    `compiled` is false or it was not built."""
    vocab = frozenset(vocabulary)
    counted = [frozenset(c) for c in counted]
    more = extras(vocab, counted, indexed, asked, probes)
    if not compiled or _textscan is None:
        return partial(scan_python, vocab, more=more)
    return _textscan.Scanner(vocab, WORD_SEPARATORS, partial(scan_words, vocab), GLUE, counted, indexed, asked,
                             probes).scan
