"""The benchmark run: start everything pinned, check bytes, measure in alternating rounds, summarise.

Layout on a 2-core machine: this process, `wrk`, the stream client and the mock upstream share the load
core; the floor and the routers share the other (only one is ever under load). Every round measures
each target in turn (the order rotates per round): saturation throughput and CPU per request (wrk, 32
connections), latency at 1 and 8 connections, time to first SSE event (one connection, sequential
streams) and CPU per 50-chunk stream (16 concurrent streams). "Added" figures subtract the same round's
direct-to-upstream figure. Then: peak RSS of each target, a py-spy profile of each router under
saturation, `--workers` scaling without pinning, and the per-stage microbenchmark.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
import uvloop

from bench import procstat, profile, stream_client
from bench.load import pin, run_wrk, wrk_path
from bench.mock_upstream import json_body, sse_body
from bench.targets import (
    Target,
    active_stages,
    free_port,
    start_floor,
    start_mock,
    start_router,
    stop,
    wait_ready,
)

T = TypeVar("T")
LOAD_CPU = "0"
SERVER_CPU = "1"
ALL_CPUS = "0,1"
SAT_CONNECTIONS = 32
STREAM_CONCURRENCY = 16


@dataclass(slots=True)
class Plan:
    """How long each measurement runs; `quick()` trades precision for a ~90 s run."""

    rounds: int = 3
    sat_s: float = 5
    lat_s: float = 3
    ttfe_streams: int = 30
    cpu_streams: int = 480
    chunks: int = 50
    chunk_delay_ms: float = 1.0
    warmup_s: float = 2
    workers_s: float = 4
    workers_rounds: int = 3
    profile_s: float = 8
    stage_iterations: int = 2000
    workers: bool = True
    profile: bool = True
    stages: bool = True
    state_url: str = "memory://"

    @classmethod
    def quick(cls) -> Plan:
        return cls(sat_s=2, lat_s=1, ttfe_streams=12, cpu_streams=160, warmup_s=1, workers_s=2,
                   workers_rounds=1, profile_s=4, stage_iterations=300, workers=False, profile=False)


def _arun(coro: Coroutine[Any, Any, T], timeout_s: float = 120) -> T:
    """Run one client coroutine on a fresh uvloop loop, bounded in time."""
    return uvloop.run(asyncio.wait_for(coro, timeout_s))


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def spread(values: list[float]) -> dict[str, float]:
    """Median and min-max of one metric over rounds."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


# ---------------------------------------------------------------- one measurement each


def _template_file(t: Target, stream: bool, workdir: Path) -> Path:
    path = workdir / f"body-{t.port}-{'stream' if stream else 'json'}.json"
    if not path.exists():
        path.write_bytes(t.body(stream))
    return path


def saturate(t: Target, seconds: float, workdir: Path, cpu: str | None = LOAD_CPU) -> dict[str, float]:
    before = procstat.cpu_seconds(t.pid)
    with procstat.RssSampler(t.pid) as rss:
        r = run_wrk(t.url(), body_file=_template_file(t, False, workdir), connections=SAT_CONNECTIONS,
                    duration_s=seconds, cpu=cpu, auth=t.auth)
    used = procstat.cpu_seconds(t.pid) - before
    return {"rps": r.rps, "cpu_us_per_req": used / max(r.requests, 1) * 1e6,
            "sat_p50_ms": r.latency_us["p50"] / 1000, "sat_p99_ms": r.latency_us["p99"] / 1000,
            "rss_mb": rss.peak_mb, "errors": r.error_count}


def latency(t: Target, connections: int, seconds: float, workdir: Path) -> dict[str, float]:
    r = run_wrk(t.url(), body_file=_template_file(t, False, workdir), connections=connections,
                duration_s=seconds, cpu=LOAD_CPU, auth=t.auth)
    c = f"c{connections}"
    return {f"{c}_p50_ms": r.latency_us["p50"] / 1000, f"{c}_p99_ms": r.latency_us["p99"] / 1000,
            f"{c}_rps": r.rps, "errors": r.error_count}


def _check_bodies(bodies: list[bytes], expected: bytes) -> int:
    return sum(b != expected for b in bodies)


def ttfe(t: Target, plan: Plan) -> dict[str, float]:
    r = _arun(stream_client.ttfe("127.0.0.1", t.port, "/v1/chat/completions", t.body(True),
                                      plan.ttfe_streams, t.auth))
    return {"ttfe_ms": statistics.median(r.ttfe_s) * 1000,
            "stream_mismatches": _check_bodies(r.bodies, sse_body(plan.chunks))}


def stream_cpu(t: Target, plan: Plan, burst: bool) -> dict[str, float]:
    """CPU per stream: paced (one read per event, as a model streams) or burst (the whole stream at once)."""
    before = procstat.cpu_seconds(t.pid)
    r = _arun(stream_client.streams("127.0.0.1", t.port, "/v1/chat/completions", t.body(True, burst),
                                    plan.cpu_streams, STREAM_CONCURRENCY, t.auth))
    used = procstat.cpu_seconds(t.pid) - before
    key = "burst" if burst else "paced"
    return {f"cpu_us_per_stream_{key}": used / plan.cpu_streams * 1e6,
            f"streams_per_s_{key}": plan.cpu_streams / r.wall_s,
            "stream_mismatches": _check_bodies(r.bodies, sse_body(plan.chunks))}


