"""Soak under faults (issue 12): minutes of mixed streaming and JSON traffic through a failing upstream.

    python -m bench.soak [--seconds 120] [--warmup 60] [--clients 16]

Starts, in this process, the fault-injecting upstream of the tests (tests/faults.py) as the "local"
backend, drawing one fault per request from `MIX` (resets before and mid-stream, stalls before the first
byte and between chunks, 500/503/429, malformed SSE, truncated JSON, error events, a role-only chunk then
silence, slow drips; most requests are fine), and a well-behaved simulated cloud upstream as the fallback.
A router (`ai-router serve`, a child process, with the budget stage settling every answer's spend in a
SQLite store) sits in front; its bounded caches are kept small (`routing.adaptive.remember_max: 1000`) so
that a cache filling up is not mistaken for growth. Closed-loop clients send half streaming, half JSON
requests, mostly `model: auto` (promoted to the cloud on failures before content), some for the faulty
model by name (its errors reach the client), and a few streams the client abandons after the first chunk.

After a warm-up the traffic pauses and the router's RSS and open fds are read once its connections have
settled; the same at the end. The warm-up is a minute because the process's RSS climbs for its first
~30,000 requests and then stays flat, while its Python heap (tracemalloc) stays flat throughout: the
C allocator reaching its working set (malloc arenas, SQLite's page cache), not objects kept. Progress
every 10 s. Targets: RSS growth under 10% after warm-up, no fd growth. Also prints p50/p95/p99 latency
(whole answer, stalls included) and the outcome counts.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from backends.simulated import Behavior, SimulatedUpstream
from bench.closed_loop import RouterProcess, closed_loop, percentiles, session
from bench.procstat import fds, peer_ports, settled_fds
from bench.procstat import process_rss_mb as rss_mb
from tests.faults import FaultUpstream

MIX = {  # fault -> share of the local upstream's answers
    "ok": 58, "slow_drip": 6, "reset_before": 4, "reset_mid": 5, "stall_before": 2, "stall_mid": 3,
    "status_500": 4, "status_502": 2, "status_503": 3, "status_429": 2, "malformed_sse": 2, "truncated_json": 2,
    "cut_json": 2, "error_event": 2, "role_then_stall": 2,
}  # (no missing_model: a 404 marks the model unavailable for minutes, a state rather than a fault)
LOCAL_SLOTS, CLOUD_SLOTS = 12, 16
POOL_MAX = LOCAL_SLOTS + CLOUD_SLOTS  # the most idle keep-alive connections the router's pools may keep
TIMEOUTS = {"connect_s": 1, "first_byte_s": 1, "idle_s": 0.5, "total_s": 10}
MSG = [{"role": "user", "content": "Summarise the plot of a short story about a lighthouse keeper."}]


class MixedFaults(FaultUpstream):
    """The tests' fault upstream, one fault per request drawn from MIX (seeded: the same run each time)."""

    def __init__(self, seed: int = 12) -> None:
        self._rng = random.Random(seed)
        self._names, self._weights = list(MIX), list(MIX.values())
        super().__init__("soak-local", tokens=12)
        self.drip_s = 0.05
        self.requests: Any = collections.deque(maxlen=16)  # the soak never reads them back

    @property  # type: ignore[override]
    def fault(self) -> str:
        return self._rng.choices(self._names, self._weights)[0]

    @fault.setter
    def fault(self, value: str) -> None:
        pass  # FaultUpstream.__init__ sets one; here each request draws its own


