"""Precision and recall of the redaction scanner per kind, on a labelled corpus.

    .venv/bin/python -m bench.redaction_corpus [DIR]     # default tests/data/redaction_corpus

DIR holds `positives.jsonl` ({"text", "labels": [{"kind", "value"}]}) and `negatives.jsonl` ({"text"}:
nothing in it may be found). A label counts as found when a finding overlaps its value: with the same
kind, or, for a secret, with any secret kind (it is redacted either way). A finding that overlaps no
label is a false positive. Prints one line per kind and the totals the test suite holds to:
recall >= 99% on structured secrets, >= 95% on PII, <= 1% of negatives with any finding.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from router.redaction import Scanner
from router.redaction.detectors import KINDS, SECRET

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / "tests" / "data" / "redaction_corpus"
GENERIC = {"PASSWORD", "SECRET", "TOKEN"}  # found by context, not by a provider's format


@dataclass
class Score:
    found: Counter[str] = field(default_factory=Counter)
    missed: Counter[str] = field(default_factory=Counter)
    false_pos: Counter[str] = field(default_factory=Counter)
    true_pos: Counter[str] = field(default_factory=Counter)
    negatives: int = 0
    negatives_flagged: int = 0
    misses: list[tuple[str, str, str]] = field(default_factory=list)
    flagged: list[tuple[str, str]] = field(default_factory=list)

    def recall(self, kinds: set[str]) -> float:
        f = sum(self.found[k] for k in kinds)
        m = sum(self.missed[k] for k in kinds)
        return f / (f + m) if f + m else 1.0

    def precision(self, kind: str) -> float:
        tp, fp = self.true_pos[kind], self.false_pos[kind]
        return tp / (tp + fp) if tp + fp else 1.0

    @property
    def fp_rate(self) -> float:
        return self.negatives_flagged / self.negatives if self.negatives else 0.0


def _load(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _same(label_kind: str, kind: str) -> bool:
    return kind == label_kind or (KINDS.get(label_kind) == SECRET and KINDS.get(kind) == SECRET)


def score(directory: Path = DEFAULT_DIR, scanner: Scanner | None = None) -> Score:
    scanner = scanner or Scanner()
    s = Score()
    for row in _load(directory / "positives.jsonl"):
        text = row["text"]
        findings = scanner.scan(text)
        used: set[int] = set()
        for label in row["labels"]:
            start = text.find(label["value"])
            end = start + len(label["value"])
            hit = next((i for i, f in enumerate(findings)
                        if f.start < end and f.end > start and _same(label["kind"], f.kind)), None)
            if hit is None:
                s.missed[label["kind"]] += 1
                s.misses.append((label["kind"], label["value"][:60], text[:100]))
            else:
                s.found[label["kind"]] += 1
                used.add(hit)
        for i, f in enumerate(findings):
            if i in used:
                s.true_pos[f.kind] += 1
            elif not any(f.start < text.find(lb["value"]) + len(lb["value"]) and f.end > text.find(lb["value"])
                         for lb in row["labels"]):
                s.false_pos[f.kind] += 1
                s.flagged.append((f.kind, text[f.start:f.end][:60]))
    for row in _load(directory / "negatives.jsonl"):
        text = row["text"]
        findings = scanner.scan(text)
        s.negatives += 1
        if findings:
            s.negatives_flagged += 1
            for f in findings:
                s.false_pos[f.kind] += 1
                s.flagged.append((f.kind, text[f.start:f.end][:60]))
    return s


def structured_kinds() -> set[str]:
    return {k for k, cat in KINDS.items() if cat == SECRET and k not in GENERIC}


def pii_kinds() -> set[str]:
    return {k for k, cat in KINDS.items() if cat != SECRET}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else DEFAULT_DIR
    s = score(directory)
    print(f"{'kind':16} {'labels':>6} {'recall':>7} {'precision':>9}")
    for kind in sorted(set(s.found) | set(s.missed) | set(s.false_pos)):
        n = s.found[kind] + s.missed[kind]
        print(f"{kind:16} {n:6d} {s.recall({kind}):7.1%} {s.precision(kind):9.1%}")
    print(f"structured secrets recall {s.recall(structured_kinds()):.2%} (>= 99%), "
          f"generic secrets recall {s.recall(GENERIC):.2%}, PII recall {s.recall(pii_kinds()):.2%} (>= 95%)")
    print(f"negatives with a finding: {s.negatives_flagged}/{s.negatives} = {s.fp_rate:.2%} (<= 1%)")
    for kind, value, text in s.misses[:15]:
        print(f"  missed {kind}: {value!r} in {text!r}")
    for kind, value in s.flagged[:15]:
        print(f"  false positive {kind}: {value!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
