"""Persistence of the adaptive policy's counters through the state store, shared by every worker and replica.

The counters of router/routing/adaptive.py are kept per tenant and day, and only ever grow, so storing them
needs nothing but additions: every `PUSH_S` each process adds what it counted since its last push, one
record per tenant and day (`adaptive/{tenant}/d{day}`, fields `task<TAB>bucket<TAB>counter`, via
`Store.incr_many`), and every `PULL_S` it reads every tenant's records back (`Store.scan`), so its plans
include what other workers, replicas and earlier runs counted. Records expire past the decay horizon.
`start()` reads them before the first request is served; `aclose()` writes what is left. A failed push is
logged and its counts retried with the next one: nothing counted is dropped while the process lives.
The same push writes the feedback loop's records of recent answers (`Store.put_many`), so a rating that
reaches another worker, or comes after a restart, finds the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from router.routing.adaptive import DAY_S, FIELDS, SUB, Adaptive, CellKey, TenantModel, add_cells
from router.state import Store

log = logging.getLogger("ai_router.adaptive")

PREFIX = "adaptive/"
# a record's field numbers: 0-5 the counters; SLICE_FIELD + j the count of difficulty slice j (of SUB per bucket);
# 6-15 are the ten slices per bucket of records written before SUB was 40, each read as its four finer slices
SLICE_FIELD = 16
OLD_SLICES = 10
PUSH_S = 2.0
PULL_S = 15.0


def record_key(tenant: str, day: int) -> str:
    return f"{PREFIX}{tenant}/d{day}"


def parse_key(key: str) -> tuple[str, int] | None:
    tenant, _, day = key[len(PREFIX):].rpartition("/")
    if not tenant or not day.startswith("d") or not day[1:].isdigit():
        return None
    return tenant, int(day[1:])


def encode(cells: dict[CellKey, list[float]]) -> dict[str, float]:
    return {f"{task}\t{bucket}\t{i if i < 6 else SLICE_FIELD + i - 6}": v
            for (task, bucket), c in cells.items() for i, v in enumerate(c) if v}


def decode(fields: dict[str, object]) -> dict[CellKey, list[float]]:
    cells: dict[CellKey, list[float]] = {}
    per_old = SUB // OLD_SLICES
    for name, v in fields.items():
        parts = name.rsplit("\t", 2)
        if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit() and int(parts[2]) < SLICE_FIELD + SUB
                                   and isinstance(v, int | float)):
            continue  # not a counter of this version: ignored
        task, b, i = parts[0], int(parts[1]), int(parts[2])
        c = cells.get((task, b))
        if c is None:
            c = cells[(task, b)] = [0.0] * FIELDS
        if i < 6:
            c[i] += float(v)
        elif i >= SLICE_FIELD:
            c[6 + i - SLICE_FIELD] += float(v)
        else:  # an older record's slice: spread over the finer slices it covers
            for j in range(per_old):
                c[6 + (i - 6) * per_old + j] += float(v) / per_old
    return cells


class AdaptiveStore:
    """Pushes one engine's new counts to the store and pulls everyone's back, in the background."""

    def __init__(
        self,
        adaptive: Adaptive,
        store: Store,
        records: Callable[[], list[tuple[str, dict[str, Any]]]] | None = None,
        records_ttl_s: float | None = None,
        push_s: float = PUSH_S,
        pull_s: float = PULL_S,
    ) -> None:
        self.adaptive = adaptive
        self.store = store
        self.records = records  # other records to write with each push (the feedback loop's answers)
        self.records_ttl_s = records_ttl_s
        self.push_s = push_s
        self.pull_s = pull_s
        self.ttl_s = (adaptive.horizon_days + 2) * DAY_S
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self.pull()
        except Exception:  # the store is down at start-up: start empty, the next pull catches up
            log.exception("adaptive routing: could not read its counters from the state store")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.push()

    async def _run(self) -> None:
        since_pull = 0.0
        while True:
            await asyncio.sleep(self.push_s)
            since_pull += self.push_s
            try:
                await self.push()
                if since_pull >= self.pull_s:
                    since_pull = 0.0
                    await self.pull()
            except Exception:
                log.exception("adaptive routing: state store sync failed (retried)")

    async def push(self) -> None:
        """Add every tenant's unsaved counts to the store (and write the pending records)."""
        for tm in list(self.adaptive.tenants.values()):
            if not tm.delta:
                continue
            delta = tm.take_delta()
            try:
                for day, cells in delta.items():
                    fields = encode(cells)
                    if fields:
                        await self.store.incr_many(record_key(tm.name, day), fields, self.ttl_s)
            except BaseException:
                _give_back(tm, delta)  # counted again at the next push
                raise
        items = self.records() if self.records is not None else []
        if items:
            try:
                await self.store.put_many(items, self.records_ttl_s)
            except Exception:  # those answers can be rated only by this process now
                log.exception("adaptive routing: could not write %d answers to the state store", len(items))

    async def pull(self) -> None:
        """Replace every tenant's stored counters with the store's (everyone's) view."""
        by_tenant: dict[str, list[tuple[int, CellKey, list[float]]]] = {}
        for key, fields in await self.store.scan(PREFIX):
            parsed = parse_key(key)
            if parsed is None:
                continue
            tenant, day = parsed
            rows = by_tenant.setdefault(tenant, [])
            rows += [(day, cell, c) for cell, c in decode(fields).items()]
        for tenant, rows in by_tenant.items():
            self.adaptive.load(tenant, rows)


def _give_back(tm: TenantModel, delta: dict[int, dict[CellKey, list[float]]]) -> None:
    """Undo a `take_delta` whose write failed: out of `base`, back into `delta`."""
    for day, cells in delta.items():
        base = tm.base.get(day, {})
        into = tm.delta.setdefault(day, {})
        for key, c in cells.items():
            b = base.get(key)
            if b is not None:
                for i in range(FIELDS):
                    b[i] -= c[i]
        add_cells(into, cells)
    tm.today_day, tm.today = -1, {}
