"""Per-stage microbenchmark: µs per request spent in each pipeline stage, at 300, 2k and 20k prompt tokens.

No sockets: the stages are built exactly as the server builds them (`router.pipeline.load_stage`, with the
benchmark's `full` router config) over a fake backend that answers a canned completion, and chained in
list order. Each link is timed around the stage's `handle`; a stage's *self* time is its time minus the
time spent in the rest of the chain below it, so every stage is measured in its real context (classify
before route, auth before budget). The first entry, a no-op `Stage`, shows the timing harness's own cost.
A stage that fails to import or build is listed with the reason and skipped; an inactive one (nothing
configured, or not implemented yet) is listed as such, since the server leaves it out of the chain.

To benchmark another stage, add one line to `BENCH_STAGES` (a built-in name or "module:Class").

    python -m bench.stages [--iterations 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from backends.base import Backend
from bench.mock_upstream import json_body
from bench.targets import BENCH_KEY, CONCRETE_MODEL, KEY_ENV, PROMPT, router_config
from router.catalog import Catalog
from router.config import parse
from router.context import Context
from router.exchange import Candidate, Exchange, Reply
from router.pipeline import BUILTIN_STAGES, load_stage

BENCH_STAGES: list[str] = [
    "router.pipeline:Stage",  # no-op: the harness's own cost per link
    *BUILTIN_STAGES,  # auth, ratelimit, redact, classify, cache, budget, route, retry (config order)
    # "mycompany.guards:ProfanityFilter",  # ← one line per extra stage, before route/retry
]
# The chains measured: (router config kind, model the client asks for, entries). The full chain is the
# default pipeline on `model: auto`; the minimal one shows what `route` costs when it must work alone.
CHAINS: dict[str, tuple[str, str, list[str]]] = {
    "full pipeline, model: auto": ("full", "auto", BENCH_STAGES),
    "minimal pipeline, concrete model": ("minimal", CONCRETE_MODEL, ["router.pipeline:Stage", "route", "retry"]),
}
SIZES = (300, 2_000, 20_000)
REPLY_HEADERS = {"Content-Type": "application/json"}
USAGE = {"prompt_tokens": 300, "completion_tokens": 50, "total_tokens": 350}


class FakeBackend(Backend):
    """Answers every request with the mock upstream's canned JSON, instantly."""

    kind = "fake"
    body = json_body(50)

    async def send(self, ex: Exchange, target: Candidate, first_token_s: float | None = None) -> Reply:
        ex.usage = dict(USAGE)
        return Reply(200, dict(REPLY_HEADERS), body=self.body)


@dataclass(slots=True)
class Link:
    """One timed link of the chain: the stage's time and its self time (time minus the rest's)."""

    name: str
    stage: Any
    below: Any = None  # the next Link or the terminal Link
    total_s: float = 0.0
    self_s: list[float] = field(default_factory=list)

    async def __call__(self, ex: Exchange) -> Reply:
        below = self.below
        t0 = time.perf_counter()
        below_before = below.total_s
        reply = await self.stage.handle(ex, below)
        dt = time.perf_counter() - t0
        self.total_s += dt
        self.self_s.append(dt - (below.total_s - below_before))
        return reply


class Terminal:
    """The server's terminal step (send to the decided target), timed so links can subtract it.

    Without a decision (no `route` in the chain) it sends to `fallback`, so the other stages still run.
    """

    __slots__ = ("fallback", "total_s")

    def __init__(self, fallback: Candidate) -> None:
        self.total_s = 0.0
        self.fallback = fallback

    async def __call__(self, ex: Exchange) -> Reply:
        t0 = time.perf_counter()
        target = ex.target
        if target is None:
            decided = ex.decision is not None and ex.decision.candidates
            target = ex.target = ex.decision.candidates[0] if decided else self.fallback  # type: ignore[union-attr]
        reply = await target.backend.send(ex, target)
        self.total_s += time.perf_counter() - t0
        return reply


def build_context(kind: str = "full") -> Context:
    os.environ.setdefault(KEY_ENV, BENCH_KEY)
    config = parse(router_config(kind, 1))
    backends: dict[str, Backend] = {b.name: FakeBackend(b) for b in config.backends}
    return Context(config=config, backends=backends, catalog=Catalog(config, backends))


