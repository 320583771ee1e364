"""Run the labelled routing cases through classify + route and report task, complexity and tier agreement.

Run: python -m bench.routing_report [--cases tests/data/routing_cases.yaml] [--config config/router.yaml] [-v]

Each case (see the header of the cases file) becomes a request body; the shipped config's backends are
stood in for by idle `Backend` objects (all healthy, no latency), so the tier is the policy's pure choice.
`tests/test_routing_cases.py` asserts the accuracy floors on the same functions.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from backends.base import Backend
from bench.eval_classifier import confusion_table
from middleware.classify import build_analyzer
from router.catalog import Catalog
from router.config import Config, load
from router.context import Context
from router.exchange import Exchange
from router.routing.policy import Policy

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CASES = ROOT / "tests" / "data" / "routing_cases.yaml"
DEFAULT_CONFIG = ROOT / "config" / "router.yaml"
IMAGE_PART = {"type": "image_url", "image_url": {"url": "https://example.com/photo.jpg", "detail": "low"}}


def context_for(config: Config) -> Context:
    backends = {b.name: Backend(b) for b in config.backends}
    return Context(config=config, backends=backends, catalog=Catalog(config, backends))


def tool_def(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name.replace('_', ' ')}.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "input"}}},
        },
    }


def case_body(case: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions body a case describes."""
    text = case["prompt"].rstrip("\n")
    if case.get("doc"):
        text += "\n\n" + case["doc"] * int(case.get("repeat", 1))
    messages: list[dict[str, Any]] = []
    if case.get("system"):
        messages.append({"role": "system", "content": case["system"]})
    messages += [{"role": r, "content": t} for r, t in case.get("history", [])]
    content: Any = [{"type": "text", "text": text}, IMAGE_PART] if case.get("image") else text
    messages.append({"role": "user", "content": content})
    body: dict[str, Any] = {"model": case.get("model", "auto"), "messages": messages}
    if case.get("tools"):
        body["tools"] = [tool_def(n) for n in case["tools"]]
    if case.get("json"):
        body["response_format"] = {"type": "json_object"}
    if case.get("max_tokens"):
        body["max_tokens"] = case["max_tokens"]
    return body


@dataclass(slots=True)
class Outcome:
    id: str
    expect: dict[str, str]
    task: str
    complexity: str
    tier: str | None
    confidence: float
    tokens: int
    signals: list[str]
    reasons: list[str]


def load_cases(path: Path | str = DEFAULT_CASES) -> list[dict[str, Any]]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def evaluate(cases: list[dict[str, Any]], config: Config) -> list[Outcome]:
    ctx = context_for(config)
    analyzer = build_analyzer(ctx)
    policy: Policy = analyzer.policy
    out = []
    for case in cases:
        ex = Exchange("case-" + case["id"], case.get("endpoint", "chat"), case_body(case), None, {})
        f, _ = analyzer.features(ex)
        d = policy.decide(f, endpoint=ex.endpoint, model=ex.client_model, headers=ex.headers)
        out.append(
            Outcome(case["id"], case["expect"], f.task, f.complexity, d.primary.tier, f.confidence, f.tokens,
                    f.signals, d.reasons)
        )
    return out


def rate(outcomes: list[Outcome], key: str) -> float:
    return sum(getattr(o, key) == o.expect[key] for o in outcomes) / len(outcomes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=str(DEFAULT_CASES))
    ap.add_argument("--config", default=str(DEFAULT_CONFIG))
    ap.add_argument("-v", "--verbose", action="store_true", help="print every disagreement")
    args = ap.parse_args(argv)
    outcomes = evaluate(load_cases(args.cases), load(args.config))
    if args.verbose:
        for o in outcomes:
            bad = [k for k in ("task", "complexity", "tier") if getattr(o, k) != o.expect[k]]
            if bad:
                got = {k: getattr(o, k) for k in bad}
                want = {k: o.expect[k] for k in bad}
                print(f"{o.id}: got {got} want {want} conf={o.confidence} tokens={o.tokens} {o.signals[:6]}")
        print()
    n = len(outcomes)
    for key in ("task", "complexity", "tier"):
        print(f"{key} agreement: {rate(outcomes, key):.1%} of {n}")
        print(confusion_table([(o.expect[key], getattr(o, key) or "-") for o in outcomes]))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
