"""The adaptive counters through the state store: two engines (workers, replicas) sharing one store add up."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from router.config import Adaptive as Settings
from router.exchange import Features
from router.routing.adaptive import FIELDS, Adaptive
from router.routing.adaptive_store import AdaptiveStore, decode, encode, parse_key, record_key
from router.state import Store, open_store
from tests.redis_support import delete_prefix, new_prefix, redis_url, require_redis

TIERS = ["local-small", "cloud-mini"]
F = Features(task="math", difficulty=0.5)


def engine() -> Adaptive:
    return Adaptive(Settings(enabled=True, min_samples=2, explore=0, explore_floor=0), TIERS, [False, True],
                    rng=random.Random(1))


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    prefix = new_prefix()
    if request.param == "redis":
        require_redis()
        url = redis_url(prefix)
    else:
        url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/state.db"
    s = open_store(url)
    await s.start()
    yield s
    await s.aclose()
    if request.param == "redis":
        delete_prefix(prefix)


def counts(a: Adaptive, tenant: str = "acme/web") -> tuple[float, float]:
    cell = a.describe(tenant)[0]
    return cell["local"]["n"], cell["cloud"]["n"]


async def test_two_engines_share_their_counts(store: Store) -> None:
    a, b = engine(), engine()
    sa, sb = AdaptiveStore(a, store), AdaptiveStore(b, store)
    key = ("math", a.bucket(F))
    for _ in range(3):
        a.observe("acme/web", key, False, 0.0, 1.0)
    await sa.push()
    await sb.pull()
    assert counts(b) == (3.0, 0.0)
    for _ in range(3):
        b.observe("acme/web", key, True, 1.0, 1.0)
    await sb.push()
    await sa.pull()
    assert counts(a) == (3.0, 3.0)
    a.replan(a.tenant("acme/web"))
    reasons: list[str] = []
    assert a.adjust("acme/web", F, 0, 1, reasons, live=False) == 1  # both workers' evidence moved it
    assert counts(b) == (3.0, 3.0)  # its own pushes folded in, nothing counted twice
    await sb.pull()
    assert counts(b) == (3.0, 3.0)


async def test_a_failed_push_is_retried(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    a = engine()
    sa = AdaptiveStore(a, store)
    a.observe("acme/web", ("math", 2), False, 1.0, 1.0)

    async def down(*args: object, **kw: object) -> None:
        raise ConnectionError("store down")

    monkeypatch.setattr(store, "incr_many", down)
    with pytest.raises(ConnectionError):
        await sa.push()
    assert counts(a) == (1.0, 0.0)  # still counted here, not twice
    monkeypatch.undo()
    await sa.push()
    b = engine()
    await AdaptiveStore(b, store).pull()
    assert counts(b) == (1.0, 0.0)


def test_record_format() -> None:
    assert record_key("acme/web", 20425) == "adaptive/acme/web/d20425"
    assert parse_key("adaptive/acme/web/d20425") == ("acme/web", 20425)
    assert parse_key("adaptive/junk") is None
    cells = {("math", 2): [1.0, 0.0, 2.5] + [0.0] * (FIELDS - 3)}
    cells[("math", 2)][6 + 39] = 4.0  # the hardest of the bucket's 40 difficulty slices
    assert encode(cells) == {"math\t2\t0": 1.0, "math\t2\t2": 2.5, "math\t2\t55": 4.0}
    assert decode({**encode(cells), "bad": 1, "math\t2\t99": 1}) == cells
    # a record written with ten slices per bucket (fields 6-15): each is read as the four finer slices it covers
    old = decode({"math\t2\t0": 2.0, "math\t2\t15": 2.0})[("math", 2)]
    assert old[0] == 2.0
    assert old[6 + 36 : 6 + 40] == [0.5] * 4
    assert sum(old[6:]) == 2.0
