"""router.routing.difficulty: the score, its cut points, and where it is reported (headers, preview, access log)."""

from __future__ import annotations

import os

import orjson

from router.exchange import Exchange, Features
from router.observe.accesslog import AccessLog
from router.routing.classifier import Classifier
from router.routing.tokens import count, extract

CLF = Classifier()


def classify(text: str) -> Features:
    p = extract("chat", {"messages": [{"role": "user", "content": text}]})
    return CLF.classify(p, count(p).tokens)


def test_difficulty_is_a_probability_and_orders_easy_below_hard() -> None:
    easy = classify("hi there!")
    hard = classify("Prove that the square root of 2 is irrational, rigorously, step by step.")
    assert 0.0 <= easy.difficulty < hard.difficulty <= 1.0
    assert easy.complexity == "low"
    assert hard.complexity == "high"


def test_access_log_records_the_difficulty() -> None:
    r, w = os.pipe()
    try:
        log = AccessLog(True, fd=w)
        ex = Exchange("rid", "chat", {"model": "auto"}, None, {})
        ex.features = classify("Prove that there are infinitely many primes.")
        log.write(ex)
        log.flush()
        rec = orjson.loads(os.read(r, 65536))
    finally:
        os.close(r)
        os.close(w)
    assert rec["difficulty"] == ex.features.difficulty
    assert rec["complexity"] == ex.features.complexity
