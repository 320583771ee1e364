"""Capacity: a backend's `max_concurrency`, enforced, with a short bounded wait in line.

Every call to a backend holds one slot from before the request is sent until its answer (or stream)
is finished. A request that finds every slot busy waits, first come first served, for at most the
time the caller allows (the backend's `queue_ms` when it could spill elsewhere, longer when it cannot),
then gives up with `TimeoutError`, so `retry` can spill it to the next candidate instead of queueing it
behind a busy GPU. That wait is judged under backends/deadline.py's rule: when the event loop was stalled
through it, a slot freed meanwhile still counts. The counters are read by metrics and `/readyz`:

    in_flight      slots held now              queued       requests waiting now
    waits          requests that had to wait   timeouts     waits that ran out (spilled or refused)
"""

from __future__ import annotations

import asyncio
import collections

from backends.deadline import fail_at


class Capacity:
    """At most `limit` concurrent calls; the rest wait in a FIFO line for a bounded time."""

    __slots__ = ("in_flight", "limit", "timeouts", "waiters", "waits")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.waits = 0
        self.timeouts = 0

    @property
    def queued(self) -> int:
        return len(self.waiters)

    @property
    def full(self) -> bool:
        return self.in_flight >= self.limit

    def try_acquire(self) -> bool:
        """Take a free slot now (never ahead of those already waiting)."""
        if self.in_flight < self.limit and not self.waiters:
            self.in_flight += 1
            return True
        return False

    async def acquire(self, wait_s: float) -> float:
        """A slot, waiting at most `wait_s`; returns the seconds waited. `TimeoutError` when none came."""
        if self.in_flight < self.limit and not self.waiters:
            self.in_flight += 1
            return 0.0
        if wait_s <= 0:
            self.timeouts += 1
            raise TimeoutError
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self.waiters.append(fut)
        self.waits += 1
        t0 = loop.time()
        timer = fail_at(loop, t0 + wait_s, fut, TimeoutError)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release()  # handed a slot while being cancelled: pass it on
                raise
            try:
                self.waiters.remove(fut)
            except ValueError:
                pass
            if fut.done() and not fut.cancelled():
                self.timeouts += 1  # expired
            raise
        finally:
            timer.cancel()
        return loop.time() - t0

    def release(self) -> None:
        """Give a slot back: straight to the first live waiter, else free it."""
        waiters = self.waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)  # the slot changes hands: in_flight stays
                return
        self.in_flight -= 1

