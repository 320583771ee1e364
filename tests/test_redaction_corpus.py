"""The scanner against the labelled corpus (tests/data/redaction_corpus/, made by its generate.py): recall
>= 99% on structured secrets and >= 95% on PII, and at most 1% of hard negatives with any finding.
`python -m bench.redaction_corpus` prints the same per kind. Also: each detector's `finder` (the RE2 pass's
stand-in for its pattern) matches wherever the pattern does."""

from __future__ import annotations

import json
import random
import re

import re2

import router.redaction.scanner  # noqa: F401  (registers the one-byte codec error handler)
from bench.redaction_corpus import DEFAULT_DIR as CORPUS
from bench.redaction_corpus import pii_kinds, score, structured_kinds
from router.redaction.detectors import DETECTORS


def test_corpus_recall_and_false_positives() -> None:
    s = score()
    assert s.recall(structured_kinds()) >= 0.99, s.misses[:10]
    assert s.recall(pii_kinds()) >= 0.95, s.misses[:10]
    assert s.fp_rate <= 0.01, s.flagged[:10]
    assert s.negatives >= 500
    assert all(s.found[k] for k in structured_kinds() | pii_kinds()), "every kind has positives"


def _texts() -> list[str]:
    """The corpus's texts, and digit groups with separators in many shapes (where the finders differ)."""
    rows = [json.loads(line)["text"] for name in ("positives.jsonl", "negatives.jsonl")
            for line in (CORPUS / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    rnd = random.Random(9)
    for _ in range(3000):
        rows.append("".join(rnd.choice("0123456789" * 4 + " .-+()/:x") for _ in range(rnd.randint(8, 40))))
    return rows


def test_finders_match_wherever_their_patterns_do() -> None:
    """A detector's `finder` (what the RE2 pass looks for in its place) must match from every start its
    pattern matches from, or the pass would skip a candidate."""
    pairs = [(re.compile(d.pattern), d.finder) for d in DETECTORS if d.finder]
    assert pairs
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    texts = _texts()
    for pattern, finder in pairs:
        rx = re2.compile(f"(?:{finder})".encode("latin-1"), options)
        for text in texts:
            data = text.encode("latin-1", "ai_router_one_byte")
            for s in range(len(text)):
                if pattern.match(text, s) and not rx.match(data, s):
                    raise AssertionError(f"{finder!r} misses the match of {pattern.pattern!r} at {s} in {text!r}")


def test_a_warmed_scanner_finds_what_a_cold_one_does() -> None:
    """`Scanner` walks `warm_text()` once to build RE2's DFA states up front: a cache, so the findings of every
    text (the corpus, the warm text's own ids) are those of a scanner that skipped it."""
    from router.redaction.scanner import Scanner, warm_text

    assert warm_text(50) == warm_text(50)  # the same bytes every time
    cold, warm = Scanner(warm=False, memo=False), Scanner(memo=False)
    for text in [*_texts(), *warm_text(300).decode("latin-1").split(". ")]:
        assert warm.scan(text) == cold.scan(text), text
