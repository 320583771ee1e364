"""µs per request of the spend-control stages (`ratelimit` + `cache` + `budget`) on each state store.

No sockets: the three stages are built as the server builds them (`load_stage`) with a tenant that has
a daily and monthly budget, rpm/tpm limits and a cache, chained over a terminal that does what the
server's does (calls `Exchange.gate` around an instant upstream answer with usage), then the finish
hooks run as the server runs them. Two request kinds: `temperature: 0.7` (cache bypass: the budget
reserves and settles, the limits count) and a repeated `temperature: 0` request (a cache hit after the
first). Redis needs 127.0.0.1:6379 (a random key prefix, deleted after).

    python -m bench.spend_stages [--iterations 3000] [--cpu] [--only ratelimit,budget]

`--cpu` times each request in CPU time of the loop's thread (steadier than wall time on a loaded
machine; the SQLite store's own thread is not on the request path and is not counted); `--only` builds
just the named stages (the split of the total).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from backends import make_backend
from router.catalog import Catalog
from router.config import parse
from router.context import Context
from router.exchange import Exchange, Features, Reply
from router.pipeline import Pipeline, load_stage
from router.state import open_store

USAGE = {"prompt_tokens": 300, "completion_tokens": 50, "total_tokens": 350}
BODY = b'{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}]}'


def config(state_url: str) -> Any:
    return parse({
        "state": {"url": state_url},
        "backends": [{"name": "cloud", "base_url": "http://127.0.0.1:9/v1", "models": [
            {"id": "gpt-5", "tier": "cloud-high", "price": {"input": 1.25, "output": 10.0}}]}],
        "tenants": [{"match": "*", "budget": {"daily_usd": 1e6, "monthly_usd": 1e7, "soft_pct": 80},
                     "limits": {"rpm": 10**9, "tpm": 10**12}}],
        "cache": {"ttl_s": 600, "max_entries": 10000},
        "pipeline": ["ratelimit", "cache", "budget"],
    })


CLOCK = time.perf_counter_ns


async def run(state_url: str, iterations: int, only: list[str] | None = None) -> dict[str, tuple[float, float]]:
    cfg = config(state_url)
    backends = {b.name: make_backend(b) for b in cfg.backends}
    catalog = Catalog(cfg, backends)
    store = open_store(state_url)
    await store.start()
    ctx = Context(config=cfg, backends=backends, catalog=catalog, store=store)
    target = catalog.by_id["gpt-5"][0]

    async def send(ex: Exchange, t: Any) -> Reply:
        ex.usage = dict(USAGE)
        return Reply(200, {"Content-Type": "application/json"}, body=BODY)

    def terminal(ex: Exchange) -> Any:
        ex.target = target
        return ex.gate(ex, target, send) if ex.gate is not None else send(ex, target)

    stages = [load_stage(e, ctx, f"pipeline[{i}]") for i, e in enumerate(cfg.pipeline) if only is None or e in only]
    pipeline = Pipeline(stages, terminal)
    headers = CIMultiDictProxy(CIMultiDict())
    out = {}
    for kind, temp in (("bypass (budget + limits)", 0.7), ("cache hit", 0)):
        body = {"model": "gpt-5", "temperature": temp, "max_tokens": 100,
                "messages": [{"role": "user", "content": "Say hello to the benchmark"}]}
        raw = orjson.dumps(body)
        times = []
        for i in range(iterations + 200):
            ex = Exchange(f"r{i}", "chat", body, raw, headers)
            ex.tenant = "bench/x"
            ex.features = Features(tokens=300, max_output_tokens=100)
            t0 = CLOCK()
            await pipeline(ex)
            for hook in ex.finish_hooks:
                hook(ex)
            times.append((CLOCK() - t0) / 1000)
            if i % 64 == 0:
                await asyncio.sleep(0)  # let write-behind and background tasks run, as a server would
        ts = sorted(times[200:])
        out[kind] = (statistics.median(ts), ts[int(len(ts) * 0.99)])
    await asyncio.sleep(0.3)
    if hasattr(store, "r"):  # the cache shares the store's prefix: one sweep deletes both
        keys = [k async for k in store.r.scan_iter(match=store.prefix + "*")]  # type: ignore[attr-defined]
        if keys:
            await store.r.delete(*keys)  # type: ignore[attr-defined]
    await store.aclose()
    return out


async def main(iterations: int, only: list[str] | None = None) -> None:
    urls = {"memory": "memory://", "sqlite": f"sqlite:///{tempfile.mkdtemp()}/bench.db",
            "redis": f"redis://127.0.0.1:6379/0?prefix=bench:{uuid.uuid4().hex}:"}
    print(f"{'store':<8} {'request':<26} {'median µs':>10} {'p99 µs':>10}")
    for name, url in urls.items():
        try:
            res = await run(url, iterations if name != "redis" else max(200, iterations // 5), only)
        except OSError as e:
            print(f"{name:<8} skipped ({e})")
            continue
        for kind, (med, p99) in res.items():
            print(f"{name:<8} {kind:<26} {med:>10.1f} {p99:>10.1f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--cpu", action="store_true", help="CPU time of the loop's thread instead of wall time")
    p.add_argument("--only", default="", help="comma-separated stages to build (default: all three)")
    a = p.parse_args()
    if a.cpu:
        CLOCK = time.thread_time_ns
    import uvloop

    uvloop.install()
    asyncio.run(main(a.iterations, [x for x in a.only.split(",") if x] or None))
