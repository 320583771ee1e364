"""The public outcome tables (../shared/datasets/outcomes/) and their scorer, read in place, never copied.

`scorer()` imports `score_outcomes.py` from its path; `tables()` lists the outcome files; `rows(path)` reads
one. `route_rows` runs prompts through the shipped config's classify + route (idle backends) and returns
each prompt's difficulty and whether it went to a cloud model. Used by `bench.routing_quality` and
`bench.train_difficulty`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from bench.routing_report import DEFAULT_CONFIG, context_for
from middleware.classify import build_analyzer
from router.config import Config, load
from router.exchange import Exchange

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AI_ROUTER_SHARED", ROOT.parent / "shared")).resolve()
if not (SHARED / "datasets").is_dir():  # a worktree under /work/wt/NAME: the shared folder is /work/shared
    SHARED = Path("/work/shared")
DATASETS = SHARED / "datasets"
OUTCOMES = DATASETS / "outcomes"
PUBLIC_PROMPTS = DATASETS / "public_prompts.jsonl"
TABLES = ("gsm8k.jsonl", "mmlu.jsonl", "alpacaeval.jsonl")


def scorer() -> ModuleType:
    """`score_outcomes.py`, imported from the shared folder by path."""
    path = OUTCOMES / "score_outcomes.py"
    spec = importlib.util.spec_from_file_location("score_outcomes", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("score_outcomes", mod)
    spec.loader.exec_module(mod)
    return mod


def tables(names: Iterable[str] = TABLES) -> list[Path]:
    return [OUTCOMES / n for n in names if (OUTCOMES / n).is_file()]


def rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def body_of(prompt: str | list[dict[str, Any]]) -> dict[str, Any]:
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return {"model": "auto", "messages": messages}


class Router:
    """classify + route of one config over idle backends: (difficulty, goes to cloud?, features) per body."""

    def __init__(self, config: Config | None = None, learned: bool | None = None) -> None:
        self.config = config or load(DEFAULT_CONFIG)
        if learned is not None:  # with or without the learned layer of the difficulty score
            self.config.routing.learned_difficulty = learned
        ctx = context_for(self.config)
        self.analyzer = build_analyzer(ctx)
        self.policy = self.analyzer.policy

    def route(self, body: dict[str, Any]) -> tuple[float, bool, Any]:
        ex = Exchange("q", "chat", body, None, {})
        f, _ = self.analyzer.features(ex)
        d = self.policy.decide(f, endpoint="chat", model="auto", headers={})
        return f.difficulty, d.primary.model.location == "cloud", f


def route_rows(router: Router, items: list[dict[str, Any]], label: str = "") -> Iterator[tuple[float, bool, Any]]:
    """Route each row's prompt, with a progress line on stderr for big tables."""
    n = len(items)
    step = max(1, n // 20)
    for i, r in enumerate(items, 1):
        yield router.route(body_of(r.get("messages") or r["prompt"]))
        if n >= 2000 and (i % step == 0 or i == n):
            print(f"\r  {label} {i}/{n}", end="" if i < n else "\n", file=sys.stderr, flush=True)
