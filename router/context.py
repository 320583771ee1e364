"""The long-lived objects a stage may use, handed to every stage's constructor.

One `Context` per loaded config: the config itself, the live backends, the model catalog, and the
state store (spend, budgets, keys) once those issues land. Stages keep what they need from it at
construction; per-request data never goes here (it travels in the `Exchange`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from router.catalog import Catalog
from router.config import Config

if TYPE_CHECKING:
    from backends.base import Backend
    from router.auth import KeyRing


@dataclass(slots=True)
class Context:
    config: Config
    backends: dict[str, Backend]
    catalog: Catalog
    store: Any = None
    keys: KeyRing | None = None  # client keys (router/auth.py), shared by `auth` and the non-pipeline endpoints
