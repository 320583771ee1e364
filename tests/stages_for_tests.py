"""Custom stages loaded by import path in tests (as a user's `mycompany.guards:ProfanityFilter` would be)."""

from __future__ import annotations

from typing import Any

from router.errors import PermissionDenied
from router.exchange import CallNext, Exchange, Reply


class Recorder:
    """Records its place in the onion: before and after the rest of the pipeline."""

    def __init__(self, ctx: Any, label: str = "r", log: list[str] | None = None) -> None:
        self.label = label
        self.log = log if log is not None else []

    async def handle(self, ex: Exchange, call_next: CallNext) -> Reply:
        self.log.append(f"{self.label}:before")
        reply = await call_next(ex)
        self.log.append(f"{self.label}:after")
        reply.headers = {**reply.headers, f"x-seen-{self.label}": "1"}
        return reply


class BlockWord:
    """Refuses any chat request whose last message contains `word`."""

    name = "blockword"

    def __init__(self, ctx: Any, word: str = "forbidden") -> None:
        self.word = word

    async def handle(self, ex: Exchange, call_next: CallNext) -> Reply:
        content = ex.body.get("messages", [{}])[-1].get("content")
        if isinstance(content, str) and self.word in content:
            raise PermissionDenied("This request is not allowed by policy.", code="blocked_by_policy")
        return await call_next(ex)


class NoHandle:
    def __init__(self, ctx: Any) -> None:
        pass


class Boom:
    """Fails with a bug (not a ProxyError) on requests whose body has `"boom": true`."""

    def __init__(self, ctx: Any) -> None:
        pass

    async def handle(self, ex: Exchange, call_next: CallNext) -> Reply:
        if ex.body.get("boom") is True:
            raise RuntimeError("a bug in a stage")
        return await call_next(ex)


class LocalOnly:
    """Marks requests carrying `x-test-local-only` as local_only (as the redaction policy `local_only` does)."""

    name = "localonly"

    def __init__(self, ctx: Any) -> None:
        pass

    async def handle(self, ex: Exchange, call_next: CallNext) -> Reply:
        if ex.headers.get("x-test-local-only"):
            ex.local_only = True
        return await call_next(ex)


SETTLED: list[tuple[str, Any, Any]] = []


class SpendRecorder:
    """Records each request's settled usage and cost once it is finished (as a spend ledger would)."""

    name = "spendrecorder"

    def __init__(self, ctx: Any) -> None:
        pass

    def handle(self, ex: Exchange, call_next: CallNext) -> Any:
        ex.finish_hooks.append(_settle)
        return call_next(ex)


def _settle(ex: Exchange) -> None:
    SETTLED.append((ex.request_id, ex.usage, ex.cost_usd))
