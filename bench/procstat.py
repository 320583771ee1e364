"""CPU time and memory of a process tree, read from /proc (Linux only).

CPU time sums every live thread's `schedstat` run time (nanoseconds) over the process and its
descendants, so a master/worker server counts whole; when schedstat is missing it falls back to
`stat` utime+stime (clock ticks). Peak RSS is `VmHWM` (the kernel's high-water mark since start, start-up
included) of each process; `RssSampler` tracks the largest `VmRSS` while some load runs. For leak checks:
`fds` and `settled_fds` (the count once connections have closed), `peer_ports` (how many TCP connections
go to each remote port, to tell a keep-alive pool's idle upstream connections from the rest).
"""

from __future__ import annotations

import collections
import os
import threading
import time
from pathlib import Path

PROC = Path("/proc")
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree(pid: int) -> list[int]:
    """`pid` and all its live descendants."""
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _cpu_one(pid: int) -> float:
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
        return sum(int((t / "schedstat").read_text().split()[0]) for t in tasks) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * TICK_S


def cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by `pid` and its descendants (user + system)."""
    return sum(_cpu_one(p) for p in tree(pid))


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mb(pid: int) -> dict[int, float]:
    """Peak resident set size (MB) of `pid` and each descendant that has memory of its own."""
    return {p: kb / 1024 for p in tree(pid) if (kb := _status_kb(p, "VmHWM:"))}


def rss_mb(pid: int) -> dict[int, float]:
    """Current resident set size (MB) of `pid` and each descendant."""
    return {p: kb / 1024 for p in tree(pid) if (kb := _status_kb(p, "VmRSS:"))}


class RssSampler:
    """Samples the largest per-process RSS of a process tree in a thread, while a `with` block runs."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, *rss_mb(self.pid).values(), 0.0)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, *rss_mb(self.pid).values(), 0.0)


def process_rss_mb(pid: int) -> float:
    """Current resident set size (MB) of `pid` alone."""
    return _status_kb(pid, "VmRSS:") / 1024


def fds(pid: int) -> int:
    """Open file descriptors of `pid`."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_fds(pid: int, timeout_s: float = 10.0, still_s: float = 1.0) -> int:
    """The fd count once it has not changed for `still_s` (or after `timeout_s`)."""
    last, since = fds(pid), time.monotonic()
    deadline = since + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = fds(pid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= still_s:
            break
    return last


def peer_ports(pid: int) -> collections.Counter[int]:
    """How many of `pid`'s TCP sockets are connected to each remote port (/proc/PID/fd and /proc/net/tcp)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports: collections.Counter[int] = collections.Counter()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[9] in inodes and f[3] == "01":  # ESTABLISHED
                ports[int(f[2].rsplit(":", 1)[1], 16)] += 1
    return ports
