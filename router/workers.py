"""`--workers N`: N server processes on one port (SO_REUSEPORT), supervised by the parent.

The parent resolves the port (binding without listening, so port 0 works too), forks the workers,
restarts one that dies unexpectedly (with a short back-off), and on SIGTERM/SIGINT passes SIGTERM to
every worker and waits for them to drain. Each worker is a full, independent event loop on uvloop.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

from router.config import Config
from router.observe.shared import mark_worker_dead, share_across_workers
from router.server import bind_socket, run_worker

log = logging.getLogger("ai_router")


def _child(config: Config, host: str, port: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    run_worker(config, host, port, reuse_port=True)


def run_workers(config: Config, host: str, port: int, workers: int) -> int:
    """Run and supervise `workers` processes; returns the exit code for the CLI."""
    ctx = multiprocessing.get_context("fork")
    holder = bind_socket(host, port, reuse_port=True, listen=False)  # resolves port 0; never accepts
    port = holder.getsockname()[1]
    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    def spawn() -> BaseProcess:
        p = ctx.Process(target=_child, args=(config, host, port), name="ai-router-worker")
        p.start()
        return p

    cleanup_metrics = share_across_workers()  # any worker's /metrics sums all workers' values
    procs = [spawn() for _ in range(workers)]
    log.info("supervisor %d: %d workers on %s:%d", os.getpid(), workers, host, port)
    try:
        while not stopping:
            wait([p.sentinel for p in procs], timeout=0.5)
            for i, p in enumerate(procs):
                if not p.is_alive() and not stopping:
                    log.warning("worker %d exited with %s; restarting", p.pid, p.exitcode)
                    mark_worker_dead(p.pid or 0)
                    time.sleep(0.5)
                    procs[i] = spawn()
    finally:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + config.server.shutdown_grace_s + 5
        for p in procs:
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()
        holder.close()
        cleanup_metrics()
    log.info("supervisor: all workers stopped")
    return 0
