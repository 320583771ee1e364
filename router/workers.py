"""`--workers N`: N server processes on one port (SO_REUSEPORT), supervised by the parent.

The parent first makes sure it is the port's only owner: SO_REUSEPORT would let a second instance bind
the same port and silently take part of the traffic with another config, so the parent refuses to start
("cannot listen on HOST:PORT: Address already in use") when another process listens there, or when
another ai-router supervisor holds it (an abstract Unix socket `ai-router:HOST:PORT` is the lock, held
for the supervisor's life). Then it resolves the port (binding without listening, so port 0 works
too), forks the workers, restarts one that dies unexpectedly (with a short back-off), on SIGHUP
passes SIGHUP to every worker (each reloads its config: router/reload.py; the supervisor keeps the new
config for workers it restarts), and on SIGTERM/SIGINT passes SIGTERM to every worker and waits for
them to drain (exit 0). Each worker is a full, independent event loop on uvloop.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

from router.config import Config, ConfigError, load
from router.observe.shared import mark_worker_dead, share_across_workers
from router.reload import SUPERVISOR_ENV, hold_reloads
from router.server import bind_socket, run_worker

log = logging.getLogger("ai_router")


def _child(config: Config, host: str, port: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    hold_reloads()  # a reload asked while this worker starts waits for its loop (router/reload.py)
    run_worker(config, host, port, reuse_port=True)


def _reloaded(config: Config) -> Config:
    """The config workers restarted from now on: the file's, if it is valid (else the running one)."""
    try:
        new = load(config.source)
    except ConfigError as e:
        log.error("supervisor: reload refused, workers keep the running config: %s", e)
        return config
    log.info("supervisor: reloading %s in every worker", config.source)
    return new


def claim_port(host: str, port: int) -> socket.socket | None:
    """Refuse a port another process holds; returns the lock to keep open while serving (None: port 0)."""
    if port == 0:
        return None
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lock: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lock.bind(f"\0ai-router:{where}")  # type: ignore[union-attr]  # abstract namespace: gone with the process
    except OSError as e:
        lock.close()  # type: ignore[union-attr]
        if e.errno == errno.EADDRINUSE:
            raise OSError(e.errno, f"cannot listen on {where}: Address already in use "
                                   "(another ai-router serves it)") from None
        lock = None  # no abstract sockets here (not Linux): the probe below still guards
    try:
        bind_socket(host, port, reuse_port=False, listen=False).close()  # fails if anyone listens there
    except OSError:
        if lock is not None:
            lock.close()
        raise
    return lock


def run_workers(config: Config, host: str, port: int, workers: int) -> int:
    """Run and supervise `workers` processes; returns the exit code for the CLI."""
    ctx = multiprocessing.get_context("fork")
    lock = claim_port(host, port)
    holder = bind_socket(host, port, reuse_port=True, listen=False)  # resolves port 0; never accepts
    port = holder.getsockname()[1]
    stopping = False
    reloading = False
    procs: list[BaseProcess] = []

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:  # at once: every worker stops accepting now, not at the next poll
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)

    def _reload(signum: int, frame: object) -> None:
        nonlocal reloading
        reloading = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGHUP, _reload)
    os.environ[SUPERVISOR_ENV] = str(os.getpid())  # a worker asked to reload (POST /admin/reload) tells us

    def spawn() -> BaseProcess:
        p = ctx.Process(target=_child, args=(config, host, port), name="ai-router-worker")
        p.start()
        return p

    cleanup_metrics = share_across_workers()  # any worker's /metrics sums all workers' values
    procs += [spawn() for _ in range(workers)]
    log.info("supervisor %d: %d workers on %s:%d", os.getpid(), workers, host, port)
    try:
        while not stopping:
            wait([p.sentinel for p in procs], timeout=0.5)
            if reloading:
                reloading = False
                config = _reloaded(config)
                for p in procs:
                    if p.is_alive() and p.pid is not None:
                        os.kill(p.pid, signal.SIGHUP)  # each worker validates and swaps on its own
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
        if lock is not None:
            lock.close()
    log.info("supervisor: all workers stopped")
    return 0
