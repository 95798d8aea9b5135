"""The PostgreSQL run-store schema: versioned migrations, the row codec and every statement.

Owns the tables and their indexes (each index says which query it serves), the mapping
between records and rows (dict/list fields as JSONB; times DOUBLE PRECISION, ints BIGINT, bools BOOLEAN, ids TEXT in the "C"
collation so that ordering is by code point, as in the other stores) and the SQL text
PostgresStore runs. tests/integration/store/test_postgres_plans.py EXPLAINs the reads defined here
against a million component rows. Must not import asyncpg or open a connection.
"""

from __future__ import annotations

import json
import math
import operator
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields as dc_fields
from typing import Any

from rayflow.store.port import ComponentRecord, EventRecord, RunRecord

# Ordered migration steps: (version, statements). Append new steps; never edit old ones.
#
# Indexes, and the one left out on purpose:
# - runs (status, created_at, run_id) and runs (created_at, run_id): list_runs with and
#   without a status filter, newest first (ORDER BY created_at DESC, run_id DESC LIMIT n).
#   Ending in the whole sort key, each answers with a backward index scan and no sort.
# - components PRIMARY KEY (run_id, component_id): a run's components in component order,
#   and every upsert's conflict target.
# - events PRIMARY KEY (run_id, seq): events after a cursor, in seq order.
# - no (component_id, ended_at) index. No query reads one component's history (the port
#   has no such method), and it would cost every run: ended_at changes when a component
#   finishes, so that update could no longer be HOT (heap-only: it touches no index) and
#   would add an entry to every index of the table. benchmarks/pgstore.py, 2,000
#   components each created PENDING, then RUNNING, then SUCCEEDED: with the index, half
#   the updates are HOT instead of all, and the writes took 1.0-1.2x as long (2 cores,
#   noisy). SQLite's migration 3 dropped the same index for the same cost. Whoever adds a
#   history read adds the index in that read's migration.
# - components WITH (fillfactor = 50): each row is updated a few times while its
#   component runs, and only free room on its own page lets an update be HOT. The same
#   lifecycle, the fillfactor changed by hand: 100 made 0.2% of the updates HOT, 80 made 35%, 70 57%, 50 all
#   of them, and left the table smallest (pruned in place, old versions leave no holes
#   on other pages: 588 pages against 868 at 100).
MIGRATIONS: list[tuple[int, tuple[str, ...]]] = [
    (
        1,
        (
            """CREATE TABLE runs (
                run_id TEXT COLLATE "C" PRIMARY KEY,
                name TEXT NOT NULL,
                status TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                started_at DOUBLE PRECISION,
                ended_at DOUBLE PRECISION,
                target TEXT NOT NULL DEFAULT '',
                inputs JSONB NOT NULL DEFAULT '{}',
                error TEXT,
                owner TEXT NOT NULL DEFAULT '',
                cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
                n_components BIGINT NOT NULL DEFAULT 0,
                summary JSONB NOT NULL DEFAULT '{}',
                heartbeat_at DOUBLE PRECISION
            )""",
            "CREATE INDEX runs_status_created ON runs (status, created_at, run_id)",
            "CREATE INDEX runs_created ON runs (created_at, run_id)",
            """CREATE TABLE components (
                run_id TEXT COLLATE "C" NOT NULL,
                component_id TEXT COLLATE "C" NOT NULL,
                state TEXT NOT NULL,
                attempts BIGINT NOT NULL DEFAULT 0,
                submitted_at DOUBLE PRECISION,
                started_at DOUBLE PRECISION,
                ended_at DOUBLE PRECISION,
                queued_s DOUBLE PRECISION,
                duration_s DOUBLE PRECISION,
                node_id TEXT,
                worker_id TEXT,
                resources JSONB NOT NULL DEFAULT '{}',
                error TEXT,
                cached BOOLEAN NOT NULL DEFAULT FALSE,
                upstream JSONB NOT NULL DEFAULT '[]',
                cpu_s DOUBLE PRECISION,
                peak_rss_bytes BIGINT,
                PRIMARY KEY (run_id, component_id)
            ) WITH (fillfactor = 50)""",
            """CREATE TABLE events (
                run_id TEXT COLLATE "C" NOT NULL,
                seq BIGINT NOT NULL,
                ts DOUBLE PRECISION NOT NULL,
                kind TEXT NOT NULL,
                component_id TEXT COLLATE "C",
                data JSONB NOT NULL DEFAULT '{}',
                PRIMARY KEY (run_id, seq)
            )""",
        ),
    ),
    (
        2,
        (  # the result cache's store tier
            """CREATE TABLE cache_entries (
                key TEXT COLLATE "C" PRIMARY KEY,
                data BYTEA NOT NULL,
                expires_at DOUBLE PRECISION,
                stored_at DOUBLE PRECISION NOT NULL
            )""",
        ),
    ),
    (
        3,
        (  # what the resource model learns from, per component attempt
            "ALTER TABLE components ADD COLUMN features JSONB NOT NULL DEFAULT '{}'",
        ),
    ),
    (
        4,
        (  # what a call reported beyond its timings (a dynamic map's per-item outcomes)
            "ALTER TABLE components ADD COLUMN outcome JSONB NOT NULL DEFAULT '{}'",
        ),
    ),
]

SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    "version BIGINT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
)
CURRENT_VERSION = "SELECT COALESCE(MAX(version), 0) FROM schema_version"
RECORD_VERSION = "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)"
# one opener at a time migrates a schema: the lock ends with the migration's transaction
MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext($1))"

_SCALAR_TYPES = {str: "text", float: "float8", int: "int8", bool: "bool"}


def pg_type(hint: Any) -> str:
    """The PostgreSQL type of a record field annotated ``hint`` (``X | None`` as X)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    base = typing.get_origin(hint) or hint
    return "jsonb" if base in (dict, list) else _SCALAR_TYPES[base]


# What PostgreSQL refuses to store, and what the store writes instead, so that one odd
# value never fails a whole batch (which the writer would retry forever): JSONB has no
# NaN or Infinity (stored as null), and neither TEXT nor JSONB holds a NUL character
# (stored as U+FFFD).
_NUL, _REPLACEMENT = "\x00", "\ufffd"


def json_text(value: Any) -> str:
    """JSON for a JSONB column (see above for NaN, Infinity and NUL)."""
    if not value and type(value) in _EMPTY_JSON:
        return _EMPTY_JSON[type(value)]
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(_storable(value), allow_nan=False)
    return json.dumps(_storable(value)) if "\\u0000" in text else text


def text_value(value: Any) -> Any:
    """A TEXT column's value, NUL characters replaced (see above)."""
    return value.replace(_NUL, _REPLACEMENT) if isinstance(value, str) and _NUL in value else value


def _storable(value: Any) -> Any:
    """``value`` with non-finite floats as None and NUL characters replaced, at any depth."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return text_value(value)
    if isinstance(value, dict):
        return {text_value(k): _storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    return value


_EMPTY_JSON = {list: "[]", dict: "{}"}
_ENCODERS: dict[str, Callable[[Any], Any]] = {"jsonb": json_text, "bool": bool, "text": text_value}


class Table:
    """One record dataclass as the rows of its table: column names and types, the
    encoding of a record into a row (JSON text, exact bools) and back."""

    def __init__(self, cls: type, name: str, key: tuple[str, ...]) -> None:
        hints = typing.get_type_hints(cls)
        self.cls, self.name, self.key = cls, name, key
        self.columns = tuple(f.name for f in dc_fields(cls))
        self.types = tuple(pg_type(hints[c]) for c in self.columns)
        self._kinds = dict(zip(self.columns, self.types, strict=True))
        self._fixes = [(i, _ENCODERS[t]) for i, t in enumerate(self.types) if t in _ENCODERS]
        self._json_at = [i for i, t in enumerate(self.types) if t == "jsonb"]
        self._values = operator.attrgetter(*self.columns)
        self._key_of = operator.attrgetter(*key)
        self.select = f"SELECT {', '.join(self.columns)} FROM {name}"

    def encode_value(self, column: str, value: Any) -> Any:
        encoder = _ENCODERS.get(self._kinds[column])
        return encoder(value) if encoder else value

    def encode(self, rec: Any) -> list[Any]:
        row = list(self._values(rec))
        for i, encoder in self._fixes:
            row[i] = encoder(row[i])
        return row

    def _encode_all(self, records: list[Any]) -> list[list[Any]]:
        """``encode`` of each record; a JSON value shared by several records of this one call
        (a component's resources, the same for every call of it) is encoded once."""
        seen: dict[int, str] = {}
        rows = []
        for rec in records:
            row = list(self._values(rec))
            for i, encoder in self._fixes:
                value = row[i]
                if encoder is json_text and value:
                    text = seen.get(id(value))
                    if text is None:
                        text = seen[id(value)] = json_text(value)
                    row[i] = text
                else:
                    row[i] = encoder(value)
            rows.append(row)
        return rows

    def decode(self, row: Sequence[Any]) -> Any:
        values = list(row)
        for i in self._json_at:
            if values[i] is not None:
                values[i] = json.loads(values[i])
        return self.cls(*values)

    def as_arrays(self, records: Iterable[Any], *, keep: str) -> list[list[Any]]:
        """The records as one array per column (the parameters of ``upsert_sql`` or
        ``insert_new_sql``): one record per key, the ``"first"`` or ``"last"`` given, in
        key order, so that concurrent writers lock rows in the same order."""
        unique: dict[Any, Any] = {}
        for rec in records:
            k = self._key_of(rec)
            if keep == "last" or k not in unique:
                unique[k] = rec
        rows = self._encode_all([unique[k] for k in sorted(unique)])
        return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in self.columns]

    def _insert_unnest(self) -> str:
        arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(self.types, start=1))
        return f"INSERT INTO {self.name} ({', '.join(self.columns)}) SELECT * FROM unnest({arrays})"

    def upsert_sql(self) -> str:
        """Insert every row of the column arrays; a row whose key exists replaces it."""
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in self.columns if c not in self.key)
        return f"{self._insert_unnest()} ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {updates}"

    def insert_new_sql(self) -> str:
        """Insert the rows of the column arrays whose key is not there yet."""
        return f"{self._insert_unnest()} ON CONFLICT ({', '.join(self.key)}) DO NOTHING"


