"""Logs: one access line per request (JSON or text) with the decision and timings, events, never content or keys."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from backends.simulated import Behavior
from router.observe.accesslog import AccessLog
from router.observe.logs import JsonFormatter, TextFormatter, event, setup_logging
from tests.conftest import Stack

SECRET = "my card is 4111 1111 1111 1111 and my password is hunter2-SECRET"
CLIENT_KEY = "sk-client-key-should-never-be-logged"
FIELDS = {"request_id", "tenant", "endpoint", "task", "complexity", "difficulty", "prompt_tokens_estimate", "tier",
          "model", "backend", "attempts", "status", "latency_ms", "ttft_ms", "overhead_ms", "upstream_ms", "cost_usd",
          "prompt_tokens", "completion_tokens"}


@pytest.fixture
def access_file(live: Stack, tmp_path: Path) -> Iterator[tuple[Stack, Path, str]]:
    """The live stack with its access log written to a file; yields (stack, path, format)."""
    assert live.service is not None
    obs = live.service.observer
    old = obs.access
    path = tmp_path / "access.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    fmt = {"value": "json"}

    def use(f: str) -> None:
        fmt["value"] = f
        obs.access = AccessLog(True, f, fd=fd)

    use("json")
    try:
        yield live, path, use  # type: ignore[misc]
    finally:
        obs.access.flush()
        obs.access = old
        os.close(fd)


def _chat(url: str, stream: bool = False) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {CLIENT_KEY}", "x-request-id": "log-test-1"},
                      json={"model": "auto", "stream": stream, "messages": [{"role": "user", "content": SECRET}]})


def _lines(live: Stack, path: Path) -> list[bytes]:
    assert live.service is not None
    live.service.observer.access.flush()
    return path.read_bytes().splitlines()


def test_access_line_json(access_file: tuple[Stack, Path, object]) -> None:
    live, path, _ = access_file
    assert _chat(live.url).status_code == 200
    assert _chat(live.url, stream=True).status_code == 200
    live.local.behavior = Behavior(fail_status=500, fail_times=1)
    assert _chat(live.url).status_code == 200
    lines = _lines(live, path)
    raw = b"\n".join(lines)
    assert SECRET.encode() not in raw
    assert b"hunter2" not in raw
    assert b"4111" not in raw
    assert CLIENT_KEY.encode() not in raw
    recs = [orjson.loads(line) for line in lines]
    assert len(recs) == 3
    for r in recs:
        assert set(r) >= FIELDS, FIELDS - set(r)
        assert r["event"] == "request"
        assert r["level"] == "info"
        assert r["logger"] == "ai_router.access"
        assert r["request_id"] == "log-test-1"
        assert r["status"] == 200
        assert r["endpoint"] == "chat"
        assert r["task"] == "chat"
        assert r["latency_ms"] > 0
        assert r["overhead_ms"] > 0
        assert 0 <= r["difficulty"] <= 1
    assert recs[0]["ttft_ms"] is None
    assert recs[1]["ttft_ms"] > 0
    assert recs[1]["completion_tokens"] > 0
    assert [a["outcome"] for a in recs[2]["attempts"]] == ["error", "ok"]
    assert recs[2]["attempts"][0]["tier"] == "local-small"
    assert recs[2]["attempts"][1]["tier"] == "local-large"


def test_access_line_text(access_file: tuple[Stack, Path, object]) -> None:
    live, path, use = access_file
    use("text")  # type: ignore[operator]
    assert _chat(live.url).status_code == 200
    (line,) = _lines(live, path)
    text = line.decode()
    assert " INFO ai_router.access: request " in text
    assert "request_id=log-test-1" in text
    assert "status=200" in text
    assert "tier=local-small" in text
    assert SECRET not in text
    assert CLIENT_KEY not in text


def test_formatters_and_events(tmp_path: Path) -> None:
    rec = logging.LogRecord("ai_router", logging.WARNING, "", 0, "backend %s: breaker open", ("x",), None)
    rec.fields = {"event": "breaker", "backend": "x", "state": "open"}
    j = orjson.loads(JsonFormatter().render(rec))
    assert j["msg"] == "backend x: breaker open"
    assert j["event"] == "breaker"
    assert j["level"] == "warning"
    assert TextFormatter().format(rec).endswith("WARNING ai_router: backend x: breaker open event=breaker backend=x "
                                                "state=open")
    root = logging.getLogger("ai_router")
    saved = (root.handlers[:], root.level, root.propagate)
    access = logging.getLogger("ai_router.access")  # setup_logging configures it too
    saved_access = (access.handlers[:], access.level, access.propagate)
    path = tmp_path / "ops.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        setup_logging("info", "json", fd=fd)
        event(root, "reload", "config loaded", config="x.yaml")
        logging.getLogger("ai_router.backend").debug("hidden below info")
        for h in root.handlers:
            h.flush()
    finally:
        for h in root.handlers[:]:
            if getattr(h, "_ai_router", False):
                root.removeHandler(h)
                h.close()
        for h in access.handlers[:]:
            if h not in saved_access[0]:
                h.close()
        root.handlers[:], root.level, root.propagate = saved  # type: ignore[misc]
        access.handlers[:], access.level, access.propagate = saved_access  # type: ignore[misc]
        os.close(fd)
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    assert lines == [{"ts": lines[0]["ts"], "level": "info", "logger": "ai_router", "msg": "config loaded",
                      "event": "reload", "config": "x.yaml"}]


def test_breaker_and_start_events(live: Stack) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    assert live.service is not None
    live.service.observer.tick()  # the observer's view of the breakers, as they are now
    h = Keep()
    root = logging.getLogger("ai_router")
    old_level = root.level
    root.addHandler(h)
    root.setLevel(logging.INFO)
    try:
        live.local.behavior = Behavior(fail_status=500)
        for _ in range(3):
            httpx.post(live.url + "/v1/chat/completions", timeout=10,
                       json={"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}]})
        live.service.observer.tick()
    finally:
        root.removeHandler(h)
        root.setLevel(old_level)
    ev = [r.fields for r in records if getattr(r, "fields", {}).get("event") == "breaker"]  # type: ignore[attr-defined]
    assert ev
    assert ev[-1]["backend"] == "local"
    assert ev[-1]["state"] == "open"
    assert ev[-1]["failures"] >= 3


def test_direct_access_line_is_the_formatter_s_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The access log appends its JSON line straight to the buffered handler (no LogRecord); the bytes are
    those `JsonFormatter` renders for the record, and a second handler on the logger gets the record."""
    import time as _time

    from router.exchange import Attempt, Exchange, Features
    from router.observe.accesslog import AccessRecord, fields

    ex = Exchange("rid-1", "chat", {"model": "auto", "messages": []}, None, {})
    ex.features = Features(task="code", complexity="medium", tokens=42, difficulty=0.4125)
    ex.tenant, ex.status, ex.cost_usd, ex.cache = "acme/web", 200, 0.00012, "miss"
    ex.usage = {"prompt_tokens": 42, "completion_tokens": 7}
    ex.attempts = [Attempt("m", "b", "t", "error", 12.34567), Attempt("m2", "b", "t2", "ok", 80.0004)]
    ex.overhead_s, ex.upstream_s, ex.ttft_s = 0.0003219, 0.09218, 0.0123456
    monkeypatch.setattr(_time, "time", lambda: 1764582000.123456)
    monkeypatch.setattr(_time, "perf_counter", lambda: ex.started + 0.5)
    path = tmp_path / "a.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        log = AccessLog(True, "json", fd=fd)
        assert log._direct() is not None
        log.write(ex, "upstream_error")
        log.flush()
    finally:
        os.close(fd)
    want = JsonFormatter().render(AccessRecord(fields(ex, "upstream_error")))
    assert path.read_bytes() == want
    line = orjson.loads(want)
    assert line["attempts"][0]["ms"] == 12.346
    assert line["overhead_ms"] == 0.322
    assert line["latency_ms"] == 500.0
    assert line["cache"] == "miss"
    assert line["ts"] == 1764582000.123
    lg = logging.getLogger("ai_router.access")
    seen: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    extra = Catch()
    saved = (lg.handlers[:], lg.level, lg.propagate)
    lg.addHandler(extra)
    try:
        al = AccessLog(True, "json")
        assert al._direct() is None  # another handler listens: the line goes through logging
        al.write(ex)
    finally:  # AccessLog added its own handler too: leave the logger as it was, for the tests after this one
        lg.handlers[:], lg.level, lg.propagate = saved  # type: ignore[misc]
    assert len(seen) == 1
    assert seen[0].fields["request_id"] == "rid-1"


