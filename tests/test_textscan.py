"""The classifier's text scan: the compiled pass (`router/routing/_textscan.c`) gives exactly what the
pure-Python reference (`router/routing/textscan.py`) gives, on generated texts of every kind and with any
categories, indexed values, asked bytes and probes, and both give what the scan is defined to be; in CI (env
CI set, as `.ci/run` does) the compiled pass must be the one in use.
"""

from __future__ import annotations

import os
from functools import partial

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from router.routing import textscan
from router.routing.classifier import Classifier
from router.routing.signals import CODE_TOKENS
from router.routing.textscan import (
    GLUE,
    LOWER_SPACE,
    SPLIT,
    WIDE_SEPARATORS,
    WORD_SEPARATORS,
    ascii_counts_python,
    bands_python,
    fold_python,
    scan_python,
    scan_words,
    scanner,
)
from router.routing.tokens import extract

compiled = pytest.mark.skipif(not textscan.COMPILED, reason="the C extension was not built")

CLF = Classifier()
VOCAB = CLF._vocab
EXTRAS = CLF._scan_with  # what the classifier's scanner counts and reports beyond the words
_WORDS = sorted(w.decode("utf-8", "surrogatepass") for w in VOCAB)

# ASCII of every kind the scan treats apart (letters both cases, digits, "_", every separator, control
# bytes, DEL), plus non-ASCII: accented letters, letters whose lower case is ASCII (Kelvin sign) or longer
# (İ), the wide separators, non-ASCII whitespace, a lone surrogate
_ASCII = "aAbBzZqQ09_" + WORD_SEPARATORS.decode() + "\x00\x01\x08\x0e\x1b\x7f"
_WIDE = "éÉçñüßKİ" + WIDE_SEPARATORS + "\xa0\u2003\x85日本\ud800"
ascii_text = st.text(st.sampled_from(_ASCII), max_size=300) | st.lists(
    st.sampled_from(_WORDS) | st.text(st.sampled_from(_ASCII), max_size=3), max_size=80
).map(" ".join)
any_text = ascii_text | st.text(st.sampled_from(_ASCII + _WIDE), max_size=300) | st.text(max_size=200)
vocabularies = st.frozensets(st.text(st.sampled_from("abcAB_0.é"), min_size=1, max_size=4).map(
    lambda w: w.encode("utf-8", "surrogatepass")), max_size=30)
_PROBE_BYTES = "abcAB_0. \n,(){}=N"
probes = st.lists(st.text(st.sampled_from(_PROBE_BYTES), min_size=1, max_size=3).map(str.encode), max_size=8)
asked = st.binary(max_size=12)


@st.composite
def scanners(draw: st.DrawFn) -> tuple[frozenset[bytes], dict]:
    """A vocabulary and the extras of a scanner over it: categories (repeats too), indexed values, asked
    bytes, probes."""
    vocab = draw(vocabularies)
    size = 6 if vocab else 0
    words = st.sampled_from(sorted(vocab)) if vocab else st.nothing()
    counted = draw(st.lists(st.lists(words, max_size=size), max_size=5))
    indexed = draw(st.lists(st.dictionaries(words, st.integers() | st.tuples(st.integers()), max_size=size),
                            max_size=3))
    return vocab, {"counted": counted, "indexed": indexed, "asked": draw(asked), "probes": draw(probes)}


def _definition(vocab: frozenset[bytes], text: str, counted: list = (), indexed: list = (), asked: bytes = b"",
                probes: list = ()) -> tuple:
    """What `scan` is documented to return, written the plain way."""
    lowered = text.lower()
    words = {w.encode("utf-8", "surrogatepass") for w in lowered.translate(SPLIT).split()}
    hits = vocab & words
    marks = lowered.encode("utf-8", "surrogatepass").translate(None, LOWER_SPACE)
    plain = text.isascii() and all(c.isalnum() or c == "_" or ord(c) in WORD_SEPARATORS for c in text)
    counts = tuple(len(set(c) & hits) for c in counted)
    found = tuple(tuple(d[k] for k in sorted(d) if k in hits) for d in indexed)
    present = bytes(sorted(set(marks) & set(asked)))
    probed = min(2, sum(p.decode() in text for p in probes))
    return (lowered, hits, marks, text.count(" "), text.count(". ") + text.count(".\n"), plain, counts, found,
            present, probed)


@settings(max_examples=400, deadline=None)
@given(any_text)
def test_scan_matches_its_definition_and_the_python_reference(text: str) -> None:
    assert scan_python(VOCAB, text) == _definition(VOCAB, text)
    expected = _definition(VOCAB, text, **EXTRAS)
    assert scanner(VOCAB, compiled=False, **EXTRAS)(text) == expected
    assert CLF._text(text) == expected


