"""µs per request of the spend-control store calls on each store, in process (`python -m bench.state_store`).

Per request: the ratelimit reserve (rpm + tpm), the budget's level read and worst-case reserve, and the
settle with its ledger entry: what `ratelimit` + `budget` ask of the store. Redis needs 127.0.0.1:6379
(keys under a random prefix, deleted after).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid

from router.state import Charge, SpendEntry, Store, open_store, windows


async def run(store: Store, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        now = time.time()
        m, mend = windows.minute(now)
        d, dend = windows.day(now)
        await store.reserve([Charge(f"rl:r:t:x:{m}", 1, 1e9, mend, hold=False),
                             Charge(f"rl:t:t:x:{m}", 50, 1e12, mend, hold=False)])
        await store.levels([f"budget:t:x:{d}"])
        g = await store.reserve([Charge(f"budget:t:x:{d}", 0.001, 1e9, dend)])
        await store.settle(g, 0.0009, SpendEntry("t/x", "gpt-5", "cloud-high", cost_usd=0.0009, baseline_usd=0.001,
                                                 ts=now))
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


async def main() -> None:
    prefix = f"bench:{uuid.uuid4().hex}:"
    urls = {"memory": "memory://", "sqlite": f"sqlite:///{tempfile.mkdtemp()}/bench.db",
            "redis": f"redis://127.0.0.1:6379/0?prefix={prefix}"}
    for name, url in urls.items():
        s = open_store(url)
        try:
            await s.start()
        except Exception as e:  # Redis not running: say so, go on
            print(f"{name}: skipped ({e})")
            continue
        await run(s, 500)
        ts = sorted(await run(s, 5000 if name != "redis" else 2000))
        print(f"{name}: median {statistics.median(ts):.1f} us, p99 {ts[int(len(ts) * 0.99)]:.1f} us")
        if name == "redis":
            r = s.r  # type: ignore[attr-defined]
            keys = [k async for k in r.scan_iter(match=prefix + "*")]
            if keys:
                await r.delete(*keys)
        await s.aclose()


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    asyncio.run(main())
