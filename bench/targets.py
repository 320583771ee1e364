"""What the benchmark measures: the mock upstream, the floor proxy and the router, as pinned processes.

`Target` is one server under test with the request bodies it gets. Builders start each kind as a child
process (`taskset -c CPU ...`), wait for `GET /healthz`, and stop it by pid. `router_config()` writes the
two router configs compared with the floor: `minimal` (`pipeline: [route, retry]`, concrete model, no
access log) and `full` (every stage of the default pipeline with every stage configured to do its work,
`model: auto` so `classify` runs, JSON access log on).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.load import pin

PY = sys.executable
BENCH_KEY = "sk-bench-0123456789abcdef"
KEY_ENV = "AI_ROUTER_BENCH_KEY"
CONCRETE_MODEL = "bench-mini"
FULL_PIPELINE = ["auth", "ratelimit", "redact", "classify", "cache", "budget", "route", "retry"]
MINIMAL_PIPELINE = ["route", "retry"]
HUGE = 1_000_000_000

# ~300 tokens of ordinary chat (o200k_base): no secrets, so `redact` scans but changes nothing.
PROMPT = (
    "I am planning a three day walking trip through the hills north of the city next month and I would "
    "like some help putting together a sensible plan. I usually walk about fifteen to twenty kilometres a "
    "day at an easy pace, I prefer quiet paths over busy roads, and I like to stop at small villages for "
    "lunch. The weather at that time of year is usually mild, but it can rain in the afternoons, so I want "
    "to keep each day flexible. Could you suggest how to split the route into three stages, what to pack "
    "for changeable weather without carrying too much, and how to pick places to stay overnight that do "
    "not need to be booked far in advance? I would also like a few ideas for what to do if one of the days "
    "turns out to be very wet, for example shorter alternative routes or interesting indoor places nearby. "
    "Finally, please give me a short checklist I can print and keep in my pocket, with the most important "
    "things to remember each morning before setting off, such as water, food, a map, a charged phone and "
    "telling someone where I am going. Keep the answer practical and friendly, and please avoid very long "
    "lists. Request @N@."
)


@dataclass(slots=True)
class Target:
    """One server under test."""

    name: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    model: str = CONCRETE_MODEL
    auth: str | None = None
    log_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def url(self, path: str = "/v1/chat/completions") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def body(self, stream: bool, burst: bool = False) -> bytes:
        """The request template (with `@N@`) this target gets; streams ask for usage, so bytes match.

        `burst` asks the mock for the whole stream in one write (see `bench/mock_upstream.py`).
        """
        b: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": PROMPT + (" [burst]" if burst else "")},
            ],
            "max_tokens": 256,
        }
        if stream:
            b["stream"] = True
            b["stream_options"] = {"include_usage": True}
        return orjson.dumps(b)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(
    cmd: list[str], cpu: str | None, log: Path | None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    out = log.open("wb") if log else subprocess.DEVNULL
    return subprocess.Popen(
        [*pin(cpu), *cmd], stdout=subprocess.DEVNULL, stderr=out, env=env, start_new_session=True
    )


def wait_ready(t: Target, timeout_s: float = 30.0) -> None:
    """Poll `GET /healthz` until it answers 200; fail early if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if t.proc is not None and t.proc.poll() is not None:
            tail = t.log_path.read_text(errors="replace")[-2000:] if t.log_path else ""
            raise RuntimeError(f"{t.name} exited with {t.proc.returncode} before it was ready\n{tail}")
        try:
            with urllib.request.urlopen(t.url("/healthz"), timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{t.name} not ready on port {t.port} after {timeout_s:g}s")


def stop(t: Target) -> None:
    """SIGTERM the target's process group (it was started in its own session), then SIGKILL if needed."""
    if t.proc is None or t.proc.poll() is not None:
        return
    try:
        os.killpg(t.proc.pid, signal.SIGTERM)
        t.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(t.proc.pid, signal.SIGKILL)
        t.proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def start_mock(port: int, cpu: str | None, chunks: int, chunk_delay_ms: float, workdir: Path) -> Target:
    t = Target("upstream (direct)", port, log_path=workdir / f"mock-{port}.log")
    cmd = [PY, "-m", "bench.mock_upstream", "--port", str(port), "--chunks", str(chunks),
           "--chunk-delay-ms", str(chunk_delay_ms)]
    t.proc = _spawn(cmd, cpu, t.log_path)
    return t


def start_floor(port: int, upstream_port: int, cpu: str | None, workdir: Path, workers: int = 1) -> Target:
    t = Target("floor" if workers == 1 else f"floor x{workers}", port, log_path=workdir / f"floor-{port}.log")
    cmd = [PY, "-m", "bench.floor_proxy", "--port", str(port), "--upstream",
           f"http://127.0.0.1:{upstream_port}/v1", "--workers", str(workers)]
    t.proc = _spawn(cmd, cpu, t.log_path)
    return t


def router_config(kind: str, upstream_port: int, state_url: str = "memory://") -> dict[str, Any]:
    """The router config for `minimal` or `full`; every model is served by the one mock upstream."""
    base_url = f"http://127.0.0.1:{upstream_port}/v1"
    timeouts = {"connect_s": 5, "first_byte_s": 30, "idle_s": 30, "total_s": 120}
    cfg: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "workers": 1},
        "state": {"url": state_url},
        "logging": {"level": "info", "access_log": kind == "full"},
        "backends": [
            {"name": "mock-local", "kind": "openai", "location": "local", "base_url": base_url,
             "max_concurrency": 1024, "timeouts": timeouts,
             "models": [{"id": "bench-small", "tier": "local-small", "context": 32768},
                        {"id": "bench-large", "tier": "local-large", "context": 32768}]},
            {"name": "mock-cloud", "kind": "openai", "location": "cloud", "base_url": base_url,
             "max_concurrency": 1024, "timeouts": timeouts,
             "models": [{"id": CONCRETE_MODEL, "tier": "cloud-mini", "context": 400000,
                         "price": {"input": 0.25, "output": 2.0}},
                        {"id": "bench-high", "tier": "cloud-high", "context": 400000,
                         "price": {"input": 1.25, "output": 10.0}}]},
        ],
        "routing": {
            "tiers": ["local-small", "local-large", "cloud-mini", "cloud-high"],
            # Ordinary chat goes to the priced cloud model, so redact, budget and cost all do their work.
            "rules": [{"task": "code", "tier": "cloud-high"}, {"tier": "cloud-mini"}],
            "min_confidence": 0.0,
            "promotion": {"on": ["error", "timeout", "overload"], "max_steps": 1},
        },
        "pipeline": MINIMAL_PIPELINE if kind == "minimal" else FULL_PIPELINE,
    }
    if kind == "full":
        cfg["auth"] = {"keys": [{"name": "bench", "key_env": KEY_ENV, "tenant": "bench/load"}]}
        cfg["tenants"] = [{
            "match": "bench/*",
            "budget": {"daily_usd": HUGE, "monthly_usd": HUGE, "per_request_usd": 100},
            "limits": {"rpm": HUGE, "tpm": HUGE},
            "redact": {"policy": "redact", "apply_to": "cloud", "restore": True},
            "steering": True,
        }]
        cfg["cache"] = {"ttl_s": 3600, "max_entries": 10000}
    return cfg


