"""Stage `auth`: who is calling. Checks the client's key and sets the exchange's tenant.

Keys come from config `auth.keys` (`key_env` names an environment variable holding the key, or
`key_sha256` its hex digest; keys are compared by SHA-256, never stored in clear). The client sends
`Authorization: Bearer KEY` (OpenAI SDKs) or `x-api-key: KEY` (Anthropic SDKs). A key may limit the
models it can ask for (`models: ["auto", "qwen3:*"]`, globs). With no keys configured the stage is
inactive: the router is open, as for a sidecar on localhost. The client's key is never forwarded.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from router.config import ConfigError
from router.errors import AuthenticationFailed, PermissionDenied
from router.exchange import CallNext, Exchange, Reply
from router.pipeline import Stage


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    tenant: str
    models: tuple[str, ...]

    def allows(self, model: str) -> bool:
        return self.models == ("*",) or any(fnmatchcase(model, pat) for pat in self.models)


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def load_keys(auth: dict[str, Any]) -> dict[str, ApiKey]:
    """Config `auth.keys` → {sha256 hex: ApiKey}; errors name the key path."""
    keys: dict[str, ApiKey] = {}
    entries = auth.get("keys") or []
    if not isinstance(entries, list):
        raise ConfigError("auth.keys: expected a list")
    for i, k in enumerate(entries):
        where = f"auth.keys[{i}]"
        if not isinstance(k, dict) or not isinstance(k.get("name"), str):
            raise ConfigError(f"{where}.name: required")
        if k.get("key_env"):
            secret = os.environ.get(str(k["key_env"]))
            if not secret:
                continue  # the variable is unset: this key cannot be used (logged by `check`)
            digest = sha256_hex(secret)
        elif k.get("key_sha256"):
            digest = str(k["key_sha256"]).lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ConfigError(f"{where}.key_sha256: expected 64 hex digits")
        else:
            raise ConfigError(f"{where}: needs key_env or key_sha256")
        models = k.get("models") or ["*"]
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise ConfigError(f"{where}.models: expected a list of model names or globs")
        keys[digest] = ApiKey(name=k["name"], tenant=str(k.get("tenant") or k["name"]), models=tuple(models))
    return keys


def client_key(headers: Any) -> str | None:
    auth = headers.get("Authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return headers.get("x-api-key") or None


class AuthStage(Stage):
    name = "auth"

    def __init__(self, ctx: Any, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.keys = load_keys(ctx.config.auth)
        configured = ctx.config.auth.get("keys") or []
        self.active = bool(configured)

    def handle(self, ex: Exchange, call_next: CallNext) -> Awaitable[Reply]:
        key = client_key(ex.headers)
        if key is None:
            raise AuthenticationFailed(
                "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.", code="missing_api_key"
            )
        digest = sha256_hex(key)
        entry = self.keys.get(digest)
        if entry is None:
            raise AuthenticationFailed("Incorrect API key provided.")
        if not entry.allows(ex.client_model):
            raise PermissionDenied(
                f"This key may not use model '{ex.client_model}'.", param="model", code="model_not_allowed"
            )
        ex.tenant = entry.tenant
        ex.key_name = entry.name
        return call_next(ex)  # before-only: hand back the rest's awaitable, adding no frame to the chain
