"""Evaluate the classifier's task accuracy on a labelled prompt set and print a confusion matrix.

Run: python -m bench.eval_classifier [--data /work/shared/datasets/public_prompts.jsonl] [--config FILE] [-v]

The default data is the public evaluation set (HumanEval, GSM8K, Dolly; see its README). It is used for
measurement only: nothing in the classifier is derived from its prompts.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import orjson

from router.routing.classifier import Classifier
from router.routing.tokens import count, extract

DEFAULT_DATA = "/work/shared/datasets/public_prompts.jsonl"


def confusion_table(pairs: list[tuple[str, str]], labels: list[str] | None = None) -> str:
    """A text confusion matrix: rows are expected labels, columns predicted."""
    labels = labels or sorted({e for e, _ in pairs} | {p for _, p in pairs})
    cells = Counter(pairs)
    width = max(8, *(len(x) for x in labels))
    head = "expected \\ got".ljust(16) + "".join(lb.rjust(width) for lb in labels) + "  recall".rjust(9)
    lines = [head]
    for e in labels:
        row_total = sum(cells[(e, p)] for p in labels)
        recall = cells[(e, e)] / row_total if row_total else 0.0
        lines.append(e.ljust(16) + "".join(str(cells[(e, p)]).rjust(width) for p in labels) + f"{recall:9.0%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--config", default=None, help="router config whose routing.tasks to use")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every miss")
    args = ap.parse_args(argv)
    tasks = None
    if args.config:
        from router.config import load

        tasks = load(args.config).routing.tasks
    clf = Classifier(tasks)
    pairs: list[tuple[str, str]] = []
    by_source: Counter[tuple[str, bool]] = Counter()
    for line in Path(args.data).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = orjson.loads(line)
        prompt = extract("chat", {"messages": row["messages"]})
        f = clf.classify(prompt, count(prompt).tokens)
        pairs.append((row["task"], f.task))
        by_source[(row.get("source_category", "?"), f.task == row["task"])] += 1
        if args.verbose and f.task != row["task"]:
            text = row["messages"][-1]["content"][:100].replace("\n", " ")
            print(f"MISS {row['id']}: expected {row['task']}, got {f.task} ({f.confidence}) {f.signals[:5]} | {text}")
    correct = sum(e == p for e, p in pairs)
    print(f"task accuracy: {correct}/{len(pairs)} = {correct / len(pairs):.1%}\n")
    print(confusion_table(pairs))
    print("\nby source:")
    for src in sorted({s for s, _ in by_source}):
        ok, bad = by_source[(src, True)], by_source[(src, False)]
        print(f"  {src:24} {ok}/{ok + bad}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