# ---------------------------------------------------------------- correctness before timing


def _post(t: Target, stream: bool) -> tuple[int, bytes]:
    async def go() -> tuple[int, bytes]:
        if stream:
            try:
                r = await stream_client.ttfe("127.0.0.1", t.port, "/v1/chat/completions", t.body(True), 1,
                                             t.auth, tag="check")
            except stream_client.StreamError as e:
                return 0, str(e).encode()
            return 200, r.bodies[0]
        reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
        body = t.body(False).replace(b"@N@", b"check")
        auth = f"Authorization: Bearer {t.auth}\r\n" if t.auth else ""
        writer.write(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
        )
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)).lower()
        length = int(head.split(b"content-length:")[1].split(b"\r\n")[0]) if b"content-length:" in head else 0
        payload = await asyncio.wait_for(reader.readexactly(length), 30)
        writer.close()
        return int(head.split()[1]), payload

    return _arun(go(), 60)


def byte_check(t: Target, plan: Plan) -> dict[str, Any]:
    """The streamed body must equal what the upstream sent, byte for byte; JSON is compared too."""
    status, stream = _post(t, True)
    jstatus, jbody = _post(t, False)
    expected = sse_body(plan.chunks)
    out: dict[str, Any] = {
        "stream_identical": status == 200 and stream == expected,
        "json_identical": jstatus == 200 and jbody == json_body(plan.chunks),
        "json_status": jstatus,
    }
    if not out["stream_identical"]:
        first_diff = next((i for i, (a, b) in enumerate(zip(stream, expected, strict=False)) if a != b),
                          min(len(stream), len(expected)))
        out["stream_detail"] = (f"status {status}, {len(stream)} vs {len(expected)} bytes, first difference at "
                                f"byte {first_diff}: {stream[max(0, first_diff - 40):first_diff + 80]!r}")
    if not out["json_identical"]:
        out["json_detail"] = f"status {jstatus}: {jbody[:200]!r}"
    return out


# ---------------------------------------------------------------- phases


def _measure(t: Target, direct: bool, plan: Plan, workdir: Path) -> dict[str, float]:
    m: dict[str, float] = {}
    if not direct:
        m.update(saturate(t, plan.sat_s, workdir))
    errors = m.pop("errors", 0)
    for c in (1, 8):
        r = latency(t, c, plan.lat_s, workdir)
        errors += r.pop("errors")
        m.update(r)
    r2 = ttfe(t, plan)
    mismatches = r2.pop("stream_mismatches")
    m.update(r2)
    if not direct:
        for burst in (False, True):
            r3 = stream_cpu(t, plan, burst)
            mismatches += r3.pop("stream_mismatches")
            m.update(r3)
    m["errors"] = errors
    m["stream_mismatches"] = mismatches
    return m


def _added(rounds: list[dict[str, dict[str, float]]], direct: str) -> None:
    """Add `added_*` metrics: a target's figure minus the direct upstream's in the same round."""
    for rnd in rounds:
        base = rnd[direct]
        for name, m in rnd.items():
            if name == direct:
                continue
            for key in ("c1_p50_ms", "c1_p99_ms", "c8_p50_ms", "c8_p99_ms", "ttfe_ms"):
                m["added_" + key] = m[key] - base[key]


def rounds_phase(direct: Target, targets: list[Target], plan: Plan, workdir: Path) -> list[dict[str, Any]]:
    everyone = [direct, *targets]
    log(f"warm-up {plan.warmup_s:g}s each")
    for t in targets:
        run_wrk(t.url(), body_file=_template_file(t, False, workdir), connections=8,
                duration_s=plan.warmup_s, cpu=LOAD_CPU, auth=t.auth)
        _arun(stream_client.streams("127.0.0.1", t.port, "/v1/chat/completions", t.body(True), 32, 8,
                                         t.auth, tag="w"))
    rounds: list[dict[str, Any]] = []
    for i in range(plan.rounds):
        order = everyone[i % len(everyone):] + everyone[: i % len(everyone)]
        rnd: dict[str, Any] = {}
        for t in order:
            log(f"round {i + 1}/{plan.rounds}: {t.name}")
            rnd[t.name] = _measure(t, t is direct, plan, workdir)
        rounds.append(rnd)
    _added(rounds, direct.name)
    return rounds


