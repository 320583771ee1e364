"""Upstream deadlines that measure the upstream, not the router's own event-loop lag.

A timer runs on the loop it guards, so it cannot fire while the loop is busy (a long callback, a
CPU-starved container, a burst of connects, a GC pause). When the loop comes back, libuv (uvloop) runs
due timers *before* it polls for I/O, so a connection the kernel completed, or an answer that arrived,
during the stall has not been seen yet: a timer that judged then would blame the upstream for the
router's lag (a false 504 `upstream_timeout`, a needless promotion, a breaker opened on a healthy
upstream). Every upstream deadline (connect, pool and slot waits, first byte, idle, total, first token)
follows one rule instead:

- on time (within `LAG_TOLERANCE` of its deadline) a timer judges at once, after the callbacks already
  queued (`call_soon`): the loop polled I/O moments ago;
- later than that the loop was stalled through the deadline: the timer re-arms `GRACE` ahead, which
  runs only after the next I/O poll (libuv's order is timers, then `call_soon` callbacks, then the poll:
  a `call_soon` would still come before it; a second timer armed from the first comes after), and judges
  after the callbacks that poll queued, on the real state: a connection made, a waiter handed its
  connection or slot, data received;
- it judges then even if that second timer is late too, so a truly unreachable or slow upstream times
  out at most one loop iteration plus `GRACE` after its timer ran, never a second deadline later. What
  the upstream delivered by the end of the stall counts; a further round trip the router could only
  start after it (TLS after a TCP connect made during the stall) is not waited for.

(libuv caches its clock once per iteration: after a stall inside a `call_soon` callback with nothing
after it reading the clock, uvloop's poll sleeps by the stale clock, so every timer, whatever it guards,
can run up to a stall later still. That makes timeouts late, never early, and is not this module's.)

    Deadline       `async with Deadline(loop, when, made)`: asyncio.timeout_at under that rule; `made`
                   says the awaited work is done (the task only has to resume), so it is not cancelled
    fail_at(...)   fail a waiter future at a deadline under that rule, unless it is done by then
    lateness(...)  how late a timer handle runs (for a protocol that judges its own timer)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

LAG_TOLERANCE = 0.005  # a timer this late still judges at once: the loop polled I/O moments ago
GRACE = 0.001  # the shortest delay uvloop arms as a timer (it runs a rounded 0 ms as call_soon)


def lateness(loop: asyncio.AbstractEventLoop, handle: Any) -> float:
    """Seconds `handle` runs after its deadline (0 for a `call_soon` handle, which has none)."""
    when = getattr(handle, "when", None)
    return 0.0 if when is None else loop.time() - when()


def _after_poll(loop: asyncio.AbstractEventLoop, judge: Callable[..., object], *args: Any) -> asyncio.Handle:
    """Call `judge(*args)` after the next I/O poll and the callbacks it queued."""
    return loop.call_later(GRACE, loop.call_soon, judge, *args)


class Deadline:
    """Like `asyncio.timeout_at(when)` (TimeoutError out of the block), with the lag rule above."""

    __slots__ = ("_cancelling", "_expired", "_handle", "_loop", "_made", "_task", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop, when: float, made: Callable[[], bool] | None = None) -> None:
        self._loop = loop
        self._when = when
        self._made = made
        self._handle: asyncio.Handle | None = None
        self._task: asyncio.Task[Any] | None = None
        self._expired = False
        self._cancelling = 0

    async def __aenter__(self) -> Deadline:
        task = self._task = asyncio.current_task()
        assert task is not None
        self._cancelling = task.cancelling()
        loop = self._loop
        self._when = max(self._when, loop.time())  # one already past is judged now, not as a stall
        self._handle = loop.call_at(self._when, self._due)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: object) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._expired:  # as asyncio.Timeout: take back our cancel; ours alone becomes TimeoutError
            assert self._task is not None
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    def _due(self) -> None:
        loop = self._loop
        if loop.time() - self._when > LAG_TOLERANCE:  # stalled through the deadline: poll once more first
            self._handle = loop.call_later(GRACE, self._queue_judge)
        else:
            self._handle = loop.call_soon(self._judge)

    def _queue_judge(self) -> None:
        self._handle = self._loop.call_soon(self._judge)

    def _judge(self) -> None:
        self._handle = None
        if self._made is not None and self._made():
            return  # the upstream's part is done; the task only has to resume
        self._expired = True
        assert self._task is not None
        self._task.cancel()


def fail_at(loop: asyncio.AbstractEventLoop, when: float, fut: asyncio.Future[Any],
            error: Callable[[], BaseException]) -> asyncio.TimerHandle:
    """Fail `fut` with `error()` at `when` unless it is done by then, under the lag rule; the returned
    handle cancels it (what a late timer re-arms needs no cancelling: it finds `fut` done)."""
    when = max(when, loop.time())
    return loop.call_at(when, _waiter_due, loop, when, fut, error)


def _waiter_due(loop: asyncio.AbstractEventLoop, when: float, fut: asyncio.Future[Any],
                error: Callable[[], BaseException]) -> None:
    if fut.done():
        return
    if loop.time() - when > LAG_TOLERANCE:
        _after_poll(loop, _fail_waiter, fut, error)
    else:
        loop.call_soon(_fail_waiter, fut, error)


def _fail_waiter(fut: asyncio.Future[Any], error: Callable[[], BaseException]) -> None:
    if not fut.done():
        fut.set_exception(error())
