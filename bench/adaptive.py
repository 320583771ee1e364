"""Replay of the public outcome sets as traffic through the real routing code, feeding back real outcomes.

    python -m bench.adaptive [--rounds 8] [--min-samples 20] [--weak MODEL] [--limit N] [--json FILE]

Each outcome table (../shared/datasets/outcomes/: gsm8k, mmlu, alpacaeval) is one tenant, and a fourth
tenant, `mixed`, gets all three tables' prompts shuffled together (one application's varied traffic; its
quality is each prompt's own table's). A tenant's prompts are shuffled (fixed seed) and cut into
`--rounds` slices; each round routes the next slice of every tenant, interleaved, through the shipped
config (config/router.yaml: classify, difficulty, rules, policy) with `routing.adaptive` enabled, on a
virtual clock. For each request the router served, the bench feeds back
the real outcome of the model class it chose, through `FeedbackLoop.rate`, as `POST /v1/feedback` does:
gsm8k / mmlu `weak_ok` or `strong_ok` (a local tier is the weak model, a cloud tier the strong one),
alpacaeval the judge's preference (`weak_win` for a local answer, 1 - `weak_win` for a cloud one).
Every request is routed before its own outcome is known, so the figures are online: no prompt is scored
with what was learnt from it.

Printed per round and tenant: cloud share and PGR (score_outcomes.py's definitions) of the adaptive run and
of the static rules on the same prompts. Then, over all rounds, the adaptive policy at its share against
the static policy at the same share: the shipped rules' difficulty score turned into a dial (cloud for
the hardest requests by `Features.difficulty`, as `ai-router calibrate` sets cut points), random routing
and the oracle. Two adaptive budgets are replayed: `cloud_share: free` (the default: cloud where it gains
`min_gain`) and `cloud_share: rules` (the static policy's own share, reallocated), and a sweep of fixed
shares gives the curve, against two static dials: with hindsight of the whole replay's difficulties (an
upper bound), and run online (the same engine at the same budget, never learning nor exploring, so its
cut point comes from the requests seen so far, as a static policy calibrated on past traffic would have
it). `--tenants` and `--shares` replay a part (one tenant alone, a few shares), e.g. over several `--seed`s.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from backends.base import Backend
from bench.outcomes import OUTCOMES, ROOT, scorer
from middleware.classify import ClassifyStage
from middleware.route import RouteStage
from router.catalog import Catalog
from router.config import Adaptive, Config, load
from router.context import Context
from router.exchange import Attempt, Exchange, Features
from router.routing.feedback import build_feedback

TABLES = ("gsm8k", "mmlu", "alpacaeval")
DEFAULT_WEAK = "OpenHermes-2.5-Mistral-7B"  # the alpacaeval local-class model (7B)
STEP_S = 0.25  # virtual seconds between requests (so a tenant's plan is recomputed every few outcomes)
SWEEP = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


@dataclasses.dataclass
class Tenant:
    """One outcome table as a tenant's traffic: prompts in replay order, their features and real outcomes."""

    name: str
    ids: list[str]
    prompts: list[str]
    weak: list[float]  # the quality of a local answer per prompt
    strong: list[float]  # the quality of a cloud answer
    features: list[Features] = dataclasses.field(default_factory=list)

    def rounds(self, n: int) -> list[range]:
        k = len(self.ids)
        return [range(k * r // n, k * (r + 1) // n) for r in range(n)]


def load_tenants(so: ModuleType, weak_model: str, limit: int | None, seed: int) -> list[Tenant]:
    out = []
    for name in TABLES:
        path = OUTCOMES / f"{name}.jsonl"
        table = so.load_table(path)
        model = table.weak_models[0] if table.kind == "binary" else weak_model
        units = so.build_units(table, model)
        prompt_of = {rid: r["prompt"] for rid, r in zip(table.ids, table.rows, strict=True)}
        order = list(range(len(units.ids)))
        random.Random(seed).shuffle(order)
        if limit:
            order = order[:limit]
        out.append(Tenant(name, [units.ids[i] for i in order], [prompt_of[units.ids[i]] for i in order],
                          [units.weak[i] for i in order], [units.strong[i] for i in order]))
    return out


def mixed(tables: list[Tenant], seed: int) -> Tenant:
    """One tenant whose traffic is every table's prompts, shuffled together (quality: each table's own)."""
    rows = [(t.ids[i], t.prompts[i], t.weak[i], t.strong[i], t.features[i])
            for t in tables for i in range(len(t.ids))]
    random.Random(seed).shuffle(rows)
    ids, prompts, weak, strong, feats = (list(x) for x in zip(*rows, strict=True))
    return Tenant("mixed", ids, prompts, weak, strong, feats)


class Replay:
    """The shipped config's classify and route stages over idle backends, on a virtual clock."""

    def __init__(self, config: Config, adaptive: Adaptive | None, seed: int = 7) -> None:
        if adaptive is not None:
            config = dataclasses.replace(config, routing=dataclasses.replace(config.routing, adaptive=adaptive))
        self.now = 1_800_000_000.0
        backends = {b.name: Backend(b) for b in config.backends}
        catalog = Catalog(config, backends)
        self.feedback = build_feedback(config, catalog, clock=lambda: self.now, rng=random.Random(seed))
        self.ctx = Context(config=config, backends=backends, catalog=catalog, feedback=self.feedback)
        self.classify = ClassifyStage(self.ctx)
        self.route = RouteStage(self.ctx)
        self.n = 0

    def features(self, prompt: str) -> Features:
        ex = Exchange("f", "chat", _body(prompt), None, {})
        return self.classify.analyzer.features(ex)[0]

    def serve(self, tenant: str, prompt: str, f: Features) -> Exchange:
        """Route one request as the server does and end it (its finish hooks run); returns the exchange."""
        self.n += 1
        self.now += STEP_S
        ex = Exchange(f"r{self.n}", "chat", _body(prompt), None, {})
        ex.tenant = tenant
        ex.features = f
        self.route.route(ex)
        t = ex.target
        assert t is not None
        ex.attempts.append(Attempt(t.model.id, t.model.backend, t.tier, "ok", 0.0))
        ex.status = 200
        for hook in ex.finish_hooks:
            hook(ex)
        return ex


def _body(prompt: str) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": prompt}]}


def run(replay: Replay | None, tenants: list[Tenant], rounds: int, progress: bool) -> dict[str, list[bool]]:
    """Replay every round; returns, per tenant, whether each prompt went to cloud (static when replay is
    None: the rules alone, read from the features' decision without adaptive)."""
    cloud: dict[str, list[bool]] = {t.name: [False] * len(t.ids) for t in tenants}
    slices = {t.name: t.rounds(rounds) for t in tenants}
    for r in range(rounds):
        its: list[Iterator[int]] = [iter(slices[t.name][r]) for t in tenants]
        live = list(zip(tenants, its, strict=True))
        while live:
            nxt = []
            for t, it in live:
                i = next(it, None)
                if i is None:
                    continue
                nxt.append((t, it))
                assert replay is not None
                ex = replay.serve(t.name, t.prompts[i], t.features[i])
                served_cloud = ex.target is not None and ex.target.model.location == "cloud"
                cloud[t.name][i] = served_cloud
                score = t.strong[i] if served_cloud else t.weak[i]
                replay.feedback.rate(ex.request_id, t.name, score)
            live = nxt
        if progress:
            print(".", end="", flush=True)
    return cloud


def pgr(t: Tenant, idx: range | list[int], cloud: list[bool]) -> tuple[float, float | None]:
    idx = list(idx)
    weak = statistics.fmean(t.weak[i] for i in idx)
    strong = statistics.fmean(t.strong[i] for i in idx)
    got = statistics.fmean(t.strong[i] if cloud[i] else t.weak[i] for i in idx)
    share = sum(cloud[i] for i in idx) / len(idx)
    return share, None if strong == weak else (got - weak) / (strong - weak)


def dial(t: Tenant, share: float) -> list[bool]:
    """The static difficulty dial at `share`: cloud for the hardest requests by difficulty."""
    k = round(share * len(t.ids))
    order = sorted(range(len(t.ids)), key=lambda i: -t.features[i].difficulty)
    out = [False] * len(t.ids)
    for i in order[:k]:
        out[i] = True
    return out


def baselines(so: ModuleType, t: Tenant, cloud: list[bool]) -> dict[str, Any]:
    units = so.Units(t.ids, t.weak, t.strong, None, None)
    decisions = {rid: "strong" if c else "weak" for rid, c in zip(t.ids, cloud, strict=True)}
    res = so.evaluate(units, decisions, None, 200)
    share = res["router"]["strong_share"]
    return {
        "share": share,
        "pgr": res["router"]["pgr"],
        "static_dial_pgr": pgr(t, range(len(t.ids)), dial(t, share))[1],
        "random_pgr": res["random_same_share"]["pgr"],
        "oracle_pgr": res["oracle_same_share"]["pgr"],
    }


def fmt(share: float, p: float | None) -> str:
    return f"{share:5.1%} {'  n/a' if p is None else f'{p:5.2f}'}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.adaptive", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "config" / "router.yaml"))
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--min-samples", type=int, default=20)
    ap.add_argument("--buckets", type=int, help="difficulty buckets per task (default: the config's)")
    ap.add_argument("--explore", type=float, help="routing.adaptive.explore (default: the config's)")
    ap.add_argument("--explore-floor", type=float, help="routing.adaptive.explore_floor (default: the config's)")
    ap.add_argument("--weak", default=DEFAULT_WEAK, help="alpacaeval's local-class model")
    ap.add_argument("--limit", type=int, help="at most this many prompts per table (a quick look)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-sweep", action="store_true", help="skip the fixed-share curve")
    ap.add_argument("--shares", type=float, nargs="*", default=list(SWEEP), help="the curve's fixed shares")
    ap.add_argument("--tenants", nargs="*", default=[*TABLES, "mixed"], help="replay only these tenants")
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--hot-path", action="store_true", help="only time what the loop adds per request")
    args = ap.parse_args(argv)
    if args.hot_path:
        hot_path(load(args.config))
        return 0
    t0 = time.perf_counter()
    so = scorer()
    config = load(args.config)
    tenants = load_tenants(so, args.weak, args.limit, args.seed)
    if not set(args.tenants) <= {*TABLES, "mixed"}:
        ap.error(f"--tenants: choose from {', '.join((*TABLES, 'mixed'))}")
    if "mixed" not in args.tenants:  # the mixed tenant needs every table's prompts; else only the chosen ones
        tenants = [t for t in tenants if t.name in args.tenants]
    n = sum(len(t.ids) for t in tenants)
    print(f"bench.adaptive: {n} requests ({', '.join(f'{t.name} {len(t.ids)}' for t in tenants)}), "
          f"{args.rounds} rounds, min_samples {args.min_samples}; classifying", end="", flush=True)
    base = Replay(config, None)
    for t in tenants:
        t.features = [base.features(p) for p in t.prompts]
        print(".", end="", flush=True)
    if "mixed" in args.tenants:
        tenants.append(mixed(tenants, args.seed))
        tenants = [t for t in tenants if t.name in args.tenants]
    print(f" {time.perf_counter() - t0:.0f}s")
    a = config.routing.adaptive
    default = dataclasses.replace(a, enabled=True, min_samples=args.min_samples, buckets=args.buckets or a.buckets,
                                  explore=a.explore if args.explore is None else args.explore,
                                  explore_floor=a.explore_floor if args.explore_floor is None else args.explore_floor)
    static_cfg = dataclasses.replace(default, enabled=False)
    variants = {"free": default, "rules": dataclasses.replace(default, cloud_share="rules")}
    if not args.no_sweep:
        variants.update({f"share {s:.2f}": dataclasses.replace(default, cloud_share=s) for s in args.shares})
        # the static dial run online: the same engine at the same budget that never learns (no outcome is ever
        # enough) and never explores, so its cut point comes from the difficulties seen so far, as a static
        # policy calibrated on past traffic would have it
        variants.update({f"online {s:.2f}": dataclasses.replace(default, cloud_share=s, min_samples=10**9, explore=0.0,
                                                                 explore_floor=0.0) for s in args.shares})
    print("static rules ", end="", flush=True)
    static = run(Replay(config, static_cfg, args.seed), tenants, args.rounds, True)
    results: dict[str, dict[str, list[bool]]] = {}
    for name, settings in variants.items():
        print(f" | adaptive {name} ", end="", flush=True)
        results[name] = run(Replay(config, settings, args.seed), tenants, args.rounds, True)
    print(f" {time.perf_counter() - t0:.0f}s\n")

    report: dict[str, Any] = {"rounds": [], "summary": {}, "curve": {}}
    head = "".join(f" | {t.name:^25s}" for t in tenants)
    print("per round: cloud share and PGR, adaptive (cloud_share: free) / static rules")
    print(f"round{head}")
    for r in range(args.rounds):
        cells = []
        row: dict[str, Any] = {"round": r + 1}
        for t in tenants:
            idx = t.rounds(args.rounds)[r]
            a = pgr(t, idx, results["free"][t.name])
            s = pgr(t, idx, static[t.name])
            cells.append(f" | {fmt(*a)} / {fmt(*s)}")
            row[t.name] = {"adaptive": a, "static": s}
        report["rounds"].append(row)
        print(f"{r + 1:5d}{''.join(cells)}")

    print("\nall rounds: PGR at the adaptive run's own cloud share, against the static policy at that share")
    print(f"{'tenant':11s} {'policy':12s} {'share':>6s} {'PGR':>6s} {'static dial':>11s} {'random':>6s} "
          f"{'oracle':>6s}   (static rules: share, PGR)")
    for t in tenants:
        st = baselines(so, t, static[t.name])
        report["summary"][t.name] = {"static": st}
        for name in ("free", "rules"):
            b = baselines(so, t, results[name][t.name])
            report["summary"][t.name][name] = b
            print(f"{t.name:11s} {name:12s} {b['share']:6.1%} {_n(b['pgr'])} {_n(b['static_dial_pgr']):>11s} "
                  f"{_n(b['random_pgr'])} {_n(b['oracle_pgr'])}   ({st['share']:.1%}, {_n(st['pgr'])})")
    if not args.no_sweep:
        print("\ncurve (cloud_share fixed): share and PGR of the adaptive run / the static dial at that share, with "
              "hindsight of the replay's difficulties / the static dial online (its cut from the requests seen so "
              "far), at its own share")
        print(f"{'target':>6s}{''.join(f' | {t.name:^31s}' for t in tenants)}")
        for s in args.shares:
            cells = []
            for t in tenants:
                b = baselines(so, t, results[f"share {s:.2f}"][t.name])
                o = baselines(so, t, results[f"online {s:.2f}"][t.name])
                b["online_dial"] = {"share": o["share"], "pgr": o["pgr"]}
                report["curve"].setdefault(t.name, []).append(b)
                cells.append(f" | {b['share']:5.1%} {_n(b['pgr'])} /{_n(b['static_dial_pgr'])} /{_n(o['pgr'])} "
                             f"{o['share']:5.1%}")
            print(f"{s:6.2f}{''.join(cells)}")
    print(f"\n{time.perf_counter() - t0:.0f}s")
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0


