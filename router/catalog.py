"""The catalog: every configured model bound to its live backend, indexed by id and by tier.

Built once per config (start-up and reload). `route` looks candidates up here, `/v1/models` lists it,
and `resolve()` answers what a client's `model` field names: a concrete id, `auto`, or `tier:NAME`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from router.config import Config
from router.errors import ModelNotFound, echo
from router.exchange import Candidate

if TYPE_CHECKING:
    from backends.base import Backend

AUTO = "auto"
TIER_PREFIX = "tier:"


def is_auto(name: str) -> bool:
    """`model: auto` (or no model): the rules choose the tier."""
    return name in ("", AUTO)


def is_routed(name: str) -> bool:
    """`auto` or `tier:NAME`: the router chooses; a concrete model id passes through unrerouted."""
    return name in ("", AUTO) or name.startswith(TIER_PREFIX)


class Catalog:
    """Models by id and by tier, each as a `Candidate` (model + backend + tier)."""

    def __init__(self, config: Config, backends: dict[str, Backend]) -> None:
        self.tiers: list[str] = list(config.routing.tiers)
        self.tier_rank: dict[str, int] = {t: i for i, t in enumerate(self.tiers)}
        self.by_id: dict[str, list[Candidate]] = {}
        self.by_tier: dict[str, list[Candidate]] = {t: [] for t in self.tiers}
        self.all: list[Candidate] = []
        for spec in config.backends:
            backend = backends[spec.name]
            for m in spec.models:
                c = Candidate(model=m, backend=backend, tier=m.tier)
                self.all.append(c)
                self.by_id.setdefault(m.id, []).append(c)
                if m.tier:
                    self.by_tier[m.tier].append(c)
        self.created = int(time.time())
        self._models_json = self._build_models_json()

    def resolve(self, name: str) -> tuple[str, str | None]:
        """What a `model` field asks for: ("auto", None), ("tier", TIER) or ("model", ID)."""
        if name == AUTO or not name:
            return AUTO, None
        if name.startswith(TIER_PREFIX):
            tier = name[len(TIER_PREFIX):]
            if tier not in self.by_tier:
                raise ModelNotFound(
                    f"The model '{echo(name)}' does not exist: known tiers are {', '.join(self.tiers)}",
                    param="model",
                )
            return "tier", tier
        if name not in self.by_id:
            raise ModelNotFound(
                f"The model '{echo(name)}' does not exist or you do not have access to it.", param="model"
            )
        return "model", name

    # ------------------------------------------------------------ /v1/models

    def _build_models_json(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"id": AUTO, "object": "model", "created": self.created, "owned_by": "ai-router"}
        ]
        out += [
            {"id": TIER_PREFIX + t, "object": "model", "created": self.created, "owned_by": "ai-router"}
            for t in self.tiers
        ]
        seen: set[str] = set()
        for c in self.all:
            if c.model.id in seen:
                continue
            seen.add(c.model.id)
            out.append({"id": c.model.id, "object": "model", "created": self.created, "owned_by": c.model.backend})
        return out

    def models_json(self) -> list[dict[str, Any]]:
        return self._models_json

    def model_json(self, model_id: str) -> dict[str, Any] | None:
        for m in self._models_json:
            if m["id"] == model_id:
                return m
        return None
