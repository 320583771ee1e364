"""Stage `auth`: who is calling. Checks the client's key and sets the exchange's tenant and key.

Glue over `router.auth.KeyRing` (built once by the server from `auth`): the client sends
`Authorization: Bearer KEY` (OpenAI SDKs) or `x-api-key: KEY` (Anthropic SDKs); a config key is found
without leaving the loop, a run-time key (`/admin/keys`) costs one state-store lookup. The key may limit
the models its requests name (`models` globs: 403 `model_not_allowed`) and the tiers routing may send
them to (`tiers` globs, applied by `route`). An open router (no keys, or `auth.open: true`) lets
anonymous callers through with no tenant. The client's key is never forwarded upstream.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from router.auth import ApiKey, KeyRing
from router.errors import PermissionDenied, echo
from router.exchange import CallNext, Exchange, Reply
from router.pipeline import Stage


class AuthStage(Stage):
    name = "auth"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        keys = ctx.keys
        if keys is None:  # a Context built without the server (tests, tools): validate here
            keys = KeyRing(ctx.config.auth, ctx.config.pipeline, ctx.config.routing.tiers)
        self.keys: KeyRing = keys
        self.active = keys.keyed or keys.lookup is not None

    def handle(self, ex: Exchange, call_next: CallNext) -> Awaitable[Reply]:
        entry, digest = self.keys.identify_sync(ex.headers)
        if digest is not None:
            return self._from_store(ex, digest, call_next)
        if entry is not None:
            admit(ex, entry)
        return call_next(ex)  # before-only: hand back the rest's awaitable, adding no frame to the chain

    async def _from_store(self, ex: Exchange, digest: str, call_next: CallNext) -> Reply:
        admit(ex, await self.keys.from_store(digest))
        return await call_next(ex)


def admit(ex: Exchange, entry: ApiKey) -> None:
    """Bind the exchange to its key, or refuse a model the key may not name."""
    if not entry.allows(ex.client_model):
        raise PermissionDenied(
            f"This key may not use model '{echo(ex.client_model)}'.", param="model", code="model_not_allowed"
        )
    ex.tenant = entry.tenant
    ex.key_name = entry.name
    ex.key = entry
