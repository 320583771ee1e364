"""The load driver: runs `wrk` with `bench/post.lua` against one URL and parses its JSON summary.

One wrk thread is enough to saturate a single-core Python proxy and keeps the load generator on its own
core (`taskset -c CPU`). Latency percentiles come from wrk's histogram, in microseconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import orjson

LUA = Path(__file__).with_name("post.lua")
MARK = "BENCH_JSON "


class LoadError(RuntimeError):
    """wrk is missing, failed, or saw errors."""


@dataclass(slots=True)
class WrkResult:
    requests: int
    duration_s: float
    errors: dict[str, int]
    latency_us: dict[str, float]

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def wrk_path() -> str:
    path = shutil.which("wrk")
    if not path:
        raise LoadError("wrk not found: install it with `apt-get install -y wrk`")
    return path


def pin(cpu: str | None) -> list[str]:
    """The `taskset` prefix that pins a command to `cpu` ("0", "1", "0,1"), or nothing."""
    return ["taskset", "-c", cpu] if cpu is not None else []


def run_wrk(
    url: str,
    *,
    body_file: Path,
    connections: int,
    duration_s: float,
    cpu: str | None = None,
    auth: str | None = None,
    threads: int = 1,
    timeout_s: float = 5.0,
) -> WrkResult:
    """Run wrk for `duration_s` seconds with `connections` keep-alive connections; return its summary."""
    base, _, path = url.partition("://")
    host, _, rest = path.partition("/")
    env = dict(os.environ, BENCH_BODY=str(body_file), BENCH_PATH="/" + rest, BENCH_AUTH=auth or "")
    cmd = [
        *pin(cpu), wrk_path(), f"-t{threads}", f"-c{max(connections, threads)}",
        f"-d{max(1, round(duration_s))}s", f"--timeout={timeout_s:g}s", "-s", str(LUA), f"{base}://{host}/",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            data = orjson.loads(line[len(MARK):])
            return WrkResult(
                requests=data["requests"],
                duration_s=data["duration_us"] / 1e6,
                errors=data["errors"],
                latency_us={k: float(v) for k, v in data["latency_us"].items()},
            )
    raise LoadError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
