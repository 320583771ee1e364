"""Profile a running server under load with py-spy, and boil the samples down to a table.

py-spy samples the target's Python stacks from outside (no code change, `--nonblocking`, pinned to the
load core) while a load function runs. `summarise()` reads the collapsed stacks and ranks functions by
self time (the leaf frame) and by total time (anywhere on the stack), and splits self time by package
(ai-router's own code, aiohttp, asyncio, logging, ...); `compare()` turns two profiles into µs per
request by function, so a router's extra cost over the floor shows where it goes. Idle samples (the loop
waiting in epoll) are not recorded, so percentages are of busy time.

    python -m bench.profile --pid PID --seconds 10      # profile whatever load is running now
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.load import pin

RATE = 250
PACKAGES = (  # first match wins, on the full file name
    ("ai-router", ("/router/", "/middleware/", "/backends/")),
    ("aiohttp", ("/aiohttp/",)),
    ("multidict/yarl", ("/multidict/", "/yarl/")),
    ("asyncio", ("/asyncio/",)),
    ("logging", ("/logging/",)),
    ("tiktoken", ("/tiktoken/",)),
    ("json/orjson", ("/json/", "orjson")),
)


# Frames every stack passes through on the way into the event loop: ranking them says nothing.
ENTRY_FRAMES = frozenset({
    "_run_module_as_main", "_run_code", "<module>", "main", "run_app", "run_worker", "_serve", "serve",
    "run", "Runner.run", "BaseEventLoop.run_until_complete", "run_until_complete", "run_forever",
})


def py_spy() -> str:
    path = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(path).exists():
        raise RuntimeError("py-spy not found: `pip install py-spy`")
    return path


def record(pid: int, seconds: float, out: Path, cpu: str | None) -> subprocess.Popen[bytes]:
    """Start sampling `pid` for `seconds`; the caller waits on the returned process."""
    cmd = [*pin(cpu), py_spy(), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
           "--rate", str(RATE), "--format", "raw", "--nolineno", "--full-filenames", "--nonblocking",
           "--output", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _package(frame: str) -> str:
    for name, needles in PACKAGES:
        if any(n in frame for n in needles):
            return name
    return "other"


def _short(frame: str) -> str:
    """`func (/long/path/site-packages/aiohttp/web_protocol.py)` → `func (aiohttp/web_protocol.py)`."""
    name, _, path = frame.partition(" (")
    path = path.rstrip(")")
    parts = Path(path).parts
    for anchor in ("site-packages", "work", "python3.11", "lib"):
        if anchor in parts:
            parts = parts[parts.index(anchor) + 1 :]
            break
    if parts and parts[0] == "main":
        parts = parts[1:]
    return f"{name} ({'/'.join(parts[-2:])})"


def summarise(raw: str, top: int = 15) -> dict[str, Any]:
    """Collapsed stacks (`a;b;c COUNT` lines) → top functions by self and total share, and by package."""
    self_n: collections.Counter[str] = collections.Counter()
    total_n: collections.Counter[str] = collections.Counter()
    pkg_n: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        samples += n
        leaf = frames[-1]
        self_n[_short(leaf)] += n
        pkg_n[_package(leaf)] += n
        for f in {_short(f) for f in frames if f.partition(" (")[0] not in ENTRY_FRAMES}:
            total_n[f] += n

    def pct(c: collections.Counter[str]) -> list[dict[str, Any]]:
        return [{"function": f, "pct": 100 * n / samples} for f, n in c.most_common(top)] if samples else []

    self_all = {f: 100 * n / samples for f, n in self_n.items() if n / samples >= 0.002} if samples else {}
    return {"samples": samples, "rate_hz": RATE, "self": pct(self_n), "total": pct(total_n),
            "packages": pct(pkg_n), "self_all": self_all}


def compare(base: dict[str, Any], other: dict[str, Any], top: int = 20) -> list[dict[str, Any]]:
    """Self time per request (µs) by function, `other` minus `base`, largest differences first.

    Each profile's shares are scaled by its load's CPU µs per request, so the two are comparable.
    """
    b_us = base["load"]["cpu_us_per_req"] / 100
    o_us = other["load"]["cpu_us_per_req"] / 100
    names = set(base["self_all"]) | set(other["self_all"])
    rows = [{"function": f, "base_us": base["self_all"].get(f, 0.0) * b_us,
             "other_us": other["self_all"].get(f, 0.0) * o_us} for f in names]
    for r in rows:
        r["delta_us"] = r["other_us"] - r["base_us"]
    return sorted(rows, key=lambda r: -r["delta_us"])[:top]


def profile_under_load(
    target: Any, load: Callable[[], Any], seconds: float, cpu: str | None, workdir: Path
) -> dict[str, Any]:
    """Run `load()` (about `seconds` long) while py-spy samples `target.pid`; add the load's figures."""
    out = workdir / f"profile-{target.port}.txt"
    try:
        spy = record(target.pid, seconds, out, cpu)
    except RuntimeError as e:  # py-spy is not installed: the rest of the run still stands
        return {"error": str(e)}
    time.sleep(0.3)
    figures = load()
    _, err = spy.communicate(timeout=120)
    if not out.exists():
        return {"error": err.decode(errors="replace")[-1000:]}
    result = summarise(out.read_text())
    result["target"] = target.name
    result["load"] = figures
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--top", type=int, default=20)
    a = p.parse_args(argv)
    out = Path(f"/tmp/py-spy-{a.pid}.txt")
    spy = record(a.pid, a.seconds, out, None)
    spy.wait()
    s = summarise(out.read_text(), a.top)
    print(f"{s['samples']} samples")
    for section in ("packages", "self", "total"):
        print(f"\n{section}:")
        for row in s[section]:
            print(f"  {row['pct']:5.1f}%  {row['function']}")


if __name__ == "__main__":
    main()
