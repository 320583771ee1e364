"""The scanner: every detector joined into one compiled alternation, one pass per text.

`Scanner.scan(text)` walks the text with the combined pattern, which only says where the next candidate
starts; the stdlib, anchored there, says which detector it is (the first in priority order that matches,
among those that can begin with that character), then the candidate is checked (boundaries, then the
detector's checksum or rule). A candidate that fails is not lost for the detectors below it: they get
their chance at the same position before the scan moves on. Findings never overlap and come in text
order. Built once per config. A text's findings never change, so `scan` remembers those of the texts it
has seen (bounded: `MEMO_CHARS` characters in all, texts up to `MEMO_TEXT_CHARS`): a system prompt or an
earlier turn that comes again with every request of a conversation is hashed and looked up, not scanned.
RE2 builds its DFA's states lazily, the first time a text leads to one (~20k instructions each), and the
ids and numbers of ordinary text (request ids, uuids, hex digests, counters, dates) lead to thousands of
them: a new scanner walks `warm_text()` once, so its first thousands of requests do not pay for them
(bench.redaction_instructions --what pass: 0.54 new states and 39k instructions per request without, 0.03
and 28k with; ~3 ms per scanner at start-up, and 25 ms once per process for the text).

The pass runs on RE2 (`google-re2`: a DFA, linear in the text whatever the number of patterns) over the
text as Latin-1 bytes, one byte per character (a character beyond Latin-1 becomes byte 0xFF, which no
pattern looks for), so byte and character positions are the same. Measured against the stdlib's
backtracking `re` on the same alternation, RE2 is ~140x faster on typical text (31 µs against 4.3 ms for
2k tokens of code, logs and prose; docs/performance.md); `engine="re"` is kept for that comparison.
"""

from __future__ import annotations

import codecs
import random
import re
import re._constants as sre_c
import re._parser as sre_parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import re2

from router.redaction.detectors import DETECTORS, SAFE, SECRET, Detector, Span


def _one_byte_each(err: UnicodeError) -> tuple[str, int]:
    assert isinstance(err, UnicodeEncodeError)
    return "\xff" * (err.end - err.start), err.end


codecs.register_error("ai_router_one_byte", _one_byte_each)


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    start: int
    end: int


_NAMED_GROUP = re.compile(r"\(\?P<\w+>")
MEMO_TEXT_CHARS = 16384  # longer texts are scanned every time (they rarely repeat, and would fill the memo)
MEMO_CHARS = 2_000_000  # characters of remembered texts per scanner; then the memo starts over
WARM_IDS = 12000  # ids and numbers in `warm_text()`
_LATIN1 = [chr(c) for c in range(256)]
_DIGITS = frozenset("0123456789")
_SPACES = frozenset(" \t\n\r\f\v")
_WORDS = frozenset(c for c in _LATIN1 if c.isalnum() or c == "_")


def first_chars(pattern: str) -> frozenset[str] | None:
    """The Latin-1 characters a match of `pattern` can start with (None: any), from the stdlib's parse of
    it: lets the scan try at a candidate only the detectors that can begin with its first character."""
    try:
        return _firsts(list(sre_parse.parse(pattern)), 0)
    except _Unknown:
        return None


def warm_text(n: int = WARM_IDS) -> bytes:
    """`n` ids and numbers of the shapes ordinary text carries, each between words as in prose (the same
    bytes every time): request ids (`N-hex`, `hex-hex`), uuids, hex digests, decimal counters, dates and times,
    dotted versions."""
    rnd = random.Random(0)

    def hexs(lo: int, hi: int) -> str:
        return rnd.randbytes(rnd.randint(lo, hi)).hex()[: rnd.randint(lo, 2 * hi)]

    shapes = (
        lambda: f"{rnd.randrange(10 ** rnd.randint(1, 6))}-{hexs(2, 6)}",
        lambda: f"{hexs(2, 6)}-{hexs(2, 6)}",
        lambda: "-".join(rnd.randbytes(k).hex() for k in (4, 2, 2, 2, 6)),
        lambda: hexs(3, 20),
        lambda: str(rnd.randrange(10 ** rnd.randint(1, 12))),
        lambda: f"20{rnd.randint(10, 29)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}T{rnd.randint(0, 23):02d}:"
                f"{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}",
        lambda: ".".join(str(rnd.randint(0, 20)) for _ in range(rnd.randint(2, 3))),
    )
    return " ".join(f"see {shapes[i % len(shapes)]()}." for i in range(n)).encode("latin-1")


_WARM: list[bytes] = []  # warm_text(), made once per process


class _Unknown(Exception):
    pass