def router_config(local_url: str, cloud_url: str, workdir: Path) -> dict[str, Any]:
    off = {"probe": "off"}
    return {
        "state": {"url": f"sqlite:///{workdir}/state.db"},  # the ledger on disk, as in production
        "logging": {"level": "error", "access_log": False},
        "backends": [
            {"name": "local", "kind": "openai", "location": "local", "base_url": local_url,
             "max_concurrency": LOCAL_SLOTS,
             "timeouts": TIMEOUTS, "health": off, "breaker": {"failures": 6, "cooldown_s": 2},
             "models": [{"id": "faulty-model", "tier": "local-small", "context": 32768}]},
            {"name": "cloud", "kind": "openai", "base_url": cloud_url, "max_concurrency": CLOUD_SLOTS, "health": off,
             "models": [{"id": "gpt-5-mini", "tier": "cloud-mini", "context": 400000,
                         "price": {"input": 0.25, "output": 2.0}}]},
        ],
        "routing": {"tiers": ["local-small", "cloud-mini"], "rules": [{"tier": "local-small"}],
                    "promotion": {"on": ["error", "timeout", "overload", "slow_first_token"], "first_token_ms": 800,
                                  "max_steps": 1},
                    # the answers remembered for /v1/feedback are a bounded cache (100,000 by default); kept
                    # small here so that what the soak measures after its warm-up is growth, not a cache filling
                    "adaptive": {"remember_max": 1000, "reask_window_s": 5}},
        "tenants": [{"match": "*", "budget": {"daily_usd": 1000}}],
        "pipeline": ["classify", "budget", "route", "retry"],
    }


class Traffic:
    """The clients' requests and what became of them."""

    def __init__(self, url: str, seed: int = 12) -> None:
        self.url = url + "/v1/chat/completions"
        self.rng = random.Random(seed)
        self.ms: list[float] = []
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.sent = 0

    async def one(self, s: aiohttp.ClientSession, _i: int) -> None:
        rng = self.rng
        stream = rng.random() < 0.5
        model = "faulty-model" if rng.random() < 0.15 else "auto"
        abandon = stream and rng.random() < 0.04
        body = orjson.dumps({"model": model, "messages": MSG, "stream": stream, "max_tokens": 64})
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        self.sent += 1
        async with s.post(self.url, data=body, headers={"Content-Type": "application/json"}) as r:
            if abandon and r.status == 200:
                await r.content.readany()
                r.close()  # the client goes away mid-stream
                self.outcomes["stream abandoned by the client"] += 1
                return
            data = await r.read()
        self.ms.append((loop.time() - t0) * 1000)
        self.outcomes[_outcome(r, data, stream)] += 1


