"""The PostgreSQL run-store schema: versioned migrations, the row codec and every statement.

Owns the tables and their indexes (each index says which query it serves), the mapping
between records and rows (dict/list fields as JSONB; times DOUBLE PRECISION, ints BIGINT, bools BOOLEAN, ids TEXT in the "C"
collation so that ordering is by code point, as in the other stores) and the SQL text
PostgresStore runs. tests/integration/store/test_postgres_plans.py EXPLAINs the reads defined here
against a million component rows. Must not import asyncpg or open a connection.
"""

from __future__ import annotations

import json
import operator
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields as dc_fields
from typing import Any

from rayflow.store.port import (
    ComponentRecord,
    EventRecord,
    RunRecord,
    ServerRecord,
    TokenRecord,
    WorkflowRecord,
)
from rayflow.store.text import NUL, json_needs_cleaning, storable, storable_text

# the runs claim_next may take, whatever their lease: the predicate of runs_claimable,
# and claim_next's WHERE word for word (so that the planner proves the index applies)
CLAIMABLE = ("status IN ('PENDING', 'RUNNING') "
             "AND (spec <> '{}'::jsonb OR (target <> '' AND left(target, 9) <> '__main__:'))")

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
# - runs (name, created_at, run_id): one workflow's runs, newest first (list_runs_page);
#   list_runs_page's cursor, a row-value comparison on (created_at, run_id), is a range
#   of runs_created (or of runs_status_created with a status).
# - runs_claimable, partial: claim_next, oldest first, reads only the runs it may take
#   (PENDING or RUNNING, and planned again from a spec or an importable target), never the
#   finished ones. Its predicate is claim_next's own, not the state alone: with the state
#   alone the planner ANDed it into list_runs by status RUNNING, which then sorted
#   instead of reading runs_status_created in order.
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
    (
        5,
        (  # fenced leases (any server drives any run) and the server's own records
            "ALTER TABLE runs ADD COLUMN lease_epoch BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE runs ADD COLUMN spec JSONB NOT NULL DEFAULT '{}'",
            "CREATE INDEX runs_name_created ON runs (name, created_at, run_id)",
            f"CREATE INDEX runs_claimable ON runs (created_at, run_id) WHERE {CLAIMABLE}",
            """CREATE TABLE tokens (
                token_id TEXT COLLATE "C" PRIMARY KEY,
                name TEXT NOT NULL,
                scope TEXT NOT NULL,
                token_hash TEXT COLLATE "C" NOT NULL UNIQUE,
                created_at DOUBLE PRECISION NOT NULL,
                revoked_at DOUBLE PRECISION
            )""",
            """CREATE TABLE idempotency (
                key TEXT COLLATE "C" PRIMARY KEY,
                body_hash TEXT NOT NULL,
                run_id TEXT COLLATE "C" NOT NULL,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE workflows (
                name TEXT COLLATE "C" PRIMARY KEY,
                spec JSONB NOT NULL DEFAULT '{}',
                target TEXT NOT NULL DEFAULT '',
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE servers (
                server_id TEXT COLLATE "C" PRIMARY KEY,
                url TEXT NOT NULL,
                host TEXT NOT NULL DEFAULT '',
                pid BIGINT NOT NULL DEFAULT 0,
                started_at DOUBLE PRECISION NOT NULL,
                heartbeat_at DOUBLE PRECISION,
                info JSONB NOT NULL DEFAULT '{}'
            )""",
        ),
    ),
    (
        6,
        (  # a failed component's traceback (the user's frames first)
            "ALTER TABLE components ADD COLUMN traceback TEXT",
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

# The database's clock, UNIX seconds: every lease time is on it, never a caller's clock
DB_NOW = "extract(epoch FROM clock_timestamp())::float8"
SELECT_DB_NOW = f"SELECT {DB_NOW}"

_SCALAR_TYPES = {str: "text", float: "float8", int: "int8", bool: "bool"}


def pg_type(hint: Any) -> str:
    """The PostgreSQL type of a record field annotated ``hint`` (``X | None`` as X)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    base = typing.get_origin(hint) or hint
    return "jsonb" if base in (dict, list) else _SCALAR_TYPES[base]


# What PostgreSQL refuses to store, and what the store writes instead, so that one odd
# value never fails a whole batch (``rayflow.store.text``): JSONB has no NaN or Infinity
# (stored as null), neither TEXT nor JSONB holds a NUL character (stored as U+FFFD), and
# UTF-8 has no lone surrogate (stored as its backslash escape).


def json_text(value: Any) -> str:
    """JSON for a JSONB column (see above for NaN, Infinity, NUL and surrogates)."""
    if not value and type(value) in _EMPTY_JSON:
        return _EMPTY_JSON[type(value)]
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(storable(value, nul=True, finite=True), allow_nan=False)
    return json.dumps(storable(value, nul=True, finite=True)) if json_needs_cleaning(text, nul=True) else text


def text_value(value: Any) -> Any:
    """A TEXT column's value, NUL characters and lone surrogates replaced (see above)."""
    if value.__class__ is not str or (value.isascii() and NUL not in value):
        return value
    return storable_text(value, nul=True)


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

    def _insert_unnest(self, skip_runs: bool = False) -> str:
        """``skip_runs``: leave out the rows of the run ids in one more parameter (a text[])."""
        cols = ", ".join(self.columns)
        arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(self.types, start=1))
        if not skip_runs:
            return f"INSERT INTO {self.name} ({cols}) SELECT * FROM unnest({arrays})"
        return (f"INSERT INTO {self.name} ({cols}) SELECT * FROM unnest({arrays}) AS u ({cols}) "
                f"WHERE u.run_id <> ALL(${len(self.columns) + 1}::text[])")

    def upsert_sql(self, skip_runs: bool = False) -> str:
        """Insert every row of the column arrays; a row whose key exists replaces it."""
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in self.columns if c not in self.key)
        return f"{self._insert_unnest(skip_runs)} ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {updates}"

    def insert_new_sql(self, skip_runs: bool = False) -> str:
        """Insert the rows of the column arrays whose key is not there yet."""
        return f"{self._insert_unnest(skip_runs)} ON CONFLICT ({', '.join(self.key)}) DO NOTHING"

    def insert_one_sql(self, tail: str = "", db_clock: tuple[str, ...] = ()) -> str:
        """Insert one row from $1.. (the columns in order, less those in ``db_clock``: those
        take the database's clock), then ``tail``."""
        params = iter(range(1, len(self.columns) + 1))
        values = ", ".join(DB_NOW if c in db_clock else f"${next(params)}::{t}"
                           for c, t in zip(self.columns, self.types, strict=True))
        return f"INSERT INTO {self.name} ({', '.join(self.columns)}) VALUES ({values}){tail}"

    def updates_sql(self) -> str:
        """``ON CONFLICT`` on the key: every other column takes the new row's value."""
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in self.columns if c not in self.key)
        return f" ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {updates}"


