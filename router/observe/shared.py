"""`--workers N`: every worker keeps its own in-process registry; any worker's `/metrics` shows them all.

The request path updates plain in-process numbers, moved into prometheus-client's in-process registry
before each read (router/observe/metrics.py). Once a second, and right before it answers a scrape, a
worker writes a snapshot of its registry to `$AI_ROUTER_METRICS_DIR/worker-PID.json` (one `orjson.dumps`,
then an atomic rename). Whichever worker
answers `/metrics` or `/dashboard/stats` reads every snapshot and merges them: counters and histograms
are summed, gauges are combined per family (`GAUGES`: sums for load, max for breaker states). So a scrape
sees the whole server, other workers' values at most a second old.

Why not prometheus-client's own multiprocess mode (mmap files written on every update): it costs every
request a lock, a `getpid()` and an mmap write per value, about 3x the in-process cost (measured by
`python -m bench.observe`; docs/performance.md), for freshness a scrape every 15 s does not need.

The supervisor (router/workers.py) makes the directory before forking and removes it at exit; a worker
that died has its snapshot renamed `dead-PID.json`: its counters keep counting in the sums, its gauges
are dropped.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from prometheus_client.metrics_core import Metric

ENV = "AI_ROUTER_METRICS_DIR"
GAUGES = {  # how a gauge family combines over workers (default: max)
    "ai_router_backend_in_flight": sum,
    "ai_router_backend_queued": sum,
    "ai_router_process_resident_memory_bytes": sum,
    "ai_router_process_virtual_memory_bytes": sum,
    "ai_router_process_open_fds": sum,
    "ai_router_process_start_time_seconds": min,
}


def shared_dir() -> str | None:
    return os.environ.get(ENV) or None


def share_across_workers() -> Callable[[], None]:
    """For the supervisor, before it forks: the snapshot directory (`$AI_ROUTER_METRICS_DIR`, emptied, or a
    fresh temporary one) for its workers. Returns the clean-up to call at exit."""
    given = shared_dir()
    directory = given or tempfile.mkdtemp(prefix="ai-router-metrics-")
    os.makedirs(directory, exist_ok=True)
    for f in glob.glob(os.path.join(directory, "*-*.json")):
        os.remove(f)  # an earlier run's counts must not be summed in
    os.environ[ENV] = directory
    if given:
        return lambda: None
    return lambda: shutil.rmtree(directory, ignore_errors=True)


def mark_worker_dead(pid: int) -> None:
    """A worker exited: keep its counters in the sums, drop its gauges."""
    d = shared_dir()
    if d:
        try:
            os.replace(os.path.join(d, f"worker-{pid}.json"), os.path.join(d, f"dead-{pid}.json"))
        except FileNotFoundError:
            pass


def write_snapshot(directory: str, families: Iterable[Metric]) -> None:
    """This worker's families, as `[[name, type, help, [[sample, labels, value], ...]], ...]`."""
    data = [[f.name, f.type, f.documentation, [[s.name, s.labels, s.value] for s in f.samples]] for f in families]
    path = os.path.join(directory, f"worker-{os.getpid()}.json")
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(orjson.dumps(data))
    os.replace(tmp, path)


def merged(directory: str) -> list[Metric]:
    """Every worker's snapshot, combined into one set of families."""
    fams: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]] = {}
    for path in sorted(glob.glob(os.path.join(directory, "*-*.json"))):
        dead = os.path.basename(path).startswith("dead-")
        try:
            with open(path, "rb") as fh:
                data = orjson.loads(fh.read())
        except (OSError, orjson.JSONDecodeError):
            continue  # a worker gone between the listing and the read
        for name, typ, doc, samples in data:
            if dead and typ not in ("counter", "histogram"):
                continue
            if name not in fams:
                fams[name] = Metric(name, doc, typ)
                values[name] = {}
            acc = values[name]
            for sname, labels, value in samples:
                acc.setdefault((sname, tuple(sorted(labels.items()))), []).append(value)
    out = []
    for name, fam in fams.items():
        combine: Any = GAUGES.get(name, max) if fam.type == "gauge" else sum
        for (sname, labels), vs in values[name].items():
            fam.add_sample(sname, dict(labels), min(vs) if sname.endswith("_created") else combine(vs))
        out.append(fam)
    return out
