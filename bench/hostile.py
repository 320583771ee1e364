"""Replay the hostile cases against a running router and show what each costs it (issue 10).

    python -m bench.hostile [--body-mb 16] [--case NAME ...]

Starts the hostile upstream (bench/hostile_upstream.py, one misbehaviour per model id) in this process and
a router as a child process (`ai-router serve`) in front of it, then replays each case once: a request
for that model, or for the client-side cases a crowd of slowloris / idle connections. While a case runs it
samples the router's RSS (/proc) and the latency of `GET /healthz` every 20 ms; after it, it waits for the
router's fd count to come back to where it started. One line per case:

    case  answer  time  RSS growth (peak - start)  /healthz max and p50  fds start -> peak -> end

Targets: RSS growth < 64 MB, /healthz < 50 ms, fds back to their start value after each case. Timings
depend on the machine's load: on a shared 2-core machine a /healthz outlier is the scheduler's as often
as the router's.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from bench.hostile_upstream import CASES, backend_config
from bench.procstat import fds, settled_fds
from bench.procstat import process_rss_mb as rss_mb

HEALTH_EVERY_S = 0.02
FD_SETTLE_S = 4.0
HEAD_TIMEOUT_S = 2.0
CROWD = 300
UPSTREAM_CASES = list(CASES)  # "ok" first: the baseline of a well-behaved upstream on this machine, now
UPSTREAM_CASES.insert(0, UPSTREAM_CASES.pop(UPSTREAM_CASES.index("ok")))
STREAMED = {"sse-no-boundary", "sse-huge-event", "gzip-sse", "multi-usage", "slow-stream"}
CLIENT_CASES = ["slowloris", "idle-connections", "slow-reader"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Upstream:
    """The hostile upstream in a child process (so its busy loops do not share this process's GIL)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.hostile_upstream", "0"], stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Router:
    """`ai-router serve` in a child process, in front of the hostile upstream."""

    def __init__(self, upstream_url: str, body_mb: float) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = {
            "server": {"host": "127.0.0.1", "port": self.port, "max_upstream_body_mb": body_mb,
                       "request_head_timeout_s": HEAD_TIMEOUT_S, "keepalive_s": 5, "write_timeout_s": 2},
            "state": {"url": "memory://"},
            "logging": {"level": "error", "access_log": False},
            "backends": [backend_config(upstream_url, total_s=5)],
            "routing": {"tiers": ["hostile"]},
            "pipeline": ["route", "retry"],
        }
        self.dir = tempfile.TemporaryDirectory(prefix="hostile-")
        path = Path(self.dir.name) / "router.yaml"
        path.write_text(yaml.safe_dump(cfg))
        env = {**os.environ, "AI_ROUTER_HOSTILE_KEY": "sk-bench-hostile-key-0123456789"}
        self.proc = subprocess.Popen([sys.executable, "-m", "router", "serve", "--config", str(path)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the router did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.dir.cleanup()


class Probe:
    """Samples RSS and /healthz latency while a case runs."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.pid = router.proc.pid
        self.rss_peak = 0.0
        self.fds_peak = 0
        self.health_ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.router.url, timeout=10) as c:
            while not self._stop.is_set():
                self.rss_peak = max(self.rss_peak, rss_mb(self.pid))
                self.fds_peak = max(self.fds_peak, fds(self.pid))
                t0 = time.perf_counter()
                c.get("/healthz")
                self.health_ms.append((time.perf_counter() - t0) * 1000)
                self._stop.wait(HEALTH_EVERY_S)

    def __enter__(self) -> Probe:
        self._thread.start()
        time.sleep(0.1)  # a few samples before the case starts
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.1)  # and a few after it
        self._stop.set()
        self._thread.join()


def _upstream_case(router: Router, case: str) -> str:
    body = {"model": case, "messages": [{"role": "user", "content": "hi"}], "stream": case in STREAMED}
    with httpx.Client(timeout=60) as c, c.stream("POST", router.url + "/v1/chat/completions",
                                                 content=orjson.dumps(body)) as r:
        data = b"".join(r.iter_bytes())
    if r.status_code != 200:
        return f"{r.status_code} {orjson.loads(data)['error']['code']}"
    if b'"error"' in data[-600:]:
        i = data.rfind(b'data: {"error"')
        return "200+in-band " + orjson.loads(data[i + 6:].split(b"\n\n")[0])["error"]["code"]
    return "200"


def _client_case(router: Router, case: str) -> str:
    host, port = "127.0.0.1", router.port
    socks: list[socket.socket] = []
    try:
        if case == "slow-reader":
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect((host, port))
            body = orjson.dumps({"model": "slow-stream", "messages": [{"role": "user", "content": "x"}],
                                 "stream": True})
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(body), body))
            socks.append(s)
            time.sleep(3)
            return "held 3 s without reading"
        for _ in range(CROWD):
            s = socket.create_connection((host, port))
            if case == "slowloris":
                s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        closed = 0
        deadline = time.time() + HEAD_TIMEOUT_S * 3
        for s in socks:
            s.settimeout(max(0.01, deadline - time.time()))
            try:
                while s.recv(65536):
                    pass
                closed += 1
            except OSError:
                pass
        return f"{closed}/{CROWD} closed by the router"
    finally:
        for s in socks:
            s.close()


def run_case(router: Router, case: str, repeat: int) -> dict[str, Any]:
    """The case `repeat` times: slowest time, largest RSS growth, all /healthz samples, fds of each run."""
    pid = router.proc.pid
    times, growth, health, counts, answer = [], [], [], [], ""
    for _ in range(repeat):
        fds0, rss0 = settled_fds(pid, FD_SETTLE_S, 0.3), rss_mb(pid)
        t0 = time.perf_counter()
        with Probe(router) as probe:
            answer = _client_case(router, case) if case in CLIENT_CASES else _upstream_case(router, case)
        times.append(time.perf_counter() - t0)
        deadline = time.time() + FD_SETTLE_S
        while fds(pid) != fds0 and time.time() < deadline:
            time.sleep(0.05)
        growth.append(max(0.0, probe.rss_peak - rss0))
        health += probe.health_ms
        counts.append((fds0, probe.fds_peak, fds(pid)))
    health.sort()
    return {"case": case, "answer": answer, "s": max(times), "rss_growth_mb": max(growth),
            "health_p50_ms": statistics.median(health), "health_p99_ms": health[int(len(health) * 0.99)],
            "health_max_ms": health[-1], "samples": len(health), "fds": counts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--body-mb", type=float, default=16, help="server.max_upstream_body_mb of the router (16)")
    ap.add_argument("--case", action="append", choices=UPSTREAM_CASES + CLIENT_CASES, help="only these cases")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each case (3)")
    args = ap.parse_args(argv)
    cases = args.case or UPSTREAM_CASES + CLIENT_CASES
    up = Upstream()
    router = Router(up.url, args.body_mb)
    ok = True
    try:
        print(f"router pid {router.proc.pid}, max_upstream_body_mb {args.body_mb:g}, "
              f"request_head_timeout_s {HEAD_TIMEOUT_S:g}; {len(cases)} cases x {args.repeat}; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        print(f"| {'case':16} | {'answer':30} | {'time s':>6} | {'RSS +MB':>7} | {'healthz p50/p99/max ms':>22} "
              f"| {'fds start>peak>end':18} | target |")
        print(f"|{'-' * 18}|{'-' * 32}|{'-' * 8}|{'-' * 9}|{'-' * 24}|{'-' * 20}|--------|")
        for case in cases:
            r = run_case(router, case, args.repeat)
            fds_back = all(f1 == f0 for f0, _, f1 in r["fds"])
            good = r["rss_growth_mb"] < 64 and r["health_max_ms"] < 50 and fds_back
            ok &= good
            f0, fp, f1 = r["fds"][-1]
            print(f"| {case:16} | {r['answer']:30} | {r['s']:6.2f} | {r['rss_growth_mb']:7.1f} | "
                  f"{r['health_p50_ms']:6.1f} / {r['health_p99_ms']:5.1f} / {r['health_max_ms']:5.1f} | "
                  f"{f'{f0}>{fp}>{f1}':18} | {'ok' if good else 'MISSED':6} |", flush=True)
    finally:
        router.stop()
        up.stop()
    print("all targets met" if ok else "some targets missed (see MISSED)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
