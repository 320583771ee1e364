"""What observability costs: the end-of-request hook alone, and req/s of the full router with it on vs off.

    python -m bench.observe                 # both parts (~1 min): microbenchmark, then 3 rounds of wrk
    python -m bench.observe --micro         # only the in-process microbenchmark (no wrk needed)
    python -m bench.observe --rounds 5 --seconds 5

1. Microbenchmark: `Observer.finish(ex)` on a realistic finished exchange (features, a priced target, usage,
   two attempts), in µs per call, for: everything off; metrics (one process, and each worker under
   `--workers N`, which publishes snapshots once a second instead); metrics with prometheus-client's mmap
   multiprocess mode (the design not taken, for comparison); metrics + the JSON access log (to /dev/null);
   + tracing (spans made, not exported).
   Tracing off costs `ex.trace is None`; the line "tracing off vs no tracing code" measures exactly that.
2. Load: the `full` router of `make bench` (every stage configured, `model: auto`) pinned to core 1, wrk
   with 32 connections on core 0 against the mock upstream, alternating "on" (metrics + JSON access log to
   a file) and "off" (`metrics.enabled: false`, `logging.access_log: false`) for N rounds; medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procstat
from bench.load import run_wrk
from bench.targets import free_port, start_mock, start_router, stop, wait_ready

LOAD_CPU, SERVER_CPU = "0", "1"


# ---------------------------------------------------------------- 1. in-process

MICRO = r"""
import os, sys, time, tempfile
mode = sys.argv[1]
if mode == "multiprocess":  # the alternative not taken: prometheus-client's mmap multiprocess mode
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bench-mp-")
    from prometheus_client import values
    values.ValueClass = values.MultiProcessValue()
from prometheus_client import CollectorRegistry
from router.config import parse
from router.exchange import Attempt, Candidate, Exchange, Features
from router.observe.accesslog import AccessLog
from router.observe.metrics import Metrics
from router.observe.observer import Observer

cfg = {"metrics": {"enabled": mode != "off"}, "logging": {"access_log": False},
       "tracing": {"enabled": mode == "tracing", "exporter": "none"},
       "backends": [{"name": "cloud", "base_url": "http://127.0.0.1:9/v1",
                     "models": [{"id": "gpt-5-mini", "tier": "cloud-mini", "price": {"input": 0.25, "output": 2}},
                                {"id": "gpt-5", "tier": "cloud-high", "price": {"input": 1.25, "output": 10}}]}]}
config = parse(cfg)
from backends import make_backend
backends = {b.name: make_backend(b) for b in config.backends}
obs = Observer(config, backends, Metrics(CollectorRegistry()) if mode != "off" else None)
if mode in ("access", "tracing"):
    obs.access = AccessLog(True, "json", fd=os.open(os.devnull, os.O_WRONLY))
model = config.backends[0].models[0]
cand = Candidate(model, backends["cloud"], "cloud-mini")
usage = {"prompt_tokens": 312, "completion_tokens": 120, "total_tokens": 432}
tasks = ["chat", "code", "docs", "math"]
headers = {}

def one(i):
    ex = Exchange("bench-%d" % i, "chat", {"model": "auto", "messages": []}, None, headers)
    ex.features = Features(task=tasks[i % 4], complexity="low", tokens=312, difficulty=0.2)
    ex.target = cand
    ex.tenant = "acme/web"
    ex.status = 200
    ex.usage = usage
    ex.cost_usd = 0.000318
    ex.overhead_s = 0.0003
    ex.attempts = [Attempt("gpt-5-mini", "cloud", "cloud-mini", "ok", 80.0)]
    if obs.tracer is not None:
        obs.begin(ex, headers)
    return ex

N = int(sys.argv[2])
exs = [one(i) for i in range(N)]
t = time.perf_counter()
flush = obs.metrics.flush if mode == "multiprocess" else None  # mmap values are written when numbers flush:
for ex in exs:                                                  # per request, as that mode would
    obs.finish(ex)
    if flush is not None:
        flush()
dt = time.perf_counter() - t
print("%.3f" % (dt / N * 1e6))
"""

NOOP = r"""
import sys, time
class E: __slots__ = ("trace",)
exs = [E() for _ in range(int(sys.argv[1]))]
for e in exs: e.trace = None
t = time.perf_counter()
for e in exs:
    if e.trace is not None:
        pass
