"""The admin gate: who may call `/admin/*` (and the dashboard when keys are configured).

The admin key lives in the environment variable named by `auth.admin_key_env` (default
`AI_ROUTER_ADMIN_KEY`) and is sent as `Authorization: Bearer KEY`. Without that variable set, the admin
API is disabled: every call gets 403. A wrong or missing key gets 401. Keys are compared by SHA-256 digest
in constant time; the key itself is never kept or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from router.errors import AuthenticationFailed, PermissionDenied

DEFAULT_ADMIN_KEY_ENV = "AI_ROUTER_ADMIN_KEY"


def bearer(headers: Any) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, else None."""
    auth = headers.get("Authorization")
    if not auth:
        return None
    scheme, _, token = auth.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class AdminGate:
    """Checks the admin key of a request; built once per config."""

    __slots__ = ("_digest", "env")

    def __init__(self, auth: dict[str, Any]) -> None:
        self.env = str(auth.get("admin_key_env") or DEFAULT_ADMIN_KEY_ENV)
        key = os.environ.get(self.env)
        self._digest = hashlib.sha256(key.encode()).digest() if key else None

    @property
    def enabled(self) -> bool:
        return self._digest is not None

    def is_admin(self, headers: Any) -> bool:
        """True when the request carries the admin key (False when the admin API is disabled)."""
        token = bearer(headers)
        if self._digest is None or token is None:
            return False
        return hmac.compare_digest(hashlib.sha256(token.encode()).digest(), self._digest)

    def check(self, headers: Any) -> None:
        """Raise 403 when the admin API is disabled, 401 when the key is missing or wrong."""
        if self._digest is None:
            raise PermissionDenied(
                f"The admin API is disabled: set the environment variable {self.env} (auth.admin_key_env).",
                code="admin_disabled",
            )
        if bearer(headers) is None:
            raise AuthenticationFailed("Send the admin key as 'Authorization: Bearer KEY'.", code="missing_api_key")
        if not self.is_admin(headers):
            raise AuthenticationFailed("Incorrect admin key provided.")
