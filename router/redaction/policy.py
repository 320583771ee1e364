"""Redaction policies: what a tenant wants done with secrets and PII, read from `tenants[].redact`.

    redact: {policy: redact, apply_to: cloud, restore: true, detectors: [EMAIL, CARD, ...], allow: [...]}

- `policy`: `off` | `redact` (typed placeholders before the text leaves) | `block` (400 naming the kinds
  found, never the values) | `local_only` (a request with findings may only go to local backends: 503 when
  none can serve it, never a cloud fallback).
- `apply_to`: `cloud` (default: only cloud backends get placeholders or refusals; local ones, where the data
  does not leave, get the raw text) or `all`.
- `restore` (default true): put the originals back in the answer, JSON and SSE.
- `detectors` (default: all): the kinds to look for (`SECRETS` and `PII` name the two groups).
- `allow` (default: none): exact values that are never findings (the company's public support address).
The same keys set the default for requests whose tenant has none, as options of the stage
(`{use: redact, options: {policy: redact}}`). Errors name the key path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from router.config import ConfigError, check_choice, check_keys
from router.redaction.detectors import KINDS, PII, SECRET

POLICIES = ("off", "redact", "block", "local_only")
APPLY_TO = ("cloud", "all")
FIELDS = ("policy", "apply_to", "restore", "detectors", "allow")  # the shape router/tenants.py checks too
GROUPS = {"SECRETS": SECRET, "PII": PII}


@dataclass(frozen=True, slots=True)
class RedactPolicy:
    policy: str = "off"
    apply_to: str = "cloud"
    restore: bool = True
    kinds: frozenset[str] | None = None  # `detectors`; None: every kind
    allow: frozenset[str] = frozenset()  # values that are never findings

    @property
    def active(self) -> bool:
        return self.policy != "off"

    def applies_to(self, location: str) -> bool:
        """Does this policy act on a request bound for a backend at `location` (local | cloud)?"""
        return self.apply_to == "all" or location == "cloud"


OFF = RedactPolicy()


def parse_policy(raw: Any, where: str) -> RedactPolicy:
    if raw is None:
        return OFF
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping such as {{policy: redact, apply_to: cloud, restore: true}}")
    check_keys(raw, FIELDS, where)
    policy = check_choice(raw, "policy", POLICIES, "redact", where)
    apply_to = check_choice(raw, "apply_to", APPLY_TO, "cloud", where)
    restore = raw.get("restore", True)
    if not isinstance(restore, bool):
        raise ConfigError(f"{where}.restore: expected true or false")
    kinds = None
    if raw.get("detectors") is not None:
        items = raw["detectors"]
        if not isinstance(items, list) or not items:
            raise ConfigError(f"{where}.detectors: expected a non-empty list of kinds")
        chosen: set[str] = set()
        for i, k in enumerate(items):
            name = str(k).upper()
            if name in GROUPS:
                chosen |= {kind for kind, cat in KINDS.items() if cat == GROUPS[name]}
            elif name in KINDS:
                chosen.add(name)
            else:
                raise ConfigError(f"{where}.detectors[{i}]: unknown kind {k!r} (known: SECRETS, PII, "
                                  f"{', '.join(sorted(KINDS))})")
        kinds = frozenset(chosen)
    allow = raw.get("allow") or []
    if not isinstance(allow, list) or not all(isinstance(a, str) and a for a in allow):
        raise ConfigError(f"{where}.allow: expected a list of values (strings) that are never redacted")
    return RedactPolicy(policy=policy, apply_to=apply_to, restore=restore, kinds=kinds, allow=frozenset(allow))


class TenantPolicies:
    """`tenants[].redact` by tenant glob (first match wins), with the stage's default for the rest."""

    __slots__ = ("_memo", "default", "rules")

    def __init__(self, tenants: list[Mapping[str, Any]], default: RedactPolicy = OFF) -> None:
        self.default = default
        self._memo: dict[str, RedactPolicy] = {}  # tenant name -> its policy (the glob match, once per tenant)
        self.rules: list[tuple[str, RedactPolicy]] = []
        for i, t in enumerate(tenants):
            if "redact" in t:
                self.rules.append((str(t["match"]), parse_policy(t["redact"], f"tenants[{i}].redact")))
            else:
                self.rules.append((str(t["match"]), default))

    @property
    def any_active(self) -> bool:
        return self.default.active or any(p.active for _, p in self.rules)

    def for_tenant(self, tenant: str | None) -> RedactPolicy:
        if tenant is None:
            return self.default
        p = self._memo.get(tenant)
        if p is None:
            p = self.default
            for pattern, policy in self.rules:
                if fnmatchcase(tenant, pattern):
                    p = policy
                    break
            if len(self._memo) >= 10_000:  # tenants come from keys: bounded, but never unbounded here
                self._memo.clear()
            self._memo[tenant] = p
        return p