def test_direct_lines_are_the_formatter_s_lines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The line written straight to the handler (a template dict filled in place) is byte for byte the
    formatter's rendering of the record's fields, for bare exchanges, errors and findings, and awkward client
    values."""
    import time as _time
    from types import SimpleNamespace

    from router.exchange import Attempt, Candidate, Exchange, Features
    from router.observe.accesslog import AccessRecord, fields

    monkeypatch.setattr(_time, "time", lambda: 1764582000.0005)
    bare = Exchange("r%s-1\"\u2028", "embeddings", {"model": "50% ünïcode " * 30}, None, {})
    bare.status = 400
    full = Exchange("rid-2", "chat", {"model": "auto"}, None, {})
    full.features = Features(task="code", complexity="high", tokens=7, difficulty=1e-7)
    full.tenant, full.status, full.cost_usd, full.cache, full.spilled = "a/b", 200, 1.5e-9, "hit", "cloud-mini"
    full.usage = {"input_tokens": 5, "output_tokens": 2, "x_router_counted": True}
    full.attempts = [Attempt("m%", "b", None, "saturated", 0.0)]
    full.findings = {"EMAIL": 2}
    full.ttft_s = 0.0
    clean = Exchange("rid-3", "chat", {"model": "auto"}, None, {})  # no findings: the templated line
    clean.features, clean.tenant, clean.status, clean.cost_usd, clean.cache = full.features, "a/b", 200, None, "bypass"
    clean.usage = {"prompt_tokens": 300, "completion_tokens": 50, "prompt_tokens_details": {"cached_tokens": 10}}
    clean.attempts = [Attempt("m", "b", "t", "error", 1.00049), Attempt("m2", "b2", "t2", "ok", 3e-7)]
    clean.queue_s, clean.overhead_s, clean.upstream_s = 0.0012345, 2.5e-5, 0.25
    clean.target = Candidate(SimpleNamespace(id="gpt-5", backend="open%ai", location="cloud"), None, "cloud-high")  # type: ignore[arg-type]
    for ex, error in ((bare, None), (bare, "invalid_request"), (full, None), (full, "upstream_error"), (clean, None),
                      (clean, None)):
        monkeypatch.setattr(_time, "perf_counter", lambda ex=ex: ex.started + 0.25)
        path = tmp_path / f"{ex.request_id[:5]}-{error}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT)
        try:
            log = AccessLog(True, "json", fd=fd)
            log.write(ex, error)
            log.flush()
        finally:
            os.close(fd)
        assert path.read_bytes() == JsonFormatter().render(AccessRecord(fields(ex, error)))