def router_command() -> list[str]:
    script = Path(PY).with_name("ai-router")
    return [str(script)] if script.exists() else [PY, "-m", "router"]


def start_router(
    kind: str, port: int, upstream_port: int, cpu: str | None, workdir: Path, workers: int = 1,
    state_url: str = "memory://", overrides: dict[str, Any] | None = None,
) -> Target:
    cfg_path = workdir / f"router-{kind}-{port}.json"  # JSON is YAML
    cfg = {**router_config(kind, upstream_port, state_url), **(overrides or {})}
    cfg_path.write_bytes(orjson.dumps(cfg, option=orjson.OPT_INDENT_2))
    name = kind if workers == 1 else f"{kind} x{workers}"
    t = Target(name, port, log_path=workdir / f"router-{kind}-{workers}-{port}.log")
    if kind == "full":
        t.model, t.auth = "auto", BENCH_KEY
    cmd = [*router_command(), "serve", "--config", str(cfg_path), "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers)]
    t.proc = _spawn(cmd, cpu, t.log_path, env=dict(os.environ, **{KEY_ENV: BENCH_KEY}))
    return t


def active_stages(t: Target) -> str | None:
    """The active pipeline the router logged at start-up ("pipeline: a, b"), if it did."""
    if t.log_path is None or not t.log_path.exists():
        return None
    with t.log_path.open("rb") as f:
        head = f.read(65536).decode(errors="replace")
    for line in head.splitlines():
        if "pipeline:" in line:
            return line.split("pipeline:", 1)[1].strip().rstrip(")")
    return None
