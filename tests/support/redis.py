"""Fixtures for the cache tests: one tier of each kind, on fresh and private storage.

``redis_url`` is the shared Redis (db 15, ``RAYFLOW_TEST_REDIS`` names another); each
test gets a namespace of its own (``rayflow:test:<uuid>:``) that is cleared at the
end. Without a reachable Redis the tests that need it skip with a one-line reason,
unless ``RAYFLOW_REQUIRE_SERVICES=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from rayflow.cache.port import CacheTier
from tests.helpers import unavailable
from tests.support.tiers import make_tier

REDIS_URL = os.environ.get("RAYFLOW_TEST_REDIS", "redis://127.0.0.1:6379/15")
TIER_KINDS = ("memory", "redis", "files", "objectstore", "sqlite", "postgresql")   # objectstore: files on fsspec memory





@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared Redis's URL, once it answered PING; skips (or fails) when it does not."""
    try:
        import redis
    except ImportError:
        unavailable("Redis cache tests need the redis package: pip install 'redis>=5'")
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
    except Exception as exc:
        unavailable(f"Redis not reachable at {REDIS_URL}: {type(exc).__name__}: {exc}")
    return REDIS_URL


@pytest.fixture
def redis_namespace() -> str:
    return f"rayflow:test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture(params=TIER_KINDS)
def tier(request: pytest.FixtureRequest, tmp_path) -> Iterator[CacheTier]:
    """One tier of each kind, empty; cleared and closed at the end."""
    t = make_tier(request.param, request, tmp_path)
    try:
        yield t
    finally:
        try:
            t.clear()
        finally:
            t.close()
