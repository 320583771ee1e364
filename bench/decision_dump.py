"""Dump every routing decision over the project's prompt sets, to prove a mechanics change decides nothing new.

Run: python -m bench.decision_dump OUT.txt [--quick]

Each prompt of `../shared/datasets/public_prompts.jsonl`, the outcome tables in `../shared/datasets/outcomes/`,
the hand-written sets in `tests/data/*.yaml` and the texts of the redaction corpus goes through classify + route
of the shipped config (idle backends, as `bench.routing_report` does), and again under a config with
configured `routing.tasks` (a new class with keywords and patterns, extra keywords and patterns on a built-in,
a replaced class), so the configured-signal paths are covered too. One line per prompt and config: the
features (task, complexity, difficulty and confidence as full reprs, tokens, signals, ...), the size-free
difficulty base, the decision's reasons and candidate chain. Two trees that decide identically write
byte-identical files: `cmp before.txt after.txt`. To dump another checkout's decisions, run this file with that
checkout first on the path: `PYTHONPATH=/path/to/other python bench/decision_dump.py other.txt`.
`--quick` reads the first 2,000 rows of the MMLU table only.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bench.outcomes import PUBLIC_PROMPTS, body_of, rows, tables
from bench.routing_report import DEFAULT_CONFIG, ROOT, case_body, context_for
from middleware.classify import build_analyzer
from router.config import Config, load
from router.exchange import Exchange

DATA = ROOT / "tests" / "data"  # of the checkout whose `bench` package runs
# configured classes, as an operator writes them (each path of `routing.tasks` the classifier has)
TASKS = {
    "legal": {"keywords": ["contract", "clause", "indemnify", "governing law"], "weak_keywords": ["party"],
              "patterns": [r"^\s*section \d+", r"\bhereby\b"], "weight": 1.5},
    "code": {"keywords": ["terraform", "pull request"], "weak_keywords": ["pipeline"],
             "patterns": [r'^\s*resource "\w+"']},
    "docs": {"replace": True, "keywords": ["summarize", "translate"], "patterns": [r"^memo:"]},
}


def bodies(quick: bool = False) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(id, endpoint, request body) of every prompt of the sets."""
    for r in rows(PUBLIC_PROMPTS):
        yield "public:" + r["id"], "chat", body_of(r.get("messages") or r["prompt"])
    for path in tables():
        items = rows(path)
        if quick and path.name == "mmlu.jsonl":
            items = items[:2000]
        for r in items:
            yield f"{path.stem}:{r['id']}", "chat", body_of(r["prompt"])
    for path in sorted(DATA.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8")):
            yield f"{path.stem}:{case['id']}", case.get("endpoint", "chat"), case_body(case)
    for path in sorted((DATA / "redaction_corpus").glob("*.jsonl")):
        for i, r in enumerate(rows(path)):
            yield f"{path.stem}:{i}", "chat", body_of(r["text"])


def dump(config: Config, label: str, quick: bool, out: Any) -> int:
    """Write one line per prompt under `config`; the number of lines."""
    analyzer = build_analyzer(context_for(config))
    policy = analyzer.policy
    n = 0
    for rid, endpoint, body in bodies(quick):
        ex = Exchange("dump", endpoint, body, None, {})
        f, prompt = analyzer.features(ex)
        base = None if endpoint == "embeddings" else analyzer.classifier.analyse(prompt, f.tokens, endpoint)[1]
        d = policy.decide(f, endpoint=endpoint, model=ex.client_model, headers={})
        chain = [(c.model.id, c.backend.name, c.tier) for c in d.candidates]
        out.write(f"{label}\t{rid}\t{f!r}\t{base!r}\t{d.rule!r}\t{d.reasons!r}\t{chain!r}\n")
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--quick", action="store_true", help="only the first 2,000 MMLU rows")
    a = ap.parse_args(argv)
    shipped = load(DEFAULT_CONFIG)
    configured = copy.deepcopy(shipped)
    configured.routing.tasks = TASKS
    with a.out.open("w", encoding="utf-8") as out:
        n = dump(shipped, "shipped", a.quick, out)
        n += dump(configured, "tasks", a.quick, out)
    print(f"{n} decisions -> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
