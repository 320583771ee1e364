"""The scanner against the labelled corpus (tests/data/redaction_corpus/, made by its generate.py): recall
>= 99% on structured secrets and >= 95% on PII, and at most 1% of hard negatives with any finding.
`python -m bench.redaction_corpus` prints the same per kind."""

from __future__ import annotations

from bench.redaction_corpus import pii_kinds, score, structured_kinds


def test_corpus_recall_and_false_positives() -> None:
    s = score()
    assert s.recall(structured_kinds()) >= 0.99, s.misses[:10]
    assert s.recall(pii_kinds()) >= 0.95, s.misses[:10]
    assert s.fp_rate <= 0.01, s.flagged[:10]
    assert s.negatives >= 500
    assert all(s.found[k] for k in structured_kinds() | pii_kinds()), "every kind has positives"