def _firsts(items: list[Any], flags: int) -> frozenset[str]:
    out: set[str] = set()
    for op, arg in items:
        if op is sre_c.LITERAL:
            out |= _case({chr(arg)}, flags)
            return frozenset(out)
        if op is sre_c.IN:
            out |= _case(_charset(arg), flags)
            return frozenset(out)
        if op is sre_c.BRANCH:
            for alt in arg[1]:
                out |= _firsts(list(alt), flags)
            return frozenset(out)
        if op is sre_c.SUBPATTERN:
            inner = _firsts(list(arg[3]), flags | arg[1])
            out |= inner - {""}
            if "" not in inner:
                return frozenset(out)
            continue
        if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
            out |= _firsts(list(arg[2]), flags) - {""}
            if arg[0] > 0:
                return frozenset(out)
            continue
        if op is sre_c.AT:
            continue
        raise _Unknown(op)
    out.add("")  # can match the empty string: what follows decides
    return frozenset(out)


def _charset(items: list[Any]) -> set[str]:
    chars: set[str] = set()
    negate = False
    for op, arg in items:
        if op is sre_c.NEGATE:
            negate = True
        elif op is sre_c.LITERAL:
            chars.add(chr(arg))
        elif op is sre_c.RANGE:
            chars |= {chr(c) for c in range(arg[0], min(arg[1], 255) + 1)}
        elif op is sre_c.CATEGORY:
            chars |= {sre_c.CATEGORY_DIGIT: _DIGITS, sre_c.CATEGORY_SPACE: _SPACES,
                      sre_c.CATEGORY_WORD: _WORDS}.get(arg) or set(_LATIN1)
        else:
            raise _Unknown(op)
    return set(_LATIN1) - chars if negate else chars


def _case(chars: set[str], flags: int) -> set[str]:
    if flags & sre_c.SRE_FLAG_IGNORECASE:
        return chars | {c.upper() for c in chars} | {c.lower() for c in chars}
    return chars


def _named(i: int, pattern: str) -> str:
    return pattern.replace("(?P<v>", f"(?P<v{i}>").replace("(?P<w>", f"(?P<w{i}>")


def _alternation(detectors: list[Detector], indices: Iterable[int]) -> str:
    return "|".join(f"(?P<k{i}>{_named(i, detectors[i].pattern)})" for i in indices)


class _Groups:
    """Which detector a match of the alternation belongs to, and its secret part's span."""

    __slots__ = ("top", "values")

    def __init__(self, groupindex: dict[Any, int], n: int) -> None:
        index = {(k.decode() if isinstance(k, bytes) else k): v for k, v in groupindex.items()}
        self.top = [(index[f"k{i}"], i) for i in range(n) if f"k{i}" in index]
        self.values = {i: [index[g] for g in (f"v{i}", f"w{i}") if g in index] for _, i in self.top}

    def which(self, spans: Any) -> tuple[int, Span | None]:
        """The detector of a match given its group spans (index 0: the whole match)."""
        for g, i in self.top:
            if spans[g][0] >= 0:
                for vg in self.values[i]:
                    vs = spans[vg]
                    if vs[0] >= 0:
                        return i, vs
                return i, None
        raise AssertionError("a match of no detector")


_UNANCHORED = re2._Anchor.UNANCHORED


def _re2_search(regex: Any) -> Any:
    """Where RE2 finds the next candidate (-1: none), through the binding's own call: no match object."""
    match = regex._regexp.Match
    unanchored = _UNANCHORED

    def search(data: bytes, pos: int) -> int:
        return int(match(unanchored, data, pos, len(data))[0][0])

    return search


def _re_search(regex: re.Pattern[str]) -> Any:
    def search(data: str, pos: int) -> int:
        m = regex.search(data, pos)
        return -1 if m is None else m.start()

    return search


