"""PostgreSQL run store: the learned models it keeps (the resource model), as a part of
PostgresStore.

Owns the ``models`` table (created, if missing, by ``PostgresStore``'s migration under
its lock) and the ``save_model``/``load_model`` methods of the RunStore port for
PostgresStore, which mixes this class in and supplies ``_read`` and ``_write`` (its
retried calls on a pooled connection). A team's stores share one model this way: it
learns from the history they share. The bytes are kept as given; verifying their
signature before anything is unpickled is the caller's (``rayflow.predict.history``).
Must not import asyncpg, nor unpickle anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rayflow.store import pgleases as ops
from rayflow.store.pgschema import DB_NOW

# idempotent: run in every migration, after the versioned steps (pgschema.MIGRATIONS)
CREATE_MODELS = ("CREATE TABLE IF NOT EXISTS models ("
                 "name text PRIMARY KEY, blob bytea NOT NULL, saved_at float8 NOT NULL)")
# saved_at only grows (the database's clock): a reader that kept (blob, saved_at) sees every new save
SAVE_MODEL = (f"INSERT INTO models (name, blob, saved_at) VALUES ($1, $2, {DB_NOW}) ON CONFLICT (name) "
              "DO UPDATE SET blob = EXCLUDED.blob, saved_at = GREATEST(EXCLUDED.saved_at, models.saved_at + 1e-6)")
LOAD_MODEL = "SELECT blob, saved_at FROM models WHERE name = $1"


async def migrate(conn: Any) -> None:
    """Create the models table if this schema has none (inside the migration's transaction)."""
    await conn.execute(CREATE_MODELS)


class ModelRows:
    """The learned models of a PostgresStore (see the RunStore port for each method)."""

    _read: Callable[..., Any]
    _write: Callable[..., Any]

    def save_model(self, name: str, blob: bytes) -> None:
        self._write(ops.execute, SAVE_MODEL, name, bytes(blob))

    def load_model(self, name: str) -> tuple[bytes, float] | None:
        rows = self._read(ops.fetch, LOAD_MODEL, name)
        return (bytes(rows[0][0]), float(rows[0][1])) if rows else None
