"""The feedback loop: implicit outcomes, bounded memory, and POST /v1/feedback over real sockets."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from router.config import parse
from router.exchange import Attempt, Exchange
from router.routing.feedback import build_feedback, fingerprint
from router.server import RouterService
from tests.conftest import Stack, make_config

KEY_A, KEY_B = "sk-feedback-a", "sk-feedback-b"
HELLO = "hey, how's it going?"


# ---------------------------------------------------------------- the loop alone


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def loop_for(**adaptive: Any) -> tuple[Any, Clock, RouterService]:
    svc = RouterService(parse(make_config("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1",
                                          routing={**make_config("", "")["routing"], "adaptive": adaptive})))
    clock = Clock()
    return build_feedback(svc.config, svc.catalog, clock), clock, svc


def served(svc: RouterService, rid: str, tier: str, content: str = HELLO, tenant: str | None = "acme/a",
           **fields: Any) -> Exchange:
    """An exchange as the server ends it: classified, routed to `tier`, answered."""
    body = {"model": "auto", "messages": [{"role": "user", "content": content}]}
    ex = Exchange(rid, "chat", body, None, {})
    ex.tenant = tenant
    route = next(s for s in svc.pipeline.stages if s.name == "route")
    ex.features = route.analyzer.features(ex)[0]
    ex.target = svc.catalog.by_tier[tier][0]
    ex.attempts = [Attempt(ex.target.model.id, ex.target.model.backend, tier, "ok", 1.0)]
    ex.status = 200
    for k, v in fields.items():
        setattr(ex, k, v)
    return ex


def local_outcome(loop: Any, tenant: str = "acme/a") -> dict[str, Any]:
    """The tenant's local outcomes over every cell: weighted count and mean score."""
    cells = [c["local"] for c in loop.adaptive.describe(tenant) if c["local"]["n"]]
    n = sum(c["n"] for c in cells)
    return {"n": n, "mean": round(sum(c["n"] * c["mean"] for c in cells) / n, 4) if n else None}


def test_quiet_answers_count_as_good_after_the_window() -> None:
    loop, clock, svc = loop_for(reask_window_s=60, implicit_weight=0.5)
    loop.finished(served(svc, "r1", "local-small"))
    assert local_outcome(loop)["n"] == 0  # not final yet: a re-ask may still come
    clock.t += 61
    loop.finished(served(svc, "r2", "local-small", content="something else"))
    assert local_outcome(loop) == {"n": 0.5, "mean": 1.0}


def test_reask_marks_the_earlier_answer_bad() -> None:
    loop, clock, svc = loop_for(reask_window_s=60)
    loop.finished(served(svc, "r1", "local-small", content="What is  the capital of France?"))
    clock.t += 10
    loop.finished(served(svc, "r2", "cloud-mini", content="what is the capital of france?"))
    loop.flush()
    cells = loop.adaptive.describe("acme/a")
    assert sum(c["local"]["n"] for c in cells) == 0.5
    assert [c["local"]["mean"] for c in cells if c["local"]["n"]] == [0.0]
    assert [c["cloud"]["mean"] for c in cells if c["cloud"]["n"]] == [1.0]


def test_reask_is_per_tenant() -> None:
    loop, _clock, svc = loop_for()
    loop.finished(served(svc, "r1", "local-small", tenant="acme/a"))
    loop.finished(served(svc, "r2", "local-small", tenant="acme/b"))
    loop.flush()
    assert local_outcome(loop, "acme/a")["mean"] == 1.0


def test_truncated_and_promoted_answers() -> None:
    loop, _clock, svc = loop_for()
    loop.finished(served(svc, "r1", "local-small", truncated=True))
    ex = served(svc, "r2", "cloud-mini", content="another question")
    ex.attempts.insert(0, Attempt("qwen3:8b", "local", "local-small", "timeout", 2000.0))
    loop.finished(ex)  # promoted: the local attempt failed
    loop.flush()
    cells = loop.adaptive.describe("acme/a")
    local = [c["local"] for c in cells if c["local"]["n"]]
    assert sum(x["n"] for x in local) == 1.0
    assert all(x["mean"] == 0.0 for x in local)
    assert [c["cloud"] for c in cells if c["cloud"]["n"]] == [{"n": 0.5, "mean": 1.0}]