RUNS = Table(RunRecord, "runs", ("run_id",))
COMPONENTS = Table(ComponentRecord, "components", ("run_id", "component_id"))
EVENTS = Table(EventRecord, "events", ("run_id", "seq"))

UPSERT_RUN = RUNS.upsert_sql()
UPSERT_COMPONENTS = COMPONENTS.upsert_sql()
INSERT_EVENTS = EVENTS.insert_new_sql()

GET_RUN = f"{RUNS.select} WHERE run_id = $1"
LIST_RUNS = f"{RUNS.select} ORDER BY created_at DESC, run_id DESC LIMIT $1"
LIST_RUNS_BY_STATUS = f"{RUNS.select} WHERE status = $1 ORDER BY created_at DESC, run_id DESC LIMIT $2"
GET_COMPONENTS = f"{COMPONENTS.select} WHERE run_id = $1 ORDER BY component_id"
GET_EVENTS = f"{EVENTS.select} WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
REQUEST_CANCEL = "UPDATE runs SET cancel_requested = TRUE WHERE run_id = $1"
CANCEL_REQUESTED = "SELECT cancel_requested FROM runs WHERE run_id = $1"
# one statement: under concurrent claims PostgreSQL re-checks the WHERE on the row the
# winner wrote, so a second claimer finds a live lease and changes nothing
CLAIM_RUN = (
    "UPDATE runs SET owner = $2, heartbeat_at = $3, status = 'RUNNING' WHERE run_id = $1 "
    "AND status <> 'SUCCEEDED' AND (heartbeat_at IS NULL OR heartbeat_at < $4)"
)


def update_run_sql(names: Sequence[str]) -> str:
    """``UPDATE runs`` setting ``names`` from $1.. in order; the run id is the last parameter."""
    assignments = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=1))
    return f"UPDATE runs SET {assignments} WHERE run_id = ${len(names) + 1}"


CACHE_GET = "SELECT data, expires_at FROM cache_entries WHERE key = $1"
CACHE_DELETE_EXPIRED = "DELETE FROM cache_entries WHERE key = $1 AND expires_at <= $2"
CACHE_PUT = ("INSERT INTO cache_entries (key, data, expires_at, stored_at) VALUES ($1, $2, $3, $4) "
             "ON CONFLICT (key) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at, "
             "stored_at = excluded.stored_at")
CACHE_DELETE = "DELETE FROM cache_entries WHERE key = $1"
CACHE_CLEAR = "DELETE FROM cache_entries"
CACHE_CLEAR_PREFIX = "DELETE FROM cache_entries WHERE left(key, length($1)) = $1"   # not LIKE: % and _
CACHE_USAGE = "SELECT COUNT(*), COALESCE(SUM(octet_length(data)), 0) FROM cache_entries"
