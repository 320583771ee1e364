"""The long-lived objects a stage may use, handed to every stage's constructor.

One `Context` per loaded config: the config itself, the live backends, the model catalog, and the
state store (`router.state.Store`: budgets, limits, the spend ledger, small records; from
`state.url`). Stages keep what they need from it at construction; per-request data never goes here (it
travels in the `Exchange`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from router.catalog import Catalog
from router.config import Config
from router.state import Store
from router.state.memory import MemoryStore

if TYPE_CHECKING:
    from backends.base import Backend
    from router.auth import KeyRing
    from router.routing.feedback import FeedbackLoop


@dataclass(slots=True)
class Context:
    config: Config
    backends: dict[str, Backend]
    catalog: Catalog
    store: Store = field(default_factory=MemoryStore)
    keys: KeyRing | None = None  # client keys (router/auth.py), shared by `auth` and the non-pipeline endpoints
    feedback: FeedbackLoop | None = None  # remembers answers for /v1/feedback, feeds adaptive routing
