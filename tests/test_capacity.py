"""backends/capacity.py: max_concurrency slots, FIFO waiting, bounded waits, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from backends.capacity import Capacity


async def test_slots_then_bounded_wait() -> None:
    cap = Capacity(2)
    assert await cap.acquire(0) == 0.0
    assert await cap.acquire(0) == 0.0
    assert cap.full
    with pytest.raises(TimeoutError):
        await cap.acquire(0)
    with pytest.raises(TimeoutError):
        await cap.acquire(0.02)
    assert cap.queued == 0
    assert cap.timeouts == 2
    assert cap.in_flight == 2


async def test_release_hands_the_slot_to_the_first_waiter() -> None:
    cap = Capacity(1)
    await cap.acquire(0)
    order: list[int] = []

    async def waiter(i: int) -> None:
        await cap.acquire(5)
        order.append(i)

    tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    assert cap.queued == 3
    for _ in range(3):
        cap.release()
        await asyncio.sleep(0.01)
    assert order == [0, 1, 2]
    assert cap.in_flight == 1
    cap.release()
    assert cap.in_flight == 0
    await asyncio.gather(*tasks)


async def test_no_overtaking_while_others_wait() -> None:
    cap = Capacity(1)
    await cap.acquire(0)
    t = asyncio.create_task(cap.acquire(5))
    await asyncio.sleep(0)
    cap.release()  # handed to the waiter, not free for a newcomer
    assert not cap.try_acquire()
    await t
    assert cap.in_flight == 1


async def test_cancelled_waiter_leaves_no_slot_behind() -> None:
    cap = Capacity(1)
    await cap.acquire(0)
    t = asyncio.create_task(cap.acquire(5))
    await asyncio.sleep(0)
    cap.release()  # handed over …
    t.cancel()  # … while the waiter is being cancelled: the slot must be passed on, not lost
    with pytest.raises(asyncio.CancelledError):
        await t
    assert cap.in_flight == 0
    assert cap.queued == 0
    await cap.acquire(0)
    t2 = asyncio.create_task(cap.acquire(5))
    await asyncio.sleep(0)
    t2.cancel()  # a plain waiter cancelled: it leaves the line
    with pytest.raises(asyncio.CancelledError):
        await t2
    assert cap.queued == 0
    assert cap.in_flight == 1
