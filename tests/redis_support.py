"""Real Redis for tests (127.0.0.1:6379, DB 0): a per-test random key prefix, its keys deleted after.

`redis_url()` gives `redis://127.0.0.1:6379/0?prefix=test:<uuid>:`; `require_redis()` skips with a clear
reason when no Redis answers on a developer's machine, and fails instead under CI (env CI=true), where a
skip would hide a missing service. Nothing here runs FLUSHDB/FLUSHALL.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis

REDIS_HOST = os.environ.get("AI_ROUTER_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("AI_ROUTER_TEST_REDIS_PORT", "6379"))


def require_redis() -> None:
    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=1).ping()
    except redis.RedisError as e:
        msg = f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT} ({e})"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg + " — under CI=true a missing Redis is a failure, not a skip")
        pytest.skip(msg + " — start redis-server to run these tests")


def new_prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


def redis_url(prefix: str) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0?prefix={prefix}"


def delete_prefix(prefix: str) -> None:
    r = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    keys = list(r.scan_iter(match=prefix + "*", count=1000))
    if keys:
        r.delete(*keys)