RUNS = Table(RunRecord, "runs", ("run_id",))
COMPONENTS = Table(ComponentRecord, "components", ("run_id", "component_id"))
EVENTS = Table(EventRecord, "events", ("run_id", "seq"))

UPSERT_COMPONENTS = COMPONENTS.upsert_sql()
INSERT_EVENTS = EVENTS.insert_new_sql()

GET_RUN = f"{RUNS.select} WHERE run_id = $1"
LIST_RUNS = f"{RUNS.select} ORDER BY created_at DESC, run_id DESC LIMIT $1"
LIST_RUNS_BY_STATUS = f"{RUNS.select} WHERE status = $1 ORDER BY created_at DESC, run_id DESC LIMIT $2"
GET_COMPONENTS = f"{COMPONENTS.select} WHERE run_id = $1 ORDER BY component_id"
GET_EVENTS = f"{EVENTS.select} WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
REQUEST_CANCEL = "UPDATE runs SET cancel_requested = TRUE WHERE run_id = $1"
CANCEL_REQUESTED = "SELECT cancel_requested FROM runs WHERE run_id = $1"
def update_run_sql(names: Sequence[str], db_clock: tuple[str, ...] = ()) -> str:
    """``UPDATE runs`` setting ``names`` from $1.. in order; the run id is the last parameter.
    A name in ``db_clock`` takes the database's clock and no parameter."""
    params = [n for n in names if n not in db_clock]
    assignments = ", ".join(f"{n} = {DB_NOW}" if n in db_clock else f"{n} = ${params.index(n) + 1}"
                            for n in names)
    return f"UPDATE runs SET {assignments} WHERE run_id = ${len(params) + 1}"


def runs_where(*, status: str | None = None, name: str | None = None, since: float | None = None,
               before: tuple[float, str] | None = None) -> tuple[str, list[Any]]:
    """The WHERE clause of a runs query with these filters (" WHERE ..." or ""), and its
    parameters ($1, $2, ... in order)."""
    terms: list[str] = []
    args: list[Any] = []
    for value, term in ((status, "status = ${}"), (name, "name = ${}"), (since, "created_at >= ${}::float8")):
        if value is not None:
            args.append(float(value) if term.startswith("created_at") else value)
            terms.append(term.format(len(args)))
    if before is not None:   # a row-value comparison: a range of the (created_at, run_id) index
        args += [float(before[0]), str(before[1])]
        terms.append(f"(created_at, run_id) < (${len(args) - 1}::float8, ${len(args)}::text)")
    return (f" WHERE {' AND '.join(terms)}" if terms else ""), args


# -- leases: every time on the database's clock -----------------------------------------

_TAKE = (f"SET owner = $1, heartbeat_at = {DB_NOW}, status = 'RUNNING', lease_epoch = runs.lease_epoch + 1")
# one statement: under concurrent claims PostgreSQL re-checks the WHERE on the row the
# winner wrote, so a second claimer finds a live lease and changes nothing
CLAIM_RUN = (f"UPDATE runs {_TAKE} WHERE run_id = $2 AND status <> 'SUCCEEDED' "
             f"AND ($3::boolean OR heartbeat_at IS NULL OR heartbeat_at < {DB_NOW} - $4::float8) "
             "RETURNING run_id, lease_epoch, created_at")
