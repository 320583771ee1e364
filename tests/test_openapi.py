"""docs/openapi.yaml against a live router (issue 10): schemathesis generates requests from the document
and checks every answer: never a 5xx, statuses, content types and bodies as documented.

Bounded: a few examples per operation, derandomized so CI runs the same ones every time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Stack

SPEC = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
schema = schemathesis.openapi.from_path(SPEC)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def router(stack: Stack) -> str:
    stack.reset()
    return stack.url


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_router_matches_its_openapi_document(case: schemathesis.Case, router: str) -> None:
    case.call_and_validate(base_url=router, checks=CHECKS, timeout=30)
