"""The reference docs against the code: every config key the validator accepts is in docs/configuration.md,
every key a table there names is accepted, and every metric family is in docs/observability.md."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

import router.config as rc
from router.observe.metrics import Metrics
from router.server import RouterService

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DOC = (ROOT / "docs" / "configuration.md").read_text()
OBSERVABILITY_DOC = (ROOT / "docs" / "observability.md").read_text()

# A config that reaches every section the validator checks (stage-owned ones included).
EVERY_SECTION = """
server: {host: 127.0.0.1, port: 8082}
state: {url: "memory://"}
backends:
  - name: a
    location: local
    base_url: http://127.0.0.1:1/v1
    timeouts: {connect_s: 1}
    breaker: {failures: 3}
    health: {probe: "off"}
    models:
      - {id: m1, tier: t1, price: {input: 1, output: 2}}
      - {id: m2, tier: t2, price: {input: 1, output: 2}}
routing:
  tiers: [t1, t2]
  rules: [{tier: t1}]
  promotion: {on: [error]}
  tasks: {legal: {keywords: [contract]}}
  adaptive: {enabled: false}
auth:
  open: true
  keys: [{name: k, key_env: AI_ROUTER_TEST_DOCS_KEY, tenant: a/b, limits: {rpm: 5}, budget: {daily_usd: 1}}]
tenants: [{match: "*", budget: {daily_usd: 1}, limits: {rpm: 5}, redact: {policy: redact}}]
cache: {ttl_s: 10}
logging: {level: info, access_log: false}
metrics: {enabled: true}
tracing: {enabled: false}
"""


def accepted_keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """Section path (indices as `[]`) → the keys the validator accepts there."""
    seen: dict[str, set[str]] = {}
    original = rc.check_keys

    def recording(mapping: Any, allowed: tuple[str, ...], where: str) -> None:
        seen.setdefault(re.sub(r"\[\d+\]", "[]", where), set()).update(allowed)
        original(mapping, allowed, where)

    for module in list(sys.modules.values()):  # every module that imported it by name
        if getattr(module, "check_keys", None) is original:
            monkeypatch.setattr(module, "check_keys", recording)
    monkeypatch.setenv("AI_ROUTER_TEST_DOCS_KEY", "sk-test-docs")
    RouterService(rc.parse(rc.load_yaml(EVERY_SECTION)))
    return seen


def code_words(doc: str) -> set[str]:
    """Identifiers inside `code spans` of a Markdown page (fenced blocks left out)."""
    spans = [s for line in doc.splitlines() if not line.startswith("```") for s in re.findall(r"`([^`]+)`", line)]
    return {w for s in spans for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", s)}


def test_every_accepted_config_key_is_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = accepted_keys(monkeypatch)
    for section in ("", "server", "backends[]", "backends[].models[]", "routing", "routing.adaptive", "auth",
                    "auth.keys[]", "tenants[]", "tenants[].budget", "tenants[].redact", "cache", "tracing"):
        assert section in seen, f"the test config no longer reaches {section or 'the top level'}"
    documented = code_words(CONFIG_DOC)
    missing = sorted(f"{w}.{k}" if w else k for w, keys in seen.items() for k in keys if k not in documented)
    assert not missing, f"accepted but not in docs/configuration.md: {missing}"


def test_every_documented_config_key_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    accepted = {k for keys in accepted_keys(monkeypatch).values() for k in keys}
    rows = re.findall(r"^\| `([^`]+)`", CONFIG_DOC, re.M)  # the first column of the key tables
    assert len(rows) > 80
    unknown = sorted({r for r in rows for part in re.split(r"\s*/\s*|\.", r)
                      if (name := part.split("[")[0].strip()) and name not in accepted})
    assert not unknown, f"docs/configuration.md names keys the validator refuses: {unknown}"


def test_every_metric_family_is_documented() -> None:
    families = {m.name for m in Metrics().registry.collect() if not m.name.startswith("ai_router_process_")}
    assert len(families) > 15
    documented = set(re.findall(r"`(ai_router_[a-z_]+?)(?:_total)?`", OBSERVABILITY_DOC))
    assert families <= documented, f"not in docs/observability.md: {sorted(families - documented)}"
    assert documented - {"ai_router_process_"} <= families, f"documented, not exported: {sorted(documented - families)}"
