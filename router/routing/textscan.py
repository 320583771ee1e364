"""The classifier's character work on a text, in one pass when the C extension `_textscan` is built.

`scanner(words)` gives `scan(text) -> (lowered, hits, marks, spaces, stops, plain)`:

- `lowered`: `text.lower()`;
- `hits`: the vocabulary words (bytes, the vocabulary's own objects) among the words of `lowered`, where
  words are split on whitespace, ASCII punctuation but "_" and the punctuation of `WIDE_SEPARATORS`
  (`words`);
- `marks`: `lowered`'s UTF-8 bytes but a-z and " " (its punctuation, digits and non-ASCII bytes: `marks`);
- `spaces`: `text.count(" ")`; `stops`: `text.count(". ") + text.count(".\\n")`;
- `plain`: the text is ASCII and has none of the `GLUE` bytes (control characters that are neither word
  characters nor separators): then a regex's word boundary (`\\b`, `(?<![\\w])`) in `lowered` is always a
  separator or an end, so whatever matches there is made of whole words, each in `hits` if in the vocabulary.

`ascii_counts(text)` gives (spaces, newlines, digits) of an ASCII text (None for any other), for
`router.routing.tokens.estimate`.

The functions here are the reference and the fallback. `router/routing/_textscan.c` (compiled by
`pip install`, optional: without a compiler the package installs and runs on these) does the same for
ASCII text in one walk over its bytes, with no object per word, and hands any other text to the Python
function; `tests/test_textscan.py` checks both agree. `COMPILED` says which one runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import partial

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

Scan = tuple[str, frozenset[bytes], bytes, int, int, bool]


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


def scan_python(vocab: frozenset[bytes], text: str) -> Scan:
    """`scan` in Python, for any text (the reference, and the C scanner's fallback for non-ASCII text)."""
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


def ascii_counts_python(text: str) -> tuple[int, int, int] | None:
    """(spaces, newlines, digits) of an ASCII text, None for any other."""
    if not text.isascii():
        return None
    nl = text.count("\n")
    return text.count(" "), nl, len(text) - len(text.encode().translate(None, _DIGITS_NL)) - nl


API = 2  # = TEXTSCAN_API of _textscan.c: what Scanner() takes and scan() returns
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


def scanner(vocabulary: Iterable[bytes], compiled: bool = COMPILED) -> Callable[[str], Scan]:
    """`scan(text)` for a vocabulary (the compiled one unless `compiled` is false or it was not built)."""
    vocab = frozenset(vocabulary)
    python = partial(scan_python, vocab)
    if not compiled or _textscan is None:
        return python
    return _textscan.Scanner(vocab, WORD_SEPARATORS, python, GLUE).scan