def summarise(rounds: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in rounds[0]:
        keys = rounds[0][name].keys()
        out[name] = {k: spread([r[name][k] for r in rounds]) for k in keys}
    return out


def workers_phase(plan: Plan, workdir: Path) -> dict[str, Any]:
    """Throughput with 1 and 2 workers, nothing pinned (all processes may use both cores)."""
    mock = start_mock(free_port(), ALL_CPUS, plan.chunks, plan.chunk_delay_ms, workdir)
    wait_ready(mock)
    starts: list[tuple[str, Callable[[], Target]]] = []
    for w in (1, 2):
        starts.append((f"floor x{w}", lambda w=w: start_floor(free_port(), mock.port, ALL_CPUS, workdir, w)))
    for kind in ("minimal", "full"):
        for w in (1, 2):
            starts.append((f"{kind} x{w}", lambda kind=kind, w=w: start_router(
                kind, free_port(), mock.port, ALL_CPUS, workdir, w, plan.state_url)))
    results: dict[str, list[float]] = {name: [] for name, _ in starts}
    rss: dict[str, float] = {}
    try:
        for r in range(plan.workers_rounds):
            for name, make in starts:
                log(f"workers round {r + 1}/{plan.workers_rounds}: {name}")
                t = make()
                try:
                    wait_ready(t)
                    run_wrk(t.url(), body_file=_template_file(t, False, workdir), connections=SAT_CONNECTIONS,
                            duration_s=1, cpu=ALL_CPUS, auth=t.auth)
                    m = saturate(t, plan.workers_s, workdir, cpu=ALL_CPUS)
                    results[name].append(m["rps"])
                    rss[name] = max(rss.get(name, 0.0), m["rss_mb"])
                finally:
                    stop(t)
    finally:
        stop(mock)
    summary = {name: spread(v) for name, v in results.items()}
    scaling = {k: summary[f"{k} x2"]["median"] / summary[f"{k} x1"]["median"] for k in ("floor", "minimal", "full")}
    return {"rps": summary, "scaling": scaling, "rss_mb_per_worker": rss, "seconds": plan.workers_s,
            "rounds": plan.workers_rounds}


def stages_phase(plan: Plan, workdir: Path) -> dict[str, Any]:
    out = workdir / "stages.json"
    cmd = [*pin(SERVER_CPU), sys.executable, "-m", "bench.stages", "--iterations", str(plan.stage_iterations),
           "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0 or not out.exists():
        return {"error": (proc.stderr or proc.stdout)[-2000:]}
    return orjson.loads(out.read_bytes())  # type: ignore[no-any-return]


def _versions() -> dict[str, str]:
    import aiohttp

    wrk_v = subprocess.run([wrk_path(), "--version"], capture_output=True, text=True, check=False)
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    root = str(Path(__file__).parent.parent)
    rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "router", "middleware", "backends"],
                           capture_output=True, text=True, check=False).stdout.strip()
    rev += " with uncommitted changes" if rev and dirty else ""
    return {"python": platform.python_version(), "aiohttp": aiohttp.__version__, "uvloop": uvloop.__version__,
            "orjson": orjson.__version__, "wrk": (wrk_v.stdout or wrk_v.stderr).split("[")[0].strip(),
            "cpu": model, "cores": str(os.cpu_count()), "kernel": platform.release(), "git": rev or "-"}


# ---------------------------------------------------------------- the whole run


def run(plan: Plan, quick: bool) -> dict[str, Any]:
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    started = time.time()
    results: dict[str, Any] = {"plan": asdict(plan), "quick": quick, "versions": _versions(),
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="ai-router-bench-") as tmp:
        workdir = Path(tmp)
        mock = start_mock(free_port(), LOAD_CPU, plan.chunks, plan.chunk_delay_ms, workdir)
        floor = start_floor(free_port(), mock.port, SERVER_CPU, workdir)
        minimal = start_router("minimal", free_port(), mock.port, SERVER_CPU, workdir, 1, plan.state_url)
        full = start_router("full", free_port(), mock.port, SERVER_CPU, workdir, 1, plan.state_url)
        targets = [floor, minimal, full]
        try:
            for t in (mock, *targets):
                wait_ready(t)
            results["pipelines"] = {t.name: active_stages(t) for t in (minimal, full)}
            log("byte-for-byte check of streamed and JSON bodies")
            results["check"] = {t.name: byte_check(t, plan) for t in (mock, *targets)}
            rounds = rounds_phase(mock, targets, plan, workdir)
            results["rounds"] = rounds
            results["summary"] = summarise(rounds)
            results["rss_mb"] = {t.name: max(r[t.name]["rss_mb"] for r in rounds) for t in targets}
            results["hwm_mb"] = {t.name: max(procstat.peak_rss_mb(t.pid).values(), default=0.0) for t in targets}
            if plan.profile:
                results["profiles"] = {}
                for t in (full, minimal, floor):
                    log(f"py-spy profile of {t.name}, {plan.profile_s:g}s under saturation")
                    results["profiles"][t.name] = profile.profile_under_load(
                        t, lambda t=t: saturate(t, plan.profile_s, workdir), plan.profile_s, LOAD_CPU, workdir)
        finally:
            for t in (*targets, mock):
                stop(t)
        if plan.workers:
            results["workers"] = workers_phase(plan, workdir)
        if plan.stages:
            log("per-stage microbenchmark")
            results["stages"] = stages_phase(plan, workdir)
    results["wall_s"] = time.time() - started
    return results