class Scanner:
    """One compiled pass over a text for the given detectors (default: all of them)."""

    def __init__(self, detectors: Iterable[Detector] = DETECTORS, kinds: Iterable[str] | None = None,
                 engine: str = "re2", memo: bool = True, warm: bool = True) -> None:
        wanted = None if kinds is None else set(kinds)
        self.detectors = [d for d in detectors if wanted is None or d.kind in wanted]
        self.builtin = all(d in DETECTORS for d in self.detectors)  # only shipped detectors (body.py's _prescan)
        self.kinds = {d.kind for d in self.detectors}
        self.engine = engine
        n = len(self.detectors)
        # The pass only finds where a candidate starts: no capture groups, so RE2 answers from its DFA alone
        # (a capture group makes it rerun the whole program on every match: ~25x slower here).
        pattern = "|".join(f"(?:{_NAMED_GROUP.sub('(?:', d.finder or d.pattern)})" for d in self.detectors)
        if engine == "re2":
            options = re2.Options()
            options.max_mem = 32 << 20
            options.encoding = re2.Options.Encoding.LATIN1
            self.regex: Any = re2.compile(pattern.encode("latin-1"), options)
            self._search = _re2_search(self.regex)
            self._match: Any = self.regex._regexp.Match  # scan's first search calls it directly (one frame less)
            # the pass over Latin-1 bytes: (data, pos) -> where the next candidate starts, -1 for none
            self.search_bytes: Any = self._search
        elif engine == "re":
            self.regex = re.compile(pattern)
            self._search = _re_search(self.regex)
            self._match = None
            self.search_bytes = None
        else:
            raise ValueError(f"unknown engine {engine!r} (re2 or re)")
        self._single = [re.compile(_alternation(self.detectors, [i])) for i in range(n)]
        self._single_groups = [_Groups(r.groupindex, n) for r in self._single]
        firsts = [first_chars(d.pattern) for d in self.detectors]
        # per first character, the detectors (index, compiled alone) that can start with it, in priority order
        self._starting: dict[str, list[tuple[int, re.Pattern[str]]]] = {
            c: [(j, self._single[j]) for j, f in enumerate(firsts) if f is None or c in f or "" in f]
            for c in _LATIN1
        }
        self._anything = [(j, r) for j, r in enumerate(self._single)]
        own = [i for i, d in enumerate(self.detectors) if d.category == SECRET and not d.generic]
        self._own_format = re.compile(_alternation(self.detectors, own)) if own else None
        self._own_groups = _Groups(self._own_format.groupindex, n) if self._own_format else None
        self._memo: dict[str, tuple[Finding, ...]] = {}  # text -> its findings (see the module docstring)
        self._memo_chars = 0
        self._memo_text_chars = MEMO_TEXT_CHARS if memo else -1  # memo=False: every text scanned (benchmarks)
        if warm and engine == "re2":
            self._warm()

    def _warm(self) -> None:
        """Build the DFA states `warm_text()` leads to (see the module docstring): every candidate start in it,
        as `_walk` searches for them, without the checks."""
        if not _WARM:
            _WARM.append(warm_text())
        data = _WARM[0]
        search = self._search
        s = search(data, 0)
        while s >= 0:
            s = search(data, s + 1)

    def scan(self, text: str) -> list[Finding]:
        if not text:
            return []
        memo = len(text) <= self._memo_text_chars
        if memo:
            seen = self._memo.get(text)
            if seen is not None:
                return list(seen) if seen else []
        match = self._match
        if match is not None:
            data: Any = text.encode("latin-1", "ai_router_one_byte")
            s = match(_UNANCHORED, data, 0, len(data))[0][0]
        else:
            data = text
            s = self._search(data, 0)
        found = [] if s < 0 else self._walk(text, data, s)  # most texts have no candidate at all: one call
        if memo:
            self._memo_chars += len(text)
            if self._memo_chars > MEMO_CHARS:
                self._memo.clear()
                self._memo_chars = len(text)
            self._memo[text] = tuple(found)
        return found

    def scan_from(self, text: str, data: bytes, s: int) -> list[Finding]:
        """`scan(text)` when no candidate starts before `s` (known from a pass over bytes holding the text's
        own, `data`: its Latin-1 bytes); RE2 only, no memo."""
        return self._walk(text, data, s)

    def _walk(self, text: str, data: Any, s: int) -> list[Finding]:
        """The scan loop over `data` (Latin-1 bytes for RE2, the text itself for `re`) from its first
        candidate, at `s`."""
        out: list[Finding] = []
        search = self._search
        starting = self._starting
        j = 0
        while s >= 0:
            hit = None
            # Which detector starts here: the first one in priority order that matches at `s` (the pass chose
            # it, leftmost-first); if its check fails, the ones below get their chance at the same place.
            for j, single in starting.get(text[s], self._anything):
                m = single.match(text, s)
                if m is not None:
                    hit = self._check(j, text, *m.span(), self._single_groups[j].which(m.regs)[1])
                    if hit is not None:
                        break
            if hit is None:
                s = search(data, s + 1)
                continue
            kind, hs, he = hit
            if kind != SAFE:
                if self.detectors[j].generic:
                    kind, hs, he = self._own_kind(text, kind, hs, he)
                out.append(Finding(kind, hs, he))
            s = search(data, max(s + 1, he))
        return out

    def _own_kind(self, text: str, kind: str, s: int, e: int) -> tuple[str, int, int]:
        """A secret found by its context (`api_key=sk-proj-…`) takes its provider's kind when its value is
        in that provider's own format."""
        if self._own_format is None or self._own_groups is None:
            return kind, s, e
        m = self._own_format.match(text, s)
        if m is None:
            return kind, s, e
        j, v = self._own_groups.which(m.regs)
        own = self._check(j, text, *m.span(), v)
        return own if own is not None and own[2] >= e else (kind, s, e)

    def _check(self, i: int, text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
        d = self.detectors[i]
        if s == e or (s > 0 and _touches(text[s - 1], d.before)) or (e < len(text) and _touches(text[e], d.after)):
            return None
        if d.check is None:
            return d.kind, s, e
        return d.check(text, s, e, v)


def _touches(ch: str, chars: frozenset[str]) -> bool:
    """May `ch` not stand next to the match? Letters beyond ASCII count as word characters too."""
    return ch in chars or (bool(chars) and ch > "\x7f" and ch.isalnum())