@settings(max_examples=200, deadline=None)
@given(vocabularies, st.text(st.sampled_from("abcAB_0. \n,é"), max_size=60))
def test_scan_with_any_vocabulary(vocab: frozenset[bytes], text: str) -> None:
    assert scanner(vocab)(text) == scanner(vocab, compiled=False)(text) == _definition(vocab, text)


@settings(max_examples=400, deadline=None)
@given(scanners(), st.text(st.sampled_from("abcAB_0. \n,(){}=Né\x00"), max_size=80) | any_text)
def test_scan_with_any_extras(made: tuple[frozenset[bytes], dict], text: str) -> None:
    """Counted categories (a word in several, or repeated in one), indexed values, asked bytes and probes:
    compiled == Python == the definition."""
    vocab, extras = made
    expected = _definition(vocab, text, **extras)
    assert scanner(vocab, compiled=False, **extras)(text) == expected
    assert scanner(vocab, **extras)(text) == expected


@pytest.mark.parametrize("compiled", [True, False])
def test_extras_name_vocabulary_words_and_ascii_probes(compiled: bool) -> None:
    vocab = [b"alpha", b"beta"]
    with pytest.raises(ValueError, match="vocabulary"):
        scanner(vocab, compiled, counted=[[b"alpha", b"gamma"]])
    with pytest.raises(ValueError, match="vocabulary"):
        scanner(vocab, compiled, indexed=[{b"gamma": 1}])
    with pytest.raises(ValueError, match="ASCII"):
        scanner(vocab, compiled, probes=["é".encode()])
    with pytest.raises(ValueError, match="ASCII"):
        scanner(vocab, compiled, probes=[b""])


def test_code_probes_count_what_two_code_tokens_need() -> None:
    """`probed` says 0, 1 or 2+ of CODE_TOKENS occur: the classifier's code_tokens signal needs two."""
    for text, n in [("plain prose.", 0), ("x = None", 1), ("f() is None", 2), ("a_b", 1), ("self.x[0]", 2),
                    ("Nonetheless", 1), ("nullable", 1), ("€ self.", 1)]:
        assert CLF._text(text)[9] == n == min(2, sum(t in text for t in CODE_TOKENS)), text


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_ascii_counts_match(text: str) -> None:
    expected = None
    if text.isascii():
        nl = text.count("\n")
        expected = (text.count(" "), nl, sum(c.isdigit() for c in text))
    assert ascii_counts_python(text) == expected
    assert textscan.ascii_counts(text) == expected


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_fold_matches(text: str) -> None:
    expected = None
    if text.isascii():
        expected = bytes(c for c in text.lower().encode() if c not in b" \t\n\r\x0b\x0c")
    assert fold_python(text) == expected
    assert textscan.fold(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(any_text | st.sampled_from(["", "a " * 16384, "a " * 16385, "dense" * 40, "1\n2 3"]), max_size=4))
def test_bands_match_and_estimate_the_same(texts: list[str]) -> None:
    """`bands` (compiled) = `bands_python` (the reference), and `estimate` with them = its general loop."""
    from router.routing import tokens

    expected = bands_python(texts, tokens._BAND_PARAMS)
    assert repr(textscan.bands(texts, tokens._BAND_PARAMS)) == repr(expected)  # the same floats
    if any(t and (not t.isascii() or len(t) > tokens.SAMPLED_CHARS) for t in texts):
        assert expected is None
    prompt = tokens.Prompt(texts=texts, overhead=7)
    general = tokens.bands
    try:
        tokens.bands = lambda _texts, _params: None  # the loop `estimate` falls back to
        loop = tokens.estimate(prompt)
    finally:
        tokens.bands = general
    assert tokens.estimate(prompt) == loop