def test_an_error_counts_against_the_location_that_failed() -> None:
    loop, _clock, svc = loop_for()
    ex = served(svc, "r1", "local-small", status=502)
    ex.attempts = [Attempt("qwen3:8b", "local", "local-small", "error", 3.0)]
    loop.finished(ex)
    loop.flush()
    assert local_outcome(loop) == {"n": 0.5, "mean": 0.0}
    assert loop.rate("r1", "acme/a", 1.0)  # an explicit rating of an error still counts


def test_explicit_rating_replaces_the_implicit_outcome() -> None:
    loop, clock, svc = loop_for(reask_window_s=5)
    loop.finished(served(svc, "r1", "local-small"))
    clock.t += 10
    loop.flush()
    assert local_outcome(loop) == {"n": 0.5, "mean": 1.0}
    assert loop.rate("r1", "acme/a", 0.0)
    assert local_outcome(loop) == {"n": 1.0, "mean": 0.0}
    assert loop.rate("r1", "acme/a", 0.25)  # rated again: replaces the first rating
    assert local_outcome(loop) == {"n": 1.0, "mean": 0.25}
    assert not loop.rate("r1", "acme/b", 1.0)  # another tenant's answer
    assert not loop.rate("nope", "acme/a", 1.0)


def test_memory_is_bounded_by_count_and_time() -> None:
    loop, clock, svc = loop_for(remember_max=3, remember_s=100)
    for i in range(5):
        loop.finished(served(svc, f"r{i}", "local-small", content=f"q{i}"))
    assert loop.answers.counts() == {"answers": 3, "pending": 3, "asks": 3}  # open outcomes, asks: capped too
    assert local_outcome(loop)["n"] == 1.0  # the two pushed out of `pending` were counted, not lost
    assert loop.lookup("r0", "acme/a") is None
    assert loop.lookup("r4", "acme/a") is not None
    clock.t += 101
    assert loop.lookup("r4", "acme/a") is None
    loop.finished(served(svc, "r9", "local-small"))
    assert loop.answers.counts()["answers"] == 1
    assert loop.lookup("r9", "acme/a") is not None


def test_the_oldest_answer_is_forgotten_first_at_the_cap() -> None:
    loop, _clock, svc = loop_for(remember_max=4)
    for i in range(6):
        loop.finished(served(svc, f"r{i}", "local-small", content=f"q{i}"))
    assert [loop.rate(f"r{i}", "acme/a", 0.0) for i in range(6)] == [False, False, True, True, True, True]
    loop.finished(served(svc, "r2", "cloud-mini", content="q2 again"))  # an id reused: its newest answer is rated
    assert loop.rate("r2", "acme/a", 1.0)
    cells = loop.adaptive.describe("acme/a")
    assert [c["cloud"] for c in cells if c["cloud"]["n"]] == [{"n": 1.0, "mean": 1.0}]
    for i in range(6, 9):  # r2's first answer and r3-r5 go; the reused r2 is now the oldest
        loop.finished(served(svc, f"r{i}", "local-small", content=f"q{i}"))
    assert [loop.lookup(f"r{i}", "acme/a") is not None for i in (2, 3, 4, 5, 6, 7, 8)] == [
        True, False, False, False, True, True, True]


def test_a_reask_of_a_forgotten_answer_counts_nothing_against_it() -> None:
    loop, _clock, svc = loop_for(remember_max=2, reask_window_s=60)
    loop.finished(served(svc, "r1", "local-small", content="the same question"))
    loop.finished(served(svc, "r2", "local-small", content="another"))
    loop.finished(served(svc, "r3", "local-small", content="a third"))  # r1 forgotten: its quiet outcome counted
    assert local_outcome(loop) == {"n": 0.5, "mean": 1.0}
    loop.finished(served(svc, "r4", "local-small", content="the same question"))
    loop.flush()
    assert local_outcome(loop) == {"n": 2.0, "mean": 1.0}  # r1 stays good; r2-r4 quiet


def test_the_outbox_keeps_an_answer_pushed_out_before_it_was_written() -> None:
    loop, _clock, svc = loop_for(remember_max=1)
    loop.outbox = []  # as with a shared store
    loop.finished(served(svc, "r1", "local-small", truncated=True))
    loop.finished(served(svc, "r2", "cloud-mini", tenant="acme/b", content="other"))
    items = dict(loop.take_outbox())
    first, second = items["fbr/acme/a/r1"], items["fbr/acme/b/r2"]
    assert first == {"tenant": "acme/a", "cell": first["cell"], "cloud": False, "implicit": 0.0}  # truncated
    assert second == {"tenant": "acme/b", "cell": second["cell"], "cloud": True, "implicit": 1.0}
    assert first["cell"][0] == second["cell"][0] == "chat"