# the runs another server can plan again (a spec, or a target that is not __main__:...),
# oldest first; SKIP LOCKED passes over the rows another claimer is taking, and the
# re-check of a row a claimer just took finds its lease live: a run goes to one claimer
CLAIM_NEXT = f"""WITH free AS (
    SELECT run_id FROM runs
    WHERE {CLAIMABLE}
      AND (heartbeat_at IS NULL OR heartbeat_at < {DB_NOW} - $2::float8)
    ORDER BY created_at, run_id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE runs {_TAKE} FROM free WHERE runs.run_id = free.run_id
RETURNING runs.run_id, runs.lease_epoch, runs.created_at"""
RENEW_LEASE = (f"UPDATE runs SET heartbeat_at = {DB_NOW} WHERE run_id = $1 AND owner = $2 AND lease_epoch = $3 "
               "AND heartbeat_at IS NOT NULL")   # never revives a lease the run's end released
# rayflow gc --rows: finished runs only; their components, events and idempotency keys with them
DELETE_RUNS = "DELETE FROM runs WHERE run_id = ANY($1::text[]) AND status = ANY($2::text[]) RETURNING run_id"
DELETE_RUN_ROWS = tuple(f"DELETE FROM {table} WHERE run_id = ANY($1::text[])"
                        for table in ("idempotency", "events", "components"))
RELEASE_LEASE = ("UPDATE runs SET owner = '', heartbeat_at = NULL, status = COALESCE($4::text, status) "
                 "WHERE run_id = $1 AND owner = $2 AND lease_epoch = $3")
# a fenced writer cycle locks its runs' rows (in key order: two cycles never deadlock)
# before it reads their epochs: no claim comes between the check and the writes
LOCK_FENCED = "SELECT run_id, lease_epoch FROM runs WHERE run_id = ANY($1::text[]) ORDER BY run_id FOR UPDATE"
INSERT_NEW_RUN = RUNS.insert_new_sql()
UPSERT_COMPONENTS_SKIPPING = COMPONENTS.upsert_sql(skip_runs=True)
INSERT_EVENTS_SKIPPING = EVENTS.insert_new_sql(skip_runs=True)

# -- the server's records ---------------------------------------------------------------

TOKENS = Table(TokenRecord, "tokens", ("token_id",))
WORKFLOWS = Table(WorkflowRecord, "workflows", ("name",))
SERVERS = Table(ServerRecord, "servers", ("server_id",))

INSERT_TOKEN = TOKENS.insert_one_sql()
GET_TOKEN = f"{TOKENS.select} WHERE token_hash = $1"
LIST_TOKENS = f"{TOKENS.select} ORDER BY created_at DESC, token_id DESC"
REVOKE_TOKEN = "UPDATE tokens SET revoked_at = $2 WHERE token_id = $1 AND revoked_at IS NULL"
REMEMBER_REQUEST = ("INSERT INTO idempotency (key, body_hash, run_id, created_at) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT (key) DO NOTHING")
RECALL_REQUEST = "SELECT run_id, body_hash FROM idempotency WHERE key = $1"
PUT_WORKFLOW = WORKFLOWS.insert_one_sql(" ON CONFLICT (name) DO UPDATE SET spec = EXCLUDED.spec, "
                                        "target = EXCLUDED.target, updated_at = EXCLUDED.updated_at")
GET_WORKFLOW = f"{WORKFLOWS.select} WHERE name = $1"
LIST_WORKFLOWS = f"{WORKFLOWS.select} ORDER BY name"
BEAT_SERVER = SERVERS.insert_one_sql(f"{SERVERS.updates_sql()} RETURNING heartbeat_at", db_clock=("heartbeat_at",))
LIST_SERVERS = f"{SERVERS.select} ORDER BY server_id"
REMOVE_SERVER = "DELETE FROM servers WHERE server_id = $1"


CACHE_GET = "SELECT data, expires_at FROM cache_entries WHERE key = $1"
CACHE_DELETE_EXPIRED = "DELETE FROM cache_entries WHERE key = $1 AND expires_at <= $2"
CACHE_PUT = ("INSERT INTO cache_entries (key, data, expires_at, stored_at) VALUES ($1, $2, $3, $4) "
             "ON CONFLICT (key) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at, "
             "stored_at = excluded.stored_at")
CACHE_DELETE = "DELETE FROM cache_entries WHERE key = $1"
CACHE_CLEAR = "DELETE FROM cache_entries"
CACHE_CLEAR_PREFIX = "DELETE FROM cache_entries WHERE left(key, length($1)) = $1"   # not LIKE: % and _
CACHE_USAGE = "SELECT COUNT(*), COALESCE(SUM(octet_length(data)), 0) FROM cache_entries"
