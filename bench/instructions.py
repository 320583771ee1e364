"""CPU instructions per request under callgrind: a before/after figure that a loaded machine cannot move.

On the shared 2-core machine, req/s and even CPU µs per request move by 10-20 % between runs; the number
of instructions a server executes per request does not (callgrind counts them, user space only, the same
within ~1 % run to run). Each target runs under `valgrind --tool=callgrind` with instrumentation off
until it has served a warm-up; then `callgrind_control` switches it on for N requests (4 keep-alive
connections, each body unique so the cache never answers) and dumps the count.

    python -m bench.instructions                       # floor, minimal, full: ~1 min
    python -m bench.instructions --ablate              # + full without each stage / without observability
    python -m bench.instructions --requests 2000 --target full
    python -m bench.instructions --source /path/to/other/checkout   # the same figures for another tree

`--ablate` says what each part of `full` costs: full minus the figure without it (removing a stage also
removes the tenant's section for it, which the config would otherwise refuse). `classify` has no such
figure: without it `route` classifies, and `ratelimit` and `budget` estimate tokens themselves. Kernel time (socket
reads and writes, the same for every target) is not counted: instructions say where Python time goes,
`make bench` says what the machine does. Needs `valgrind` (Debian package).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.targets import (
    BENCH_KEY,
    FULL_PIPELINE,
    KEY_ENV,
    Target,
    free_port,
    router_command,
    router_config,
    start_mock,
    stop,
    wait_ready,
)

LOAD_CPU = "0"
WARMUP = 300
SECTIONS = {"budget": "budget", "ratelimit": "limits", "redact": "redact"}  # stage -> its tenant section


def _variants(ablate: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, kind, config overrides) to measure."""
    out: list[tuple[str, str, dict[str, Any]]] = [("floor", "floor", {}), ("minimal", "minimal", {}),
                                                   ("full", "full", {})]
    if ablate:
        out.append(("full without metrics and access log", "full",
                    {"metrics": {"enabled": False}, "logging": {"level": "info", "access_log": False}}))
        out.append(("full without the access log", "full", {"logging": {"level": "info", "access_log": False}}))
        for stage in ("ratelimit", "redact", "cache", "budget"):
            out.append((f"full without {stage}", "full", {"_pipeline": [s for s in FULL_PIPELINE if s != stage]}))
    return out


def config_for(kind: str, upstream_port: int, overrides: dict[str, Any]) -> dict[str, Any]:
    over = dict(overrides)
    pipeline = over.pop("_pipeline", None)
    cfg = {**router_config(kind, upstream_port), **over}
    if pipeline is not None:
        cfg["pipeline"] = pipeline
        for tenant in cfg.get("tenants", []):
            for stage, section in SECTIONS.items():
                if stage not in pipeline:
                    tenant.pop(section, None)
        if "cache" not in pipeline:
            cfg.pop("cache", None)
    return cfg


async def _drive(port: int, body: bytes, auth: str | None, n: int, conns: int = 4) -> None:
    """`n` chat requests over `conns` keep-alive connections, each body unique, each answer read whole."""
    left = [n]
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    if auth:
        head += b"Authorization: Bearer %s\r\n" % auth.encode()

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while left[0] > 0:
                left[0] -= 1
                b = body.replace(b"@N@", b"%d-%s" % (left[0], os.urandom(3).hex().encode()))
                writer.write(head + b"Content-Length: %d\r\n\r\n" % len(b) + b)
                resp = await reader.readuntil(b"\r\n\r\n")
                if not resp.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"unexpected answer: {resp[:200]!r}")
                m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", resp)
                if m is None:
                    raise RuntimeError("the benchmark reads JSON answers with a Content-Length")
                await reader.readexactly(int(m.group(1)))
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(conns)))


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=120)


def measure(kind: str, overrides: dict[str, Any], requests: int, mock_port: int, work: Path,
            source: Path | None = None) -> float:
    """Instructions per request of one target, in thousands."""
    port = free_port()
    out = work / f"callgrind-{port}.out"
    grind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    env = dict(os.environ, **{KEY_ENV: BENCH_KEY})
    cwd = None
    if kind == "floor":
        cmd = [*grind, sys.executable, "-m", "bench.floor_proxy", "--port", str(port), "--upstream",
               f"http://127.0.0.1:{mock_port}/v1"]
    else:
        cfg_path = work / f"router-{port}.json"
        cfg_path.write_bytes(orjson.dumps(config_for(kind, mock_port, overrides)))
        serve = ["serve", "--config", str(cfg_path), "--host", "127.0.0.1", "--port", str(port)]
        if source is not None:  # another checkout: its own code on the path, this environment's packages
            cmd = [*grind, sys.executable, "-m", "router", *serve]
            env["PYTHONPATH"] = str(source)
            cwd = str(source)
        else:
            cmd = [*grind, *router_command(), *serve]
    t = Target(kind, port, log_path=work / f"router-{port}.log")
    body_target = Target(kind, port, model="auto" if kind == "full" else t.model)
    t.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=t.log_path.open("wb"), env=env, cwd=cwd,
                              start_new_session=True)
    try:
        wait_ready(t, 300)
        body = body_target.body(False)
        auth = BENCH_KEY if kind == "full" else None
        asyncio.run(_drive(port, body, auth, WARMUP))
        _control("-i", "on", str(t.pid))
        asyncio.run(_drive(port, body, auth, requests))
        _control("-d", str(t.pid))
        _control("-i", "off", str(t.pid))
    finally:
        stop(t)
    for f in sorted(work.glob(out.name + "*")):
        head = f.read_text(errors="replace")[:4000]
        if "Trigger: dump" in head:
            m = re.search(r"^summary: (\d+)", head, re.M)
            if m:
                return int(m.group(1)) / requests / 1000
    raise RuntimeError(f"no callgrind dump for {kind} (see {t.log_path})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=1000, help="requests counted per target (default 1000)")
    p.add_argument("--ablate", action="store_true", help="also full without each stage and without observability")
    p.add_argument("--target", action="append", help="only these labels (floor, minimal, full, ...)")
    p.add_argument("--source", type=Path, help="measure the router of another checkout (its code, these packages)")
    a = p.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind not found: apt-get install -y valgrind", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    mock = start_mock(free_port(), LOAD_CPU, chunks=50, chunk_delay_ms=1, workdir=work)
    results: dict[str, float] = {}
    try:
        wait_ready(mock)
        variants = [v for v in _variants(a.ablate) if not a.target or v[0] in a.target]
        print(f"k instructions per request under callgrind ({a.requests} requests each, after {WARMUP} "
              f"warm-up){f'; router from {a.source}' if a.source else ''}", flush=True)
        for i, (label, kind, over) in enumerate(variants, 1):
            t0 = time.monotonic()
            results[label] = measure(kind, over, a.requests, mock.port, work, a.source)
            extra = ""
            if label.startswith("full without") and "full" in results:
                extra = f"   (= {results['full'] - results[label]:+.0f}k for what was removed)"
            print(f"  [{i}/{len(variants)}] {label:<42} {results[label]:8.1f}k{extra}   "
                  f"({time.monotonic() - t0:.0f} s)", flush=True)
    finally:
        stop(mock)
        shutil.rmtree(work, ignore_errors=True)
    if "floor" in results:
        for label in ("minimal", "full"):
            if label in results:
                print(f"  {label} / floor: {results[label] / results['floor']:.2f}x the floor's instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
