"""The middleware contract: order, onion, custom stages by import path, inactive stages, load errors."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from backends import make_backend
from router.catalog import Catalog
from router.config import ConfigError, parse
from router.context import Context
from router.errors import PermissionDenied
from router.exchange import Exchange, Reply
from router.pipeline import Pipeline, load_stage

CFG = parse({
    "backends": [{"name": "b", "base_url": "http://127.0.0.1:9/v1", "models": [{"id": "m", "tier": "t"}]}],
    "routing": {"tiers": ["t"]},
})


def ctx() -> Context:
    backends = {b.name: make_backend(b) for b in CFG.backends}
    return Context(config=CFG, backends=backends, catalog=Catalog(CFG, backends))


def exchange(content: str = "hi") -> Exchange:
    body = {"model": "auto", "messages": [{"role": "user", "content": content}]}
    return Exchange("rid", "chat", body, None, CIMultiDictProxy(CIMultiDict()))


async def terminal(ex: Exchange) -> Reply:
    return Reply(200, {}, body=b"{}")


async def test_onion_order() -> None:
    log: list[str] = []
    c = ctx()
    entries: list[Any] = [
        {"use": "tests.stages_for_tests:Recorder", "options": {"label": "a", "log": log}},
        {"use": "tests.stages_for_tests:Recorder", "options": {"label": "b", "log": log}},
    ]
    p = Pipeline.from_config(entries, c, terminal)
    reply = await p(exchange())
    assert log == ["a:before", "b:before", "b:after", "a:after"]
    assert reply.headers == {"x-seen-b": "1", "x-seen-a": "1"}


async def test_custom_stage_refuses() -> None:
    p = Pipeline.from_config([{"use": "tests.stages_for_tests:BlockWord", "options": {"word": "secret"}}],
                             ctx(), terminal)
    assert (await p(exchange("fine"))).status == 200
    with pytest.raises(PermissionDenied):
        await p(exchange("a secret plan"))


def test_inactive_builtins_are_left_out_of_the_chain() -> None:
    p = Pipeline.from_config(["auth", "ratelimit", "redact", "cache", "budget", "retry"], ctx(), terminal)
    assert [s.name for s in p.stages] == ["auth", "ratelimit", "redact", "cache", "budget", "retry"]
    assert [s.name for s in p.active] == ["budget", "retry"]  # no keys, limits; budget always keeps the ledger


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("nosuchstage", "pipeline[0]: 'nosuchstage' is neither a built-in stage nor 'module:Class'"),
        ("nosuchmodule_xyz:Stage", "pipeline[0]: cannot import 'nosuchmodule_xyz'"),
        ("tests.stages_for_tests:Missing", "pipeline[0]: 'tests.stages_for_tests' has no 'Missing'"),
        ("tests.stages_for_tests:NoHandle", "pipeline[0]: 'tests.stages_for_tests:NoHandle' has no async handle"),
        ({"use": "retry", "options": {"bogus": 1}},
         "pipeline[0]: cannot build 'retry' (stage 'retry' takes no options"),
        ({"use": "tests.stages_for_tests:BlockWord", "options": {"colour": 1}}, "pipeline[0]: cannot build"),
    ],
)
def test_load_errors(entry: Any, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_stage(entry, ctx(), "pipeline[0]")
    assert str(e.value).startswith(message), str(e.value)