def hot_path(config: Config, n: int = 20_000) -> None:
    """µs per request that the feedback loop and the adaptive layer add: `route` with the adaptive layer
    on and off (a trained tenant, no exploration), and the finish hook that remembers the answer."""
    settings = dataclasses.replace(config.routing.adaptive, enabled=True, min_samples=5, explore=0.0,
                                   explore_floor=0.0)
    replay = Replay(config, settings)
    prompt = "Write a haiku about the sea and then explain its imagery in two sentences."
    f = replay.features(prompt)
    key = (f.task, replay.feedback.adaptive.bucket(f))
    for cloud, score in ((False, 0.2), (True, 0.9)):
        for _ in range(20):
            replay.now += 2
            replay.feedback.adaptive.observe("bench", key, cloud, score, 1.0)
    route = replay.route

    def timed(fn: Any) -> float:
        best = math.inf
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            best = min(best, (time.perf_counter() - t0) / n * 1e6)
        return best

    def routed() -> Exchange:
        ex = Exchange("h", "chat", _body(prompt), None, {})
        ex.tenant = "bench"
        ex.features = f
        route.route(ex)
        return ex

    with_adaptive = timed(routed)
    route.policy.adaptive = None
    without = timed(routed)
    route.policy.adaptive = replay.feedback.adaptive
    ex = routed()
    ex.status = 200
    ex.attempts.append(Attempt("m", "b", "t", "ok", 0.0))
    ids = iter(range(10**9))

    def finish() -> None:
        ex.request_id = f"h{next(ids)}"
        replay.feedback.finished(ex)

    hook = timed(finish)
    print(f"route stage, decide only: {without:.2f} µs without the adaptive layer, {with_adaptive:.2f} µs with it "
          f"(+{with_adaptive - without:.2f}); the finish hook (remember the answer, re-ask fingerprint): "
          f"{hook:.2f} µs per request (best of 5 x {n}, one core of a shared machine)")


def _n(v: float | None) -> str:
    return "  n/a" if v is None else f"{v:6.3f}"


if __name__ == "__main__":
    sys.exit(main())