def build_chain(ctx: Context, entries: list[str]) -> tuple[list[Link], dict[str, str]]:
    """The timed chain in list order, and a note for each stage left out (and why)."""
    links: list[Link] = []
    notes: dict[str, str] = {}
    for i, entry in enumerate(entries):
        name = entry if entry in BUILTIN_STAGES else entry.rpartition(":")[2] or entry
        if entry == "router.pipeline:Stage":
            name = "(no-op stage)"
        try:
            stage = load_stage(entry, ctx, f"pipeline[{i}]")
        except Exception as e:  # any failure to build is reported, not fatal
            notes[name] = f"not built: {type(e).__name__}: {e}"
            continue
        if not getattr(stage, "active", True):
            notes[name] = "inactive (nothing configured, or not implemented yet)"
            continue
        links.append(Link(name, stage))
    terminal = Terminal(ctx.catalog.all[0])
    for link, below in zip(links, [*links[1:], terminal], strict=True):
        link.below = below
    return links, notes


def body_template(tokens: int, model: str = "auto") -> bytes:
    """A chat request whose prompt is about `tokens` tokens (the benchmark's prompt, repeated)."""
    per_copy = 260  # tokens of PROMPT (o200k_base), plus the system message ≈ 300 for one copy
    copies = max(1, round(tokens / per_copy))
    text = " ".join([PROMPT.replace("@N@", f"@N@-{i}") for i in range(copies)])
    return orjson.dumps({
        "model": model,
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": text}],
        "max_tokens": 256,
    })


def headers() -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json", "Authorization": f"Bearer {BENCH_KEY}"}))


async def _run(links: list[Link], template: bytes, iterations: int, tag: str) -> str | None:
    head = links[0]
    hdrs = headers()
    for n in range(iterations):
        raw = template.replace(b"@N@", f"{tag}{n}".encode())  # unique, so `cache` never hits
        ex = Exchange(uuid.uuid4().hex, "chat", orjson.loads(raw), raw, hdrs)
        try:
            reply = await head(ex)
        except Exception as e:  # a stage refusing the request ends this run
            return f"{type(e).__name__}: {e}"
        for hook in ex.finish_hooks:
            hook(ex)
        if reply.status != 200:
            return f"status {reply.status}"
    return None


def measure_chain(kind: str, model: str, entries: list[str], iterations: int) -> dict[str, Any]:
    """µs per request per stage of one chain (median and p90 of self time) at each prompt size."""
    ctx = build_context(kind)
    result: dict[str, Any] = {"stages": {}, "notes": {}, "errors": {}}
    for size in SIZES:
        links, notes = build_chain(ctx, entries)
        result["notes"] = notes
        n = max(30, iterations * 300 // size) if size > 300 else iterations
        template = body_template(size, model)
        warm = max(10, n // 10)
        err = asyncio.run(_run(links, template, warm, f"w{size}-"))
        for link in links:
            link.self_s.clear()
        gc.collect()
        err = err or asyncio.run(_run(links, template, n, f"m{size}-"))
        if err:
            result["errors"][str(size)] = err
        for link in links:
            samples = sorted(link.self_s) or [0.0]
            row = result["stages"].setdefault(link.name, {})
            row[str(size)] = {
                "median_us": statistics.median(samples) * 1e6,
                "p90_us": samples[min(len(samples) - 1, int(len(samples) * 0.9))] * 1e6,
                "n": len(link.self_s),
            }
    return result


def measure(iterations: int = 2000, entries: list[str] | None = None) -> dict[str, Any]:
    """Every chain of `CHAINS` (or one chain of `entries` on `model: auto`), at every size."""
    chains = {"custom, model: auto": ("full", "auto", entries)} if entries else CHAINS
    return {"sizes": list(SIZES),
            "chains": {name: measure_chain(kind, model, ents, iterations)
                       for name, (kind, model, ents) in chains.items()}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__.split("\n")[0])
    p.add_argument("--iterations", type=int, default=2000, help="requests at 300 tokens (fewer at 2k, 20k)")
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--stage", action="append", help="benchmark these entries instead of BENCH_STAGES")
    a = p.parse_args(argv)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    r = measure(a.iterations, a.stage)
    if a.json:
        with open(a.json, "wb") as f:
            f.write(orjson.dumps(r, option=orjson.OPT_INDENT_2))
    for chain, c in r["chains"].items():
        print(f"\n{chain}")
        print(f"{'stage':<16}" + "".join(f"{s:>12} tok" for s in r["sizes"]) + "   (µs/request, median)")
        for name, row in c["stages"].items():
            print(f"{name:<16}" + "".join(f"{row[str(s)]['median_us']:>16.1f}" for s in r["sizes"]))
        for name, note in c["notes"].items():
            print(f"{name:<16}  {note}")
        for size, err in c["errors"].items():
            print(f"error at {size} tokens: {err}")


if __name__ == "__main__":
    main()