def test_fingerprint_normalises_and_keeps_no_text() -> None:
    a = fingerprint("chat", {"messages": [{"role": "system", "content": "x"},
                                          {"role": "user", "content": "Hi  there"}]})
    b = fingerprint("chat", {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}]})
    assert a == b
    assert isinstance(a, int)
    assert fingerprint("completions", {"prompt": "hi there"}) == a
    assert fingerprint("responses", {"input": "hi there"}) == a
    assert fingerprint("chat", {"messages": []}) is None
    long = "word " * 10_000
    assert fingerprint("chat", {"messages": [{"role": "user", "content": long}]}) != fingerprint(
        "chat", {"messages": [{"role": "user", "content": long + "more"}]})


# ---------------------------------------------------------------- over real sockets


def keyed_config(local: str, cloud: str) -> dict[str, Any]:
    cfg = make_config(local, cloud)
    cfg["auth"] = {"keys": [
        {"name": "a", "key_env": "AI_ROUTER_TEST_FEEDBACK_A", "tenant": "acme/a"},
        {"name": "b", "key_env": "AI_ROUTER_TEST_FEEDBACK_B", "tenant": "acme/b"},
    ]}
    cfg["routing"]["adaptive"] = {"enabled": True, "min_samples": 3, "explore": 0, "explore_floor": 0,
                                  "reask_window_s": 0}
    return cfg


@pytest.fixture(scope="module")
def keyed() -> Iterator[Stack]:
    os.environ["AI_ROUTER_TEST_FEEDBACK_A"] = KEY_A
    os.environ["AI_ROUTER_TEST_FEEDBACK_B"] = KEY_B
    stack = Stack(keyed_config).start()
    yield stack
    stack.stop()


def sdk(stack: Stack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=key, max_retries=0)


def ask(stack: Stack, key: str, model: str = "auto", content: str = HELLO, **headers: str) -> tuple[str, str]:
    """(request id, tier) of one answer, through the official SDK."""
    raw = sdk(stack, key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], extra_headers=headers or None)
    return raw.headers["x-request-id"], raw.headers["x-router-tier"]


