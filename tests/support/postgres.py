"""PostgreSQL for the store tests: the shared server, and a schema of its own per test.

``postgres_url`` gives each test a fresh schema in the shared database (dropped at the
end), so tests never see each other's rows nor anything else kept there. Without a
reachable server the tests that need it skip with a one-line reason, unless
``RAYFLOW_REQUIRE_SERVICES=1`` (CI), where they fail. ``RAYFLOW_TEST_POSTGRES`` names
another server.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import services_required, unavailable  # noqa: F401 - used by suites importing them from here

POSTGRES_URL = os.environ.get("RAYFLOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")








def pg_run(url: str, query: str, *args: Any, fetch: bool = False) -> Any:
    """Run one statement on a connection of its own (a test's admin side)."""
    import asyncpg

    async def go() -> Any:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            return await (conn.fetch(query, *args) if fetch else conn.execute(query, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def with_params(url: str, **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{url}{'&' if '?' in url else '?'}{query}" if query else url


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The shared server's URL, once it answered; skips (or fails) when it does not."""
    try:
        pg_run(POSTGRES_URL, "SELECT 1")
    except ImportError:
        unavailable("PostgreSQL tests need asyncpg: pip install -e '.'")
    except Exception as exc:
        unavailable(f"PostgreSQL not reachable at {POSTGRES_URL}: {type(exc).__name__}: {exc}")
    return POSTGRES_URL


@pytest.fixture
def postgres_schema(postgres_server: str) -> Iterator[str]:
    """A schema name for this test alone; the schema is dropped at the end."""
    schema = f"rayflow_test_{uuid.uuid4().hex[:12]}"
    yield schema
    pg_run(postgres_server, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def postgres_url(postgres_server: str, postgres_schema: str) -> str:
    """A run-store URL on the shared server, in a fresh schema of this test's own."""
    return with_params(postgres_server, schema=postgres_schema)
