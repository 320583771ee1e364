"""The feedback loop's memory of recent answers: fixed-width slots in a ring, found by request id or by ask.

At most `capacity` answers; when the ring is full the oldest is overwritten (the feedback loop counts its
open outcome first). An answer is one slot across parallel typed arrays, so no Python object lives per
answer and the cyclic collector has nothing to walk (a Python object per answer cost ~600 bytes and
100,000 gc-tracked objects at the default `remember_max`; a slot and its index entries cost ~75 bytes):

    at     float64  when the answer ended
    key    int64    hash((tenant, request id)): the id itself is not kept
    ask    int64    hash((tenant, fingerprint of the last ask)), for re-asks
    who    uint32   the tenant, interned (0: no tenant)
    cell   uint16   the (task, difficulty bucket) cell, interned (0: none)
    state  uint8    CLOUD, PENDING (implicit outcome open), BAD (that outcome is 0, else 1), COUNTED (the
                    implicit outcome was counted), RATED (`score` holds a rating), LINKED / ASKED (the
                    slot is in the id / ask index)
    score  float64  the explicit rating

Two open-addressing indexes (linear probing, load at most 1/4, backward-shift deletion, no tombstones) map
a hash to its slot (slot + 1; 0 is empty): `ids` by request id, `asks` by the last ask (the newest answer of
that ask only). Hashes are Python's (salted per process), compared together with the tenant, so an id never
reaches another tenant's answer; two ids of one tenant collide with a chance of about n / 2^64.
The arrays live in anonymous mmaps, so memory is committed as the ring fills, not at start-up.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from typing import Any

CLOUD, PENDING, BAD, COUNTED, RATED, LINKED, ASKED = 1, 2, 4, 8, 16, 32, 64


def _zeros(n: int, fmt: str) -> Any:
    """n zeroed items of struct format `fmt`, committed as they are first written."""
    width = {"d": 8, "q": 8, "I": 4, "i": 4, "H": 2, "B": 1}[fmt]
    return memoryview(mmap.mmap(-1, max(n, 1) * width)).cast(fmt)


class Answers:
    """The ring and its two indexes; the feedback loop gives the slots their meaning (router/routing/feedback.py)."""

    def __init__(self, capacity: int, forget: Callable[[int], None]) -> None:
        self.capacity = capacity
        self.forget = forget  # called with a slot whose open (PENDING) outcome must be counted before it goes
        self.head = 0  # answers added so far: the next goes to slot head % capacity
        self.tail = 0  # the oldest answer still remembered (head - tail of them)
        self.at = _zeros(capacity, "d")
        self.key = _zeros(capacity, "q")
        self.ask = _zeros(capacity, "q")
        self.who = _zeros(capacity, "I")
        self.cell = _zeros(capacity, "H")
        self.state = _zeros(capacity, "B")
        self.score = _zeros(capacity, "d")
        # a power of two, at least four times the capacity: at a load of 1/4 most answers sit alone at their home
        # entry, so forgetting one is a single write (the finish hook forgets one per answer once the ring is full)
        size = 1 << (4 * capacity - 1).bit_length()
        self.mask = size - 1
        self.ids = _zeros(size, "i")
        self.asks = _zeros(size, "i")
        self.tenants: list[str | None] = [None]
        self.tenant_ids: dict[str | None, int] = {None: 0}
        self.cells: list[tuple[str, int] | None] = [None]
        self.cell_ids: dict[tuple[str, int], int] = {}

    def __len__(self) -> int:
        return self.head - self.tail

    # ------------------------------------------------------------ interning

    def tenant_id(self, tenant: str | None) -> int:
        n = self.tenant_ids.get(tenant)
        if n is None:
            n = self.tenant_ids[tenant] = len(self.tenants)
            self.tenants.append(tenant)
        return n

    def cell_id(self, key: tuple[str, int]) -> int:
        n = self.cell_ids.get(key)
        if n is None:
            if len(self.cells) > 0xFFFF:
                raise OverflowError("more than 65535 task x bucket cells")
            n = self.cell_ids[key] = len(self.cells)
            self.cells.append(key)
        return n

    # ------------------------------------------------------------ the indexes

    def probe(self, table: Any, keys: Any, h: int, who: int) -> int:
        """The position of `h` (of tenant `who`) in `table`, or of the empty entry where it would go."""
        mask = self.mask
        whos = self.who
        i = h & mask
        while True:
            v = table[i]
            if v == 0 or (keys[v - 1] == h and whos[v - 1] == who):
                return i
            i = (i + 1) & mask

    def unlink(self, table: Any, keys: Any, slot: int) -> None:
        """Take `slot` out of `table` (it is there), shifting back the entries after it that may move."""
        mask = self.mask
        i = keys[slot] & mask
        v = slot + 1
        while table[i] != v:
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            w = table[j]
            if w == 0:
                break
            home = keys[w - 1] & mask
            # the entry at j stays if its home lies cyclically in (i, j]; else it moves up into the hole at i
            if (i < home <= j) if i <= j else (home > i or home <= j):
                continue
            table[i] = w
            i = j
        table[i] = 0

    def find(self, h: int, who: int) -> int:
        """The slot of the answer with id hash `h` of tenant `who`, or -1."""
        return self.ids[self.probe(self.ids, self.key, h, who)] - 1

    # ------------------------------------------------------------ the ring

    def drop_oldest(self) -> None:
        """Forget the oldest answer (the loop counts its open outcome first)."""
        slot = self.tail % self.capacity
        self.tail += 1
        st = self.state[slot]
        if st & PENDING:
            self.forget(slot)
        mask = self.mask
        if st & LINKED:
            table, i = self.ids, self.key[slot] & mask
            if table[i] == slot + 1 and table[(i + 1) & mask] == 0:  # alone at its home: nothing to shift back
                table[i] = 0
            else:
                self.unlink(table, self.key, slot)
        if st & ASKED:
            table, i = self.asks, self.ask[slot] & mask
            if table[i] == slot + 1 and table[(i + 1) & mask] == 0:
                table[i] = 0
            else:
                self.unlink(table, self.ask, slot)
        self.state[slot] = 0

    def add(self, h: int, who: int, cell: int, state: int, now: float) -> int:
        """Remember an answer with id hash `h` of tenant `who` in the next slot (forgetting the oldest when the
        ring is full, and unlinking an earlier answer with the same id); its slot."""
        cap = self.capacity
        if self.head - self.tail >= cap:
            self.drop_oldest()
        ids, key, whos = self.ids, self.key, self.who
        mask = self.mask
        i = h & mask
        while True:  # Answers.probe, inlined (the finish hook runs on every answer)
            v = ids[i]
            if v == 0:
                break
            if key[v - 1] == h and whos[v - 1] == who:  # a reused id: the earlier answer can no longer be rated
                if self.state[v - 1] & PENDING:
                    self.forget(v - 1)
                self.state[v - 1] &= ~LINKED & 0xFF
                self.unlink(ids, key, v - 1)
                i = self.probe(ids, key, h, who)
                break
            i = (i + 1) & mask
        slot = self.head % cap
        self.head += 1
        self.at[slot] = now
        key[slot] = h
        whos[slot] = who
        self.cell[slot] = cell
        self.state[slot] = state | LINKED
        ids[i] = slot + 1
        return slot

    def link_ask(self, slot: int, h: int) -> int:
        """Index `slot` as the newest answer to the ask with hash `h`; the slot that was, or -1."""
        self.ask[slot] = h
        table = self.asks
        i = self.probe(table, self.ask, h, self.who[slot])
        prev = table[i] - 1
        if prev >= 0:
            self.state[prev] &= ~ASKED & 0xFF
        table[i] = slot + 1
        self.state[slot] |= ASKED
        return prev

    def counts(self) -> dict[str, int]:
        """Answers remembered, open implicit outcomes and indexed asks (a full scan: for tests and debugging)."""
        live = [(self.tail + k) % self.capacity for k in range(len(self))]
        return {"answers": len(live), "pending": sum(1 for s in live if self.state[s] & PENDING),
                "asks": sum(1 for s in live if self.state[s] & ASKED)}
