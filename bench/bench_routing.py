"""Time classification + routing per request at 200, 2k, 20k and 100k prompt tokens (median and p99).

Run: python -m bench.bench_routing [--config config/router.yaml] [--iterations 300]

Each request goes through what `classify` + `route` do (body -> prompt -> token count -> features ->
exact recount if a threshold is near -> policy decision) on the shipped config with idle backends. Two
kinds of prompt per size: prose to summarise (docs) and a code review (code); the table says whether the
token count was exact or estimated. The body is pre-parsed, as the server hands it over.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench.routing_report import DEFAULT_CONFIG, context_for
from middleware.route import RouteStage
from router.config import load
from router.exchange import Exchange
from router.routing.tokens import count_exact, extract, get_encoding

PROSE = (
    "The regional office reported steady growth in the third quarter, driven mostly by new contracts in the "
    "logistics sector. Staff turnover fell for the second quarter in a row, and the training budget was fully "
    "spent. Two projects slipped by a month because a supplier delivered late, but neither affects the annual "
    "targets. The board asked for a clearer breakdown of costs by client before the next review.\n"
)
CODE = (
    "def merge_intervals(items):\n"
    "    items = sorted(items, key=lambda it: it[0])\n"
    "    out = []\n"
    "    for start, end in items:\n"
    "        if out and start <= out[-1][1]:\n"
    "            out[-1][1] = max(out[-1][1], end)\n"
    "        else:\n"
    "            out.append([start, end])\n"
    "    return out\n\n"
)
SIZES = (200, 2_000, 20_000, 100_000)


def body_of(kind: str, tokens: int) -> dict[str, object]:
    enc = get_encoding()
    unit = PROSE if kind == "prose" else CODE
    ask = "Summarize the key points of this report:\n\n" if kind == "prose" else "Review this module:\n```python\n"
    per_unit = len(enc.encode_ordinary(unit))
    text = ask + unit * max(1, round((tokens - 20) / per_unit))
    return {"model": "auto", "messages": [{"role": "user", "content": text}]}


def measure(stage: RouteStage, body: dict[str, object], iterations: int) -> tuple[float, float, bool, int, str]:
    times = []
    ex = None
    for _ in range(iterations):
        ex = Exchange("bench", "chat", body, None, {})
        t0 = time.perf_counter()
        stage.route(ex)
        times.append(time.perf_counter() - t0)
    assert ex is not None
    assert ex.features is not None
    assert ex.target is not None
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return statistics.median(times) * 1e3, p99 * 1e3, ex.features.tokens_exact, ex.features.tokens, ex.target.tier or ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(DEFAULT_CONFIG))
    ap.add_argument("--iterations", type=int, default=300)
    args = ap.parse_args(argv)
    stage = RouteStage(context_for(load(args.config)))
    enc = get_encoding()
    print(f"{'target':>8} {'kind':>6} {'tokens':>8} {'counted':>9} {'tier':>12} {'median ms':>10} {'p99 ms':>8}")
    for size in SIZES:
        for kind in ("prose", "code"):
            body = body_of(kind, size)
            n = max(20, args.iterations // (1 + size // 10_000))
            med, p99, exact, tokens, tier = measure(stage, body, n)
            real = count_exact(extract("chat", body), enc)
            label = "exact" if exact else f"est {100 * (tokens - real) / real:+.1f}%"
            print(f"{size:>8} {kind:>6} {real:>8} {label:>9} {tier:>12} {med:>10.3f} {p99:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
