"""The labelled routing cases (tests/data/routing_cases.yaml) under the shipped config: accuracy floors."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.routing_report import DEFAULT_CONFIG, Outcome, evaluate, load_cases, rate
from router.config import load


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    return evaluate(load_cases(), load(DEFAULT_CONFIG))


def test_the_case_set_is_large_and_varied(outcomes: list[Outcome]) -> None:
    assert len(outcomes) >= 150
    tasks = Counter(o.expect["task"] for o in outcomes)
    assert min(n for t, n in tasks.items() if t != "reasoning") >= 25
    assert tasks["reasoning"] >= 10  # the class added with issue 7 (more in tests/data/difficulty_cases.yaml)
    assert len({o.id for o in outcomes}) == len(outcomes)


def test_task_accuracy_at_least_90_percent(outcomes: list[Outcome]) -> None:
    misses = [(o.id, o.task) for o in outcomes if o.task != o.expect["task"]]
    assert rate(outcomes, "task") >= 0.90, misses


def test_tier_agreement_at_least_85_percent(outcomes: list[Outcome]) -> None:
    misses = [(o.id, o.tier) for o in outcomes if o.tier != o.expect["tier"]]
    assert rate(outcomes, "tier") >= 0.85, misses


def test_long_documents_are_estimated_or_exact_as_needed(outcomes: list[Outcome]) -> None:
    book = next(o for o in outcomes if o.id == "docs-book-chapter")
    assert book.tokens > 10_000
    assert book.tier == "cloud-high"