@pytest.mark.parametrize("text", [
    "", " ", ".", ". ", ".\n", "a", "A", "_", "\x1c", "\x0b\x0c", "x" * 5000, ("Word. " * 4000) + "end.",
    "ab" * 3000 + " the", "the " * 10000, "\n".join(["def f(x):", "    return x.y  # 10%"] * 500),
    "Café. Naïve « quoted » ¿Qué? 日本語", "K and İ", "\ud800 lone",
    "how to write a python function " * 3000, "def f(): return None  # self.x[0] && y != z " * 2000,
    "None", "null", "()", "self", "self.", "{" * 10000, "x" * 100_000 + " None()",
])
def test_edge_texts(text: str) -> None:
    expected = _definition(VOCAB, text, **EXTRAS)
    assert CLF._text(text) == expected
    assert scanner(VOCAB, compiled=False, **EXTRAS)(text) == expected
    assert scanner(VOCAB, compiled=False)(text) == (*expected[:6], (), (), b"", 0)
    assert textscan.ascii_counts(text) == ascii_counts_python(text)
    assert textscan.fold(text) == fold_python(text)
    assert textscan.bands([text, text], (0.2, -0.1, 0.5, 0.5, 0.55, 1.7, 3.0, 0.3, 0.12, 0.8, 32768.0)) == (
        bands_python([text, text], (0.2, -0.1, 0.5, 0.5, 0.55, 1.7, 3.0, 0.3, 0.12, 0.8, 32768.0)))


@compiled
def test_hits_are_the_vocabularys_own_objects_and_nothing_leaks() -> None:
    import sys

    from router.routing import _textscan  # type: ignore[attr-defined]

    vocab = frozenset([b"alpha", b"beta", b"gamma"])
    values = [object(), ["a list"], (1, 2)]
    probe = b"(x)"
    objects = [*sorted(vocab), *values, probe]
    before = [sys.getrefcount(o) for o in objects]
    indexed = [{b"alpha": values[0], b"gamma": values[1]}, {b"beta": values[2]}]
    scanner = _textscan.Scanner(vocab, WORD_SEPARATORS, None, b"", [[b"alpha", b"beta"]], indexed, b",!", [probe])
    scan = scanner.scan
    del indexed
    own = {id(w) for w in vocab}
    refs = [sys.getrefcount(o) for o in objects]
    for _ in range(1000):
        _lowered, hits, _marks, _spaces, _stops, _plain, counts, found, present, probed = scan(
            "Alpha beta, alpha! GAMMA delta (x)")
        assert hits == vocab
        assert {id(w) for w in hits} <= own
        assert (counts, present, probed) == ((2,), b"!,", 1)
        assert [v for row in found for v in row] == values
        assert all(v is w for v, w in zip((*found[0], *found[1]), values, strict=True))
    del hits, found
    assert [sys.getrefcount(o) for o in objects] == refs
    assert scan("ünïcode alpha") is None  # no fallback: non-ASCII text is not its job
    del scan, scanner  # the scanner drops every reference it held
    assert [sys.getrefcount(o) for o in objects] == before
    # the same counting for a text that is not ASCII: the fallback's words, the rest counted in C
    other = _textscan.Scanner(vocab, WORD_SEPARATORS, partial(scan_words, vocab), b"", [[b"alpha", b"beta"]],
                              [{b"alpha": values[0], b"gamma": values[1]}, {b"beta": values[2]}], b",!", [probe])
    refs = [sys.getrefcount(o) for o in objects]
    for _ in range(1000):
        _lowered, hits, _marks, _spaces, _stops, _plain, counts, found, present, probed = other.scan(
            "Älpha beta, alpha! GAMMA delta (x)")
        assert hits == vocab  # "älpha" is not "alpha": the second one is
        assert (counts, present, probed) == ((2,), b"!,", 1)
        assert [v for row in found for v in row] == values
    del hits, found, other
    assert [sys.getrefcount(o) for o in objects] == before


@compiled
def test_scanner_refuses_what_it_cannot_scan_by() -> None:
    from router.routing import _textscan  # type: ignore[attr-defined]

    with pytest.raises(TypeError):
        _textscan.Scanner(["text"], WORD_SEPARATORS, None)
    with pytest.raises(TypeError):
        _textscan.Scanner([b"x"], WORD_SEPARATORS, "not callable")
    with pytest.raises(ValueError, match="separators"):
        _textscan.Scanner([b"x"], b",;", None)
    with pytest.raises(TypeError):
        _textscan.Scanner([b"x"], WORD_SEPARATORS, None).scan(b"bytes")
    with pytest.raises(TypeError):
        _textscan.ascii_counts(b"bytes")
    with pytest.raises(TypeError):
        _textscan.fold(b"bytes")
    with pytest.raises(TypeError, match="dicts"):
        _textscan.Scanner([b"x"], WORD_SEPARATORS, None, b"", [], [[b"x"]])
    with pytest.raises(TypeError, match="bytes"):
        _textscan.Scanner([b"x"], WORD_SEPARATORS, None, b"", [["x"]])
    with pytest.raises(TypeError, match="probes"):
        _textscan.Scanner([b"x"], WORD_SEPARATORS, None, b"", [], [], b"", ["str"])
    with pytest.raises(TypeError, match="fallback must return"):
        _textscan.Scanner([b"x"], WORD_SEPARATORS, partial(scan_python, frozenset([b"x"]))).scan("é")


