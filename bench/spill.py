"""Spill-over under saturation (issue 12): a local GPU that serves N requests at once, offered 3N.

    python -m bench.spill [--n 4] [--seconds 20]

Starts two simulated upstreams in this process, with the demo's latencies: a "local GPU" that generates
at most N answers at once (more wait in its own queue, as Ollama with OLLAMA_NUM_PARALLEL=N or vLLM at
its max_num_seqs does; 80 ms to the first token, 20 ms per token) and a "cloud" server priced like
gpt-5-mini (350 ms to the first token, 10 ms per token). A router (`ai-router serve`, a child process)
routes every request to the local tier, whose backend has `max_concurrency: N` and `queue_ms: 50`.
Closed-loop clients send JSON chat requests of 40 output tokens. Three runs:

    unsaturated   N clients            every request fits on the GPU: the baseline p95
    spill on      3N clients           what the GPU cannot take within queue_ms goes to the cloud tier
    spill off     3N clients           routing.spill: false, so they wait in line for a GPU slot

Per run: requests, p50/p95/p99 latency, the share that spilled (`x-router-spilled`), and the cost the
router reported (`x-router-cost-usd`, summed; per 1,000 requests). Target: the p95 with spill-over on
stays within 20% of the unsaturated p95. Latencies are end to end on this machine (client, router and
upstreams share its cores).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from backends.simulated import Behavior, SimulatedUpstream
from bench.closed_loop import RouterProcess, closed_loop, percentiles, session

LOCAL = Behavior(first_token_s=0.08, token_delay_s=0.02, reply_tokens=40)  # the demo's local GPU
CLOUD = Behavior(first_token_s=0.35, token_delay_s=0.01, reply_tokens=40)  # the demo's cloud
PRICE = {"input": 0.25, "output": 2.00}  # gpt-5-mini, USD per million tokens
QUEUE_MS = 50
WARMUP_S = 2.0
BODY = {"model": "auto", "max_tokens": 40, "messages": [
    {"role": "user", "content": "Give me three short tips for writing clear commit messages."}]}


class LimitedGPU(SimulatedUpstream):
    """A simulated local server that generates at most `slots` answers at once; the rest wait their turn."""

    def __init__(self, slots: int) -> None:
        super().__init__("local", ["qwen3:8b"], LOCAL)
        self.slots = asyncio.Semaphore(slots)
        self.requests: Any = collections.deque(maxlen=16)  # the bench never reads them back

    async def _generate(self, request: Any, chat: bool) -> Any:
        async with self.slots:
            return await super()._generate(request, chat)


def router_config(local_url: str, cloud_url: str, n: int, spill: bool) -> dict[str, Any]:
    off = {"probe": "off"}
    return {
        "state": {"url": "memory://"},
        "logging": {"level": "warning", "access_log": False},
        "backends": [
            {"name": "gpu", "kind": "openai", "location": "local", "base_url": local_url, "max_concurrency": n,
             "queue_ms": QUEUE_MS, "health": off,
             # spill off: a request waits up to connect_s for a slot; long enough that none is refused
             "timeouts": {"connect_s": 60, "first_byte_s": 60, "idle_s": 30, "total_s": 120},
             "models": [{"id": "qwen3:8b", "tier": "local-small", "context": 32768}]},
            {"name": "cloud", "kind": "openai", "base_url": cloud_url, "max_concurrency": 256, "health": off,
             "models": [{"id": "gpt-5-mini", "tier": "cloud-mini", "context": 400000, "price": PRICE}]},
        ],
        "routing": {"tiers": ["local-small", "cloud-mini"], "rules": [{"tier": "local-small"}], "spill": spill},
        "pipeline": ["classify", "route", "retry"],
    }


class Run:
    """One run's answers."""

    def __init__(self, name: str, clients: int) -> None:
        self.name = name
        self.clients = clients
        self.ms: list[float] = []
        self.spilled = 0
        self.cost = 0.0
        self.errors: collections.Counter[str] = collections.Counter()
        self.counting = False

    async def one(self, s: aiohttp.ClientSession, url: str, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async with s.post(url, data=data, headers={"Content-Type": "application/json"}) as r:
            await r.read()
            ms = (loop.time() - t0) * 1000
            if not self.counting:
                return
            if r.status != 200:
                self.errors[str(r.status)] += 1
                return
            self.ms.append(ms)
            self.spilled += "x-router-spilled" in r.headers
            self.cost += float(r.headers.get("x-router-cost-usd") or 0)

    def row(self) -> dict[str, Any]:
        n = len(self.ms)
        return {"run": self.name, "clients": self.clients, "requests": n, **percentiles(self.ms),
                "spill_share": self.spilled / n if n else 0.0, "cost_usd": self.cost,
                "usd_per_1k": self.cost / n * 1000 if n else 0.0, "errors": dict(self.errors)}


async def measure(router: RouterProcess, name: str, clients: int, seconds: float) -> dict[str, Any]:
    run = Run(name, clients)
    url = router.url + "/v1/chat/completions"
    data = orjson.dumps(BODY)
    async with session(clients) as s:
        await closed_loop(clients, WARMUP_S, lambda s_, _i: run.one(s_, url, data), s)
        run.counting = True
        await closed_loop(clients, seconds, lambda s_, _i: run.one(s_, url, data), s)
    return run.row()


async def bench(n: int, seconds: float, workdir: Path) -> list[dict[str, Any]]:
    gpu, cloud = LimitedGPU(n), SimulatedUpstream("cloud", ["gpt-5-mini"], CLOUD)
    cloud.requests = collections.deque(maxlen=16)  # type: ignore[assignment]
    local_url, cloud_url = await gpu.start(), await cloud.start()
    rows = []
    try:
        for spill, runs in ((True, (("unsaturated", n), ("spill on", 3 * n))), (False, (("spill off", 3 * n),))):
            router = await asyncio.to_thread(RouterProcess, router_config(local_url, cloud_url, n, spill), workdir,
                                             "spill-on" if spill else "spill-off")
            try:
                for name, clients in runs:
                    print(f"  {name}: {clients} clients for {seconds:g} s ...", flush=True)
                    rows.append(await measure(router, name, clients, seconds))
            finally:
                await asyncio.to_thread(router.stop)
    finally:
        await gpu.stop()
        await cloud.stop()
    return rows


def report(rows: list[dict[str, Any]], n: int) -> bool:
    print(f"\n{'run':12} {'clients':>7} {'requests':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'spilled':>7} "
          f"{'cost USD':>9} {'USD/1k':>7}")
    for r in rows:
        errs = "  errors: " + ", ".join(f"{k} x{v}" for k, v in r["errors"].items()) if r["errors"] else ""
        print(f"{r['run']:12} {r['clients']:7d} {r['requests']:8d} {r['p50']:7.0f} {r['p95']:7.0f} {r['p99']:7.0f} "
              f"{r['spill_share']:7.1%} {r['cost_usd']:9.5f} {r['usd_per_1k']:7.4f}{errs}")
    base, on, off = (next(r for r in rows if r["run"] == k) for k in ("unsaturated", "spill on", "spill off"))
    ratio = on["p95"] / base["p95"] if base["p95"] else float("inf")
    ok = ratio <= 1.2 and not on["errors"]
    print(f"\np95 at 3N with spill-over / unsaturated p95: {ratio:.2f} (target <= 1.20): {'ok' if ok else 'MISSED'}")
    print(f"spill-over off: p95 {off['p95']:.0f} ms (x{off['p95'] / base['p95']:.1f} the unsaturated p95) at "
          f"${off['usd_per_1k']:.4f} per 1k requests; on: p95 {on['p95']:.0f} ms at ${on['usd_per_1k']:.4f} per 1k "
          f"({on['spill_share']:.0%} of requests spilled to cloud-mini)")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.spill", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4, help="GPU slots and the backend's max_concurrency (4)")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run (20)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    a = ap.parse_args(argv)
    print(f"spill-over: a local GPU of {a.n} slots (max_concurrency {a.n}, queue_ms {QUEUE_MS}) offered "
          f"{3 * a.n} concurrent clients; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="spill-") as d:
        rows = uvloop.run(bench(a.n, a.seconds, Path(d)))
    ok = report(rows, a.n)
    if a.json:
        a.json.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
