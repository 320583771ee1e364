"""router.routing.answers: the ring of remembered answers and its two open-addressing indexes."""

from __future__ import annotations

import random

from router.routing.answers import ASKED, PENDING, Answers


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_the_indexes_agree_with_dicts_under_churn() -> None:
    """Random answers in a tiny ring, with hashes that crowd a few home positions (long probe runs that
    wrap around the table) and ids reused: after every step each (hash, tenant) finds exactly the answer a
    plain dict says, in both indexes."""
    rng = random.Random(7)
    forgotten: list[int] = []
    a = Answers(8, forgotten.append)  # index tables of 16 entries
    ids = [k * 16 + k % 3 for k in range(-20, 20)]  # homes 0, 1, 2 only (negative hashes too)
    asks = [k * 16 + 14 + k % 3 for k in range(-10, 10)]  # homes 14, 15, 0: runs wrap past the end
    by_id: dict[tuple[int, int], int] = {}
    by_ask: dict[tuple[int, int], int] = {}
    tenants = [a.tenant_id(None), a.tenant_id("acme/a"), a.tenant_id("acme/b")]
    pending: set[int] = set()  # slots added with an open outcome

    def forget(slot: int) -> None:
        for index in (by_id, by_ask):
            for k in [k for k, s in index.items() if s == slot]:
                del index[k]

    for _ in range(5000):
        h, who = rng.choice(ids), rng.choice(tenants)
        if len(a) and rng.random() < 0.1:
            oldest = a.tail % a.capacity
            a.drop_oldest()
            assert forgotten == ([oldest] if oldest in pending else [])
            forgotten.clear()
            forget(oldest)
        expect = []
        if len(a) == a.capacity:  # the oldest goes first
            expect.append(a.tail % a.capacity)
            forget(a.tail % a.capacity)
        if (h, who) in by_id:  # a reused id: the earlier answer is unlinked
            expect.append(by_id[(h, who)])
        state = PENDING if rng.random() < 0.5 else 0
        slot = a.add(h, who, 0, state, 0.0)
        assert forgotten == [s for s in expect if s in pending]  # only an open outcome needs counting
        forgotten.clear()
        pending.discard(slot)
        if state:
            pending.add(slot)
        by_id[(h, who)] = slot
        if rng.random() < 0.7:
            k = rng.choice(asks)
            assert a.link_ask(slot, k) == by_ask.get((k, who), -1)
            by_ask[(k, who)] = slot
        for hh in ids:
            for w in tenants:
                assert a.find(hh, w) == by_id.get((hh, w), -1)
        for k in asks:
            for w in tenants:
                assert a.asks[a.probe(a.asks, a.ask, k, w)] - 1 == by_ask.get((k, w), -1)
        assert sum(1 for v in a.ids if v) == len(by_id)
        assert sum(1 for v in a.asks if v) == len(by_ask) == a.counts()["asks"]
        assert all(a.state[s] & ASKED for s in by_ask.values())


def test_memory_is_committed_as_the_ring_fills() -> None:
    before = _rss_kb()
    a = Answers(2_000_000, lambda slot: None)  # ~80 MB of slots and ~32 MB of indexes if they were touched at once
    assert _rss_kb() - before < 8_000
    for n in range(300):
        a.add(n * 7919, 1, 0, 0, 1.0)
    assert _rss_kb() - before < 8_000
    assert a.find(7919 * 299, 1) == 299
    assert a.find(7919 * 299, 2) == -1
