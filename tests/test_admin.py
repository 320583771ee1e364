"""The admin gate: disabled without a key (403), 401 on a missing or wrong key, open with the right one."""

from __future__ import annotations

import pytest

from router.admin import AdminGate
from router.errors import AuthenticationFailed, PermissionDenied


def test_disabled_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AI_ROUTER_ADMIN_KEY", raising=False)
    gate = AdminGate({})
    assert not gate.enabled
    with pytest.raises(PermissionDenied):
        gate.check({"Authorization": "Bearer anything"})


def test_key_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_ADMIN", "s3cret-admin")
    gate = AdminGate({"admin_key_env": "MY_ADMIN"})
    gate.check({"Authorization": "Bearer s3cret-admin"})
    assert gate.is_admin({"Authorization": "bearer s3cret-admin"})
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-admin"}):
        with pytest.raises(AuthenticationFailed):
            gate.check(headers)