def _outcome(r: aiohttp.ClientResponse, data: bytes, stream: bool) -> str:
    if r.status != 200:
        try:
            code = orjson.loads(data)["error"]["code"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            code = "?"
        return f"{r.status} {code}"
    promoted = r.headers.get("x-router-attempts", "1") != "1"
    if stream:
        tail = data[-400:]
        if b'"error"' in tail:
            return "stream ended by an in-band error"
        if not tail.rstrip().endswith(b"data: [DONE]"):
            return "stream incomplete (bug)"
    return ("200 after promotion" if promoted else "200") + (" (stream)" if stream else "")


def snapshot(pid: int, upstream_ports: tuple[int, ...]) -> tuple[float, int, int]:
    """RSS, fds and pooled upstream connections once the router's connections have settled (clients idle).

    The keep-alive pools may hold up to `max_concurrency` idle connections per backend, more at the end
    than at the start if the warm-up never needed as many at once: those are bounded and are not leaks."""
    n = settled_fds(pid)
    peers = peer_ports(pid)
    return rss_mb(pid), n, sum(peers[p] for p in upstream_ports)


async def soak(seconds: float, clients: int, warmup: float, workdir: Path) -> dict[str, Any]:
    local = MixedFaults()
    cloud = SimulatedUpstream("cloud", ["gpt-5-mini"], Behavior(first_token_s=0.05, token_delay_s=0.005))
    cloud.requests = collections.deque(maxlen=16)  # type: ignore[assignment]
    local_url, cloud_url = await local.start(), await cloud.start()
    router = await asyncio.to_thread(RouterProcess, router_config(local_url, cloud_url, workdir), workdir,
                                     "soak")
    pid = router.pid
    ports = (int(local_url.rsplit(":", 1)[1].split("/")[0]), int(cloud_url.rsplit(":", 1)[1].split("/")[0]))
    t = Traffic(router.url)
    try:
        print(f"warm-up: {warmup:g} s ...", flush=True)
        async with session(clients) as s:
            await closed_loop(clients, warmup, t.one, s)
        rss0, fds0, pooled0 = await asyncio.to_thread(snapshot, pid, ports)
        print(f"start (after warm-up): RSS {rss0:.1f} MB, {fds0} open fds ({pooled0} pooled upstream connections)",
              flush=True)
        t.ms.clear()
        t.outcomes.clear()
        t.sent = 0
        t0 = time.monotonic()

        def tick(elapsed: float) -> None:
            print(f"  {elapsed:4.0f} s  {t.sent:6d} requests  {t.sent / elapsed:5.1f}/s  "
                  f"RSS {rss_mb(pid):6.1f} MB  fds {fds(pid)}", flush=True)

        async with session(clients) as s:
            await closed_loop(clients, seconds, t.one, s, tick=tick)
        elapsed = time.monotonic() - t0
        rss1, fds1, pooled1 = await asyncio.to_thread(snapshot, pid, ports)
    finally:
        await asyncio.to_thread(router.stop)
        await local.stop()
        await cloud.stop()
    return {"seconds": elapsed, "clients": clients, "requests": t.sent, "rss_start_mb": rss0, "rss_end_mb": rss1,
            "fds_start": fds0, "fds_end": fds1, "pooled_start": pooled0, "pooled_end": pooled1,
            "latency_ms": percentiles(t.ms), "outcomes": dict(t.outcomes)}


def report(r: dict[str, Any]) -> bool:
    growth = (r["rss_end_mb"] - r["rss_start_mb"]) / r["rss_start_mb"]
    lat = r["latency_ms"]
    rest0, rest1 = r["fds_start"] - r["pooled_start"], r["fds_end"] - r["pooled_end"]
    rss_ok, fds_ok = growth < 0.10, rest1 <= rest0 and r["pooled_end"] <= POOL_MAX
    bugs = sum(v for k, v in r["outcomes"].items() if "bug" in k or k.startswith("500 "))
    print(f"\n{r['requests']} requests in {r['seconds']:.0f} s ({r['requests'] / r['seconds']:.1f}/s, "
          f"{r['clients']} clients)")
    print(f"latency ms: p50 {lat['p50']:.0f}  p95 {lat['p95']:.0f}  p99 {lat['p99']:.0f}")
    print(f"RSS: {r['rss_start_mb']:.1f} -> {r['rss_end_mb']:.1f} MB ({growth:+.1%}, target < +10%): "
          f"{'ok' if rss_ok else 'MISSED'}")
    print(f"open fds: {r['fds_start']} -> {r['fds_end']}, of which pooled upstream connections {r['pooled_start']} -> "
          f"{r['pooled_end']} (at most {POOL_MAX}); the rest {rest0} -> {rest1} (target: no growth): "
          f"{'ok' if fds_ok else 'MISSED'}")
    print("outcomes:")
    for k, v in sorted(r["outcomes"].items(), key=lambda kv: -kv[1]):
        print(f"  {v:6d}  {k}")
    if bugs:
        print(f"{bugs} answers were router bugs (500 or an incomplete stream)")
    return rss_ok and fds_ok and not bugs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0, help="measured seconds after the warm-up (120)")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds of traffic before the first reading (60)")
    ap.add_argument("--clients", type=int, default=16, help="concurrent closed-loop clients (16)")
    ap.add_argument("--json", type=Path, help="also write the summary here")
    a = ap.parse_args(argv)
    print(f"soak: {a.clients} clients, {a.warmup:g} s warm-up + {a.seconds:g} s; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="soak-") as d:
        r = uvloop.run(soak(a.seconds, a.clients, a.warmup, Path(d)))
    ok = report(r)
    if a.json:
        a.json.write_bytes(orjson.dumps(r, option=orjson.OPT_INDENT_2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