print("%.4f" % ((time.perf_counter() - t) / len(exs) * 1e6))
"""


MODES = {"off": "everything off", "metrics": "metrics (also each --workers worker)",
         "multiprocess": "metrics, prometheus-client mmap mode",
         "access": "metrics + JSON access log", "tracing": "metrics + access log + tracing"}


def micro(n: int = 30_000, repeats: int = 5) -> dict[str, float]:
    """µs per `Observer.finish`: the best of `repeats` fresh processes per mode, modes interleaved."""
    runs: dict[str, list[float]] = {m: [] for m in MODES}
    for _ in range(repeats):
        for mode in MODES:
            r = subprocess.run([sys.executable, "-c", MICRO, mode, str(n)], capture_output=True, text=True,
                               check=True, cwd=Path(__file__).resolve().parent.parent)
            runs[mode].append(float(r.stdout.strip()))
    out = {m: min(v) for m, v in runs.items()}
    for mode, label in MODES.items():
        print(f"  {label:<38} {out[mode]:7.2f} µs  (median {statistics.median(runs[mode]):.2f})", flush=True)
    r = subprocess.run([sys.executable, "-c", NOOP, str(n * 4)], capture_output=True, text=True, check=True)
    out["tracing_off_check"] = float(r.stdout.strip())
    print(f"  tracing off: one `ex.trace is None` check: {out['tracing_off_check']:.4f} µs", flush=True)
    return out


# ---------------------------------------------------------------- 2. load

def load(rounds: int, seconds: float) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-observe-"))
    mock = start_mock(free_port(), LOAD_CPU, chunks=50, chunk_delay_ms=1, workdir=work)
    on = off = None
    try:
        wait_ready(mock)
        on = start_router("full", free_port(), mock.port, SERVER_CPU, work, overrides={})
        on.name = "observability on"
        off = start_router("full", free_port(), mock.port, SERVER_CPU, work,
                           overrides={"metrics": {"enabled": False}, "logging": {"level": "info",
                                                                                 "access_log": False}})
        off.name = "observability off"
        for t in (on, off):
            wait_ready(t)
        body = work / "body.json"
        body.write_bytes(on.body(False))
        results: dict[str, list[float]] = {"on": [], "off": []}
        cpu: dict[str, list[float]] = {"on": [], "off": []}
        for r in range(rounds):
            order = [("on", on), ("off", off)] if r % 2 == 0 else [("off", off), ("on", on)]
            for name, t in order:
                run_wrk(t.url(), body_file=body, connections=32, duration_s=1, cpu=LOAD_CPU, auth=t.auth)  # warm
                before = procstat.cpu_seconds(t.pid)
                w = run_wrk(t.url(), body_file=body, connections=32, duration_s=seconds, cpu=LOAD_CPU, auth=t.auth)
                used = procstat.cpu_seconds(t.pid) - before
                if w.error_count:
                    raise RuntimeError(f"{t.name}: {w.error_count} errors under load")
                results[name].append(w.rps)
                cpu[name].append(used / max(w.requests, 1) * 1e6)
                print(f"  round {r + 1} {t.name:<18} {w.rps:8.0f} req/s  {cpu[name][-1]:6.1f} µs CPU/req", flush=True)
        med = {k: statistics.median(v) for k, v in results.items()}
        mcpu = {k: statistics.median(v) for k, v in cpu.items()}
        cost = (med["off"] - med["on"]) / med["off"] * 100
        cpu_cost = (mcpu["on"] - mcpu["off"]) / mcpu["off"] * 100
        lines = on.log_path.read_bytes().count(b'"event":"request"') if on.log_path else 0
        print(f"  median: on {med['on']:.0f} req/s, {mcpu['on']:.1f} µs CPU/req; off {med['off']:.0f} req/s, "
              f"{mcpu['off']:.1f} µs CPU/req: {cost:.1f}% fewer req/s, {cpu_cost:.1f}% more CPU per request "
              f"({lines} access-log lines written)", flush=True)
        return {"rps": results, "cpu_us": cpu, "median": med, "cpu_median": mcpu, "cost_pct": cost,
                "cpu_cost_pct": cpu_cost, "access_lines": lines}
    finally:
        for t in (on, off, mock):
            if t is not None:
                stop(t)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.observe", description=__doc__.split("\n")[0])
    p.add_argument("--micro", action="store_true", help="only the in-process microbenchmark")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    a = p.parse_args(argv)
    print(f"observability cost on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')} "
          "(a shared, loaded machine: read the spread)", flush=True)
    print("1. Observer.finish per request (in process):", flush=True)
    micro()
    if not a.micro:
        print(f"2. full router, wrk -c32 {a.seconds:g}s x {a.rounds} rounds, alternating:", flush=True)
        load(a.rounds, a.seconds)


if __name__ == "__main__":
    main()