@compiled
def test_a_refused_scanner_keeps_no_reference() -> None:
    import sys

    from router.routing import _textscan  # type: ignore[attr-defined]

    word, value = b"alpha", object()
    category, index = [word], {word: value}
    objects = (word, value, category, index)
    refs = [sys.getrefcount(o) for o in objects]
    bad = [([[word, b"other"]], [index]), ([category], [{b"other": value}]), ([category], [index], b"", ["str"]),
           ([category], [index], b"", [b"\xff"]), ([category], [index, [word]])]
    for _ in range(200):
        for extras in bad:
            with pytest.raises((TypeError, ValueError)):
                _textscan.Scanner([word], WORD_SEPARATORS, None, b"", *extras)
    del extras, bad
    assert [sys.getrefcount(o) for o in objects] == refs


@compiled
def test_the_compiled_module_is_the_api_the_python_code_expects() -> None:
    from router.routing import _textscan

    assert _textscan.API == textscan.API


def test_compiled_scan_is_in_use_in_ci() -> None:
    """CI builds the extension (gcc is there): a build that silently fell back to Python fails here."""
    if not os.environ.get("CI"):
        pytest.skip("outside CI the extension is optional")
    assert textscan.COMPILED, "router/routing/_textscan.c was not compiled (pip install -e . with gcc)"
    assert type(CLF._text).__name__ == "builtin_function_or_method"


@settings(max_examples=150, deadline=None)
@given(any_text, st.sampled_from(["chat", "completions"]))
def test_the_classifier_decides_the_same_on_either_path(text: str, endpoint: str) -> None:
    python = Classifier()
    python._text = scanner(python._vocab, compiled=False, **python._scan_with)
    python._context_evidence = python._context  # no memo shared with the compiled classifier
    body = {"messages": [{"role": "system", "content": text[:50]}, {"role": "user", "content": text}]}
    p = extract("chat", body)
    assert CLF.analyse(p, 300, endpoint) == python.analyse(p, 300, endpoint)
    assert CLF.layer_features(p) == python.layer_features(p)


def test_glue_is_what_is_neither_a_word_character_nor_a_separator() -> None:
    for c in range(128):
        word = chr(c).isalnum() or chr(c) == "_"
        assert (c in GLUE) == (not word and c not in WORD_SEPARATORS)
    assert _definition(VOCAB, "a\x00b")[5] is False
    assert CLF._text("a\x00b")[5] is False
    assert CLF._text("plain text, 500-word essay.")[5] is True
    assert CLF._text("café")[5] is False  # not ASCII: never plain


_PHRASES = sorted(k for entries in CLF._phrases.values() for _b, k, _rx, _w in entries)
_GLUED = "\x00\x01\x1b\x7f"
# keyword phrases and WORD_COUNT's "500-word" among words, separators and glue bytes, joined with nothing or a space
phrase_text = st.lists(
    st.sampled_from(_PHRASES) | st.sampled_from(["500-word", "1000 words", "word", "words"]) | st.sampled_from(_WORDS)
    | st.text(st.sampled_from(_ASCII + _GLUED), max_size=3),
    max_size=30,
).flatmap(lambda parts: st.sampled_from(["", " "]).map(lambda sep: sep.join(parts)))


@settings(max_examples=300, deadline=None)
@given(phrase_text | any_text)
@example("read each line\x00 twice")  # the phrase matches, its last word is glued to a control byte
@example("Write me a story, 500-word\x01")  # compose, and the word count alone makes it long_form
def test_the_plain_gates_change_no_result(text: str) -> None:
    """A phrase missing one of its vocabulary words, or no "word"/"words" among the hits, is not searched for in a
    plain text: the same features, base and keyword counts as searching every time (the scan says not plain)."""
    searching = Classifier()  # phrases with no words to check, and every text taken as not plain
    searching._phrases = {w: [(*e[:3], frozenset()) for e in entries] for w, entries in searching._phrases.items()}
    scan = searching._scan

    def scan_searching(t: str) -> tuple:
        lowered, hits, *rest = scan(t)[:8]  # and "word" among the hits: the word count is always searched for
        return (lowered, hits | {b"word", b"words"}, *rest, False)

    searching._scan = scan_searching  # type: ignore[method-assign]
    assert CLF._scan(text)[5] == searching._scan(text)[5]
    p = extract("chat", {"messages": [{"role": "user", "content": text}]})
    assert CLF.analyse(p, 300, "chat") == searching.analyse(p, 300, "chat")
