"""The three databases of the connector tests: the shared PostgreSQL and MariaDB, and SQLite.

``Database`` knows a URL, the dialect's placeholder, and how to run a statement on a
connection of the test's own (psql-like admin side, never the code under test). Tables
a test makes are named with a random suffix and dropped at the end. Without a reachable
server the test skips with a one-line reason, unless ``RAYFLOW_REQUIRE_SERVICES=1``.
``RAYFLOW_TEST_MARIADB`` names another MariaDB.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any

from tests.helpers import unavailable
from tests.support.postgres import POSTGRES_URL, pg_run

MARIADB_URL = os.environ.get("RAYFLOW_TEST_MARIADB", "mysql://root@127.0.0.1:3306/test")


def _mysql(url: str, query: str, fetch: bool = False) -> Any:
    from urllib.parse import urlsplit

    import pymysql

    parts = urlsplit(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
                               password=parts.password or "", database=parts.path.lstrip("/"), autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(query)
                return cur.fetchall() if fetch else None
        finally:
            conn.close()


@dataclass
class Database:
    dialect: str
    url: str
    tables: list[str] = field(default_factory=list)

    @property
    def ph(self) -> str:
        return {"postgresql": "$1", "sqlite": "?", "mysql": "%s"}[self.dialect]

    def name(self, base: str) -> str:
        name = f"{base}_{uuid.uuid4().hex[:8]}"
        self.tables.append(name)
        return name

    def run(self, query: str, fetch: bool = False) -> Any:
        if self.dialect == "postgresql":
            rows = pg_run(self.url, query, fetch=fetch)
            return [tuple(r) for r in rows] if fetch else None
        if self.dialect == "mysql":
            rows = _mysql(self.url, query, fetch)
            return [tuple(r) for r in rows] if fetch else None
        conn = sqlite3.connect(self.url.removeprefix("sqlite:///"))
        try:
            cur = conn.execute(query)
            out = cur.fetchall() if fetch else None
            conn.commit()
            return out
        finally:
            conn.close()

    def fill(self, table: str, n: int) -> None:
        """``table`` (id, customer, amount, note) with ``n`` generated rows."""
        self.run(f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, customer INTEGER, amount DOUBLE PRECISION, "
                 f"note VARCHAR(40))" if self.dialect != "mysql" else
                 f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, customer INTEGER, amount DOUBLE, note VARCHAR(40))")
        if self.dialect == "postgresql":
            self.run(f"INSERT INTO {table} SELECT g, g % 1000, g * 0.5, 'n' || g FROM generate_series(1, {n}) g")
        elif self.dialect == "mysql":
            self.run(f"INSERT INTO {table} SELECT seq, seq % 1000, seq * 0.5, CONCAT('n', seq) FROM seq_1_to_{n}")
        else:
            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"))
            conn.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?)",
                             ((i, i % 1000, i * 0.5, f"n{i}") for i in range(1, n + 1)))
            conn.commit()
            conn.close()

    def drop_all(self) -> None:
        for t in self.tables:
            try:
                self.run(f"DROP TABLE IF EXISTS {t}")
            except Exception:  # noqa: BLE001 - cleanup of a test's own tables
                pass


def database(dialect: str, tmp_path) -> Database:
    if dialect == "sqlite":
        return Database("sqlite", f"sqlite:///{tmp_path / 'conn.db'}")
    if dialect == "postgresql":
        try:
            pg_run(POSTGRES_URL, "SELECT 1")
        except Exception as exc:  # noqa: BLE001
            unavailable(f"PostgreSQL not reachable at {POSTGRES_URL}: {type(exc).__name__}: {exc}")
        return Database("postgresql", POSTGRES_URL)
    try:
        _mysql(MARIADB_URL, "SELECT 1")
    except Exception as exc:  # noqa: BLE001
        unavailable(f"MariaDB not reachable at {MARIADB_URL}: {type(exc).__name__}: {exc}")
    return Database("mysql", MARIADB_URL)