def rate(stack: Stack, key: str | None, body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(timeout=10) as c:
        if isinstance(body, bytes):
            return c.post(stack.url + "/v1/feedback", content=body, headers=headers)
        return c.post(stack.url + "/v1/feedback", json=body, headers=headers)


def test_feedback_is_204(keyed: Stack) -> None:
    rid, _ = ask(keyed, KEY_A, content="a question for the 204 test")
    r = rate(keyed, KEY_A, {"request_id": rid, "score": 0.7})
    assert r.status_code == 204
    assert r.content == b""
    assert rate(keyed, KEY_A, {"request_id": rid, "rating": "down"}).status_code == 204
    # through the SDK's generic POST, as an app would send it
    assert sdk(keyed, KEY_A).post("/feedback", body={"request_id": rid, "rating": "up"}, cast_to=httpx.Response
                                  ).status_code == 204


def test_unknown_id_is_404(keyed: Stack) -> None:
    r = rate(keyed, KEY_A, {"request_id": "no-such-request", "score": 1})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "request_not_found"
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_another_tenants_request_is_404(keyed: Stack) -> None:
    rid, _ = ask(keyed, KEY_A, content="only acme/a may rate this")
    r = rate(keyed, KEY_B, {"request_id": rid, "rating": "down"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "request_not_found"


def test_feedback_needs_a_key(keyed: Stack) -> None:
    rid, _ = ask(keyed, KEY_A)
    assert rate(keyed, None, {"request_id": rid, "score": 1}).status_code == 401
    assert rate(keyed, "sk-wrong", {"request_id": rid, "score": 1}).status_code == 401


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"not json", None),
        (b"[1, 2]", None),
        ({"score": 1}, "request_id"),
        ({"request_id": "", "score": 1}, "request_id"),
        ({"request_id": "x" * 200, "score": 1}, "request_id"),
        ({"request_id": "r"}, "score"),
        ({"request_id": "r", "score": 1.5}, "score"),
        ({"request_id": "r", "score": "high"}, "score"),
        ({"request_id": "r", "score": True}, "score"),
        ({"request_id": "r", "rating": "meh"}, "rating"),
        ({"request_id": "r", "rating": "up", "score": 1}, "rating"),
        ({"request_id": "r", "score": 1, "comment": "great"}, "comment"),
    ],
)
def test_bad_body_is_400(keyed: Stack, body: Any, param: str | None) -> None:
    r = rate(keyed, KEY_A, body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param


def test_oversized_body_is_413(keyed: Stack) -> None:
    assert rate(keyed, KEY_A, b"{" + b" " * 20_000 + b"}").status_code == 413


def test_get_is_405(keyed: Stack) -> None:
    with httpx.Client() as c:
        assert c.get(keyed.url + "/v1/feedback").status_code == 405


def test_ratings_move_the_tenants_decisions_within_caps(keyed: Stack) -> None:
    prompt = "hello there, nice weather today"
    assert ask(keyed, KEY_B, content=prompt)[1] == "local-small"
    for _ in range(3):  # local answers rated down, cloud answers (asked for by tier) rated up
        rid, tier = ask(keyed, KEY_B, content=prompt)
        assert tier == "local-small"
        assert rate(keyed, KEY_B, {"request_id": rid, "rating": "down"}).status_code == 204
        rid, tier = ask(keyed, KEY_B, model="tier:cloud-mini", content=prompt)
        assert tier == "cloud-mini"
        assert rate(keyed, KEY_B, {"request_id": rid, "rating": "up"}).status_code == 204
    time.sleep(1.1)  # a tenant's plan is recomputed at most once a second, on an outcome
    rid, _ = ask(keyed, KEY_B, model="tier:cloud-mini", content=prompt)
    assert rate(keyed, KEY_B, {"request_id": rid, "score": 1.0}).status_code == 204

    with httpx.Client() as c:
        preview = c.post(keyed.url + "/v1/route", headers={"Authorization": f"Bearer {KEY_B}"},
                         json={"model": "auto", "messages": [{"role": "user", "content": prompt}]}).json()
    assert preview["tier"] == "cloud-mini"
    moved = [r for r in preview["reasons"] if r.startswith("adaptive (acme/b, chat")]
    assert len(moved) == 1
    assert moved[0].endswith("local-small -> cloud-mini")
    assert ask(keyed, KEY_B, content=prompt)[1] == "cloud-mini"  # the real call agrees
    assert ask(keyed, KEY_A, content=prompt)[1] == "local-small"  # another tenant is not moved
    # the caps still hold: the client's x-router-max-tier
    assert ask(keyed, KEY_B, content=prompt, **{"x-router-max-tier": "local-large"})[1] == "local-small"


def test_a_forgotten_answer_is_404() -> None:
    os.environ["AI_ROUTER_TEST_FEEDBACK_A"] = KEY_A
    os.environ["AI_ROUTER_TEST_FEEDBACK_B"] = KEY_B

    def config(local: str, cloud: str) -> dict[str, Any]:
        cfg = keyed_config(local, cloud)
        cfg["routing"]["adaptive"]["remember_max"] = 2
        return cfg

    stack = Stack(config).start()
    try:
        first, second, third = (ask(stack, KEY_A, content=f"question {i}")[0] for i in range(3))
        r = rate(stack, KEY_A, {"request_id": first, "rating": "up"})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "request_not_found"
        assert rate(stack, KEY_A, {"request_id": second, "rating": "up"}).status_code == 204
        assert rate(stack, KEY_A, {"request_id": third, "rating": "down"}).status_code == 204
    finally:
        stack.stop()


def test_truncated_answers_count_against_their_location(keyed: Stack) -> None:
    fb = keyed.service.ctx.feedback  # type: ignore[union-attr]

    def counts() -> dict[str, float]:
        cells = fb.adaptive.describe("acme/a")
        return {loc: sum(c[loc]["n"] for c in cells) for loc in ("local", "cloud")}

    before = counts()
    c = sdk(keyed, KEY_A)
    raw = c.chat.completions.with_raw_response.create(
        model="auto", max_tokens=3, messages=[{"role": "user", "content": "tell me more"}])
    assert raw.parse().choices[0].finish_reason == "length"
    # under load an answer may spill to cloud: the zero counts where the answer came from
    where = ["local" if raw.headers["x-router-tier"].startswith("local") else "cloud"]
    with c.chat.completions.with_streaming_response.create(
            model="auto", max_tokens=3, stream=True, messages=[{"role": "user", "content": "and then?"}]) as sr:
        where.append("local" if sr.headers["x-router-tier"].startswith("local") else "cloud")
        body = b"".join(sr.iter_bytes())
    assert b'"finish_reason":"length"' in body
    after = counts()
    for loc in ("local", "cloud"):  # two implicit 0s at weight 0.5, each at its answer's location
        assert after[loc] == before[loc] + 0.5 * where.count(loc)


# ---------------------------------------------------------------- persistence


def sqlite_config(path: str) -> Any:
    def config(local: str, cloud: str) -> dict[str, Any]:
        cfg = keyed_config(local, cloud)
        cfg["state"] = {"url": f"sqlite:///{path}"}
        return cfg

    return config


def test_the_policy_survives_a_restart_on_sqlite(tmp_path: Any) -> None:
    """Learn on one router, stop it, start another on the same SQLite file: the decision stays moved."""
    os.environ["AI_ROUTER_TEST_FEEDBACK_A"] = KEY_A
    os.environ["AI_ROUTER_TEST_FEEDBACK_B"] = KEY_B
    db = str(tmp_path / "state.db")
    prompt = "good morning, how are you doing"
    first = Stack(sqlite_config(db)).start()
    try:
        for _ in range(3):
            rid, tier = ask(first, KEY_A, content=prompt)
            assert tier == "local-small"
            assert rate(first, KEY_A, {"request_id": rid, "rating": "down"}).status_code == 204
            rid, _ = ask(first, KEY_A, model="tier:cloud-mini", content=prompt)
            assert rate(first, KEY_A, {"request_id": rid, "rating": "up"}).status_code == 204
        time.sleep(1.1)
        rid, _ = ask(first, KEY_A, model="tier:cloud-mini", content=prompt)
        assert rate(first, KEY_A, {"request_id": rid, "rating": "up"}).status_code == 204
        assert ask(first, KEY_A, content=prompt)[1] == "cloud-mini"
        unrated, _ = ask(first, KEY_A, content="one more question, rated after the restart")
    finally:
        first.stop()  # a graceful stop writes what is left to the store
    second = Stack(sqlite_config(db)).start()
    try:
        assert ask(second, KEY_A, content=prompt)[1] == "cloud-mini"  # learnt before the restart
        assert ask(second, KEY_B, content=prompt)[1] == "local-small"  # still per tenant
        cells = second.service.feedback.adaptive.describe("acme/a")  # type: ignore[union-attr]
        assert sum(c["local"]["n"] for c in cells) == 3.0  # the three ratings down
        # four ratings up, and the three unrated auto answers at cloud-mini (quiet: implicitly good, weight 0.5)
        assert sum(c["cloud"]["n"] for c in cells) == 5.5
        # an answer the first router gave can be rated on the second (another worker, or after a restart)
        assert rate(second, KEY_B, {"request_id": unrated, "rating": "up"}).status_code == 404
        assert rate(second, KEY_A, {"request_id": unrated, "rating": "down"}).status_code == 204
        assert rate(second, KEY_A, {"request_id": unrated, "rating": "down"}).status_code == 204  # replaces
        cells = second.service.feedback.adaptive.describe("acme/a")  # type: ignore[union-attr]
        assert sum(c["cloud"]["n"] for c in cells) == 6.0  # its implicit 0.5 replaced by a rating of weight 1
        assert sum(c["cloud"]["n"] * c["cloud"]["mean"] for c in cells) == pytest.approx(5.0, abs=0.01)  # 1.0 -> 0.0
    finally:
        second.stop()


def test_a_reused_id_never_reaches_another_tenants_answer() -> None:
    loop, _clock, svc = loop_for()
    loop.finished(served(svc, "same-id", "local-small", tenant="acme/a"))
    loop.finished(served(svc, "same-id", "cloud-mini", tenant="acme/b", content="other"))
    assert loop.rate("same-id", "acme/a", 0.0)  # still acme/a's own answer, at local
    assert local_outcome(loop, "acme/a") == {"n": 1.0, "mean": 0.0}
    assert local_outcome(loop, "acme/b")["n"] == 0
