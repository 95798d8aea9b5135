"""SQLite RunStore: the durable default, one file shared by threads and processes.

Owns the SQLite schema (versioned migrations in ``MIGRATIONS``), the mapping between
records and rows (dict/list fields as JSON text, bools as 0/1) and the connection
settings (WAL, synchronous=NORMAL, 10 s busy timeout). Must not hold a transaction
open across calls, and must not import anything beyond the standard library.
"""

from __future__ import annotations

import json
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import fields as dc_fields
from pathlib import Path
from typing import Any

from rayflow.core import gcpause
from rayflow.store.memory import check_run_fields
from rayflow.store.port import ComponentRecord, EventRecord, RunRecord

BUSY_TIMEOUT_MS = 10_000

# Ordered migration steps: (version, statements). Append new steps; never edit old ones.
MIGRATIONS: list[tuple[int, tuple[str, ...]]] = [
    (
        1,
        (
            """CREATE TABLE runs (
                run_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                status TEXT NOT NULL,
                created_at REAL NOT NULL,
                started_at REAL,
                ended_at REAL,
                target TEXT NOT NULL DEFAULT '',
                inputs TEXT NOT NULL DEFAULT '{}',
                error TEXT,
                owner TEXT NOT NULL DEFAULT '',
                cancel_requested INTEGER NOT NULL DEFAULT 0,
                n_components INTEGER NOT NULL DEFAULT 0,
                summary TEXT NOT NULL DEFAULT '{}'
            )""",
            "CREATE INDEX runs_status_created ON runs (status, created_at)",
            "CREATE INDEX runs_created ON runs (created_at)",
            """CREATE TABLE components (
                run_id TEXT NOT NULL,
                component_id TEXT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                submitted_at REAL,
                started_at REAL,
                ended_at REAL,
                queued_s REAL,
                duration_s REAL,
                node_id TEXT,
                worker_id TEXT,
                resources TEXT NOT NULL DEFAULT '{}',
                error TEXT,
                cached INTEGER NOT NULL DEFAULT 0,
                upstream TEXT NOT NULL DEFAULT '[]',
                PRIMARY KEY (run_id, component_id)
            )""",
            """CREATE TABLE events (
                run_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                ts REAL NOT NULL,
                kind TEXT NOT NULL,
                component_id TEXT,
                data TEXT NOT NULL DEFAULT '{}',
                PRIMARY KEY (run_id, seq)
            )""",
        ),
    ),
    (
        2,
        (  # what a component used, measured in the worker
            "ALTER TABLE components ADD COLUMN cpu_s REAL",
            "ALTER TABLE components ADD COLUMN peak_rss_bytes INTEGER",
            "CREATE INDEX components_component_ended ON components (component_id, ended_at)",
        ),
    ),
    (
        3,
        (  # no query used it, and every component update moved its entry (ended_at changes):
           # it doubled the cost of writing a row
            "DROP INDEX IF EXISTS components_component_ended",
        ),
    ),
    (
        4,
        (  # the lease of the process driving a run (resume takes over a stale one)
            "ALTER TABLE runs ADD COLUMN heartbeat_at REAL",
        ),
    ),
    (
        5,
        (  # the result cache's store tier
            """CREATE TABLE cache_entries (
                key TEXT PRIMARY KEY,
                data BLOB NOT NULL,
                expires_at REAL,
                stored_at REAL NOT NULL
            )""",
        ),
    ),
    (
        6,
        (  # what the resource model learns from, per component attempt
            "ALTER TABLE components ADD COLUMN features TEXT NOT NULL DEFAULT '{}'",
        ),
    ),
    (
        7,
        (  # what a call reported beyond its timings (a dynamic map's per-item outcomes)
            "ALTER TABLE components ADD COLUMN outcome TEXT NOT NULL DEFAULT '{}'",
        ),
    ),
]

_JSON_MEMO: dict[int, tuple[Any, str]] = {}
_JSON_MEMO_MAX = 20_000   # holds each value alive: bounded
_SORTED = json.JSONEncoder(sort_keys=True)   # json.dumps(..., sort_keys=True) builds one per call: half its cost


def _json_text(value: Any) -> str:
    """JSON of a value that is never mutated once recorded (a component's resources and
    upstream list, shared by every update of that component): encoded once, by identity."""
    if not value:
        return "[]" if isinstance(value, list) else json.dumps(value)
    hit = _JSON_MEMO.get(id(value))
    if hit is not None and hit[0] is value:
        return hit[1]
    text = _SORTED.encode(value)
    if len(_JSON_MEMO) >= _JSON_MEMO_MAX:
        _JSON_MEMO.clear()
    _JSON_MEMO[id(value)] = (value, text)
    return text


def _json_any(value: Any) -> str:
    """JSON of a value, sorted keys; an empty dict (most rows' outcome) without encoding."""
    return "{}" if type(value) is dict and not value else _SORTED.encode(value)


def _as_int(value: Any) -> int:
    return int(bool(value))


def _as_is(value: Any) -> Any:
    return value


class _Codec:
    """Maps one record dataclass to the columns of its table and back."""

    def __init__(self, cls: type, table: str, json_fields: set[str], bool_fields: set[str],
                 stable_fields: frozenset[str] = frozenset()) -> None:
        self.cls = cls
        self.stable_fields = stable_fields
        self.table = table
        self.columns = [f.name for f in dc_fields(cls)]
        self.json_fields = json_fields
        self.bool_fields = bool_fields
        self.select = f"SELECT {', '.join(self.columns)} FROM {table}"
        self._row = operator.attrgetter(*self.columns)
        self._fixes = [(i, self._encoder(name)) for i, name in enumerate(self.columns)
                       if name in json_fields or name in bool_fields]

    def encode_value(self, name: str, value: Any) -> Any:
        return self._encoder(name)(value)

    def _encoder(self, name: str) -> Any:
        """How a column's value is stored: JSON text, 0/1, or as it is."""
        if name in self.json_fields:
            return _json_text if name in self.stable_fields else _json_any
        if name in self.bool_fields:
            return _as_int
        return _as_is

    def encode(self, rec: Any) -> list[Any]:
        row = list(self._row(rec))
        for i, encode in self._fixes:   # a row per component: the column encoders are looked up once
            row[i] = encode(row[i])
        return row

    def decode(self, row: Sequence[Any]) -> Any:
        values: dict[str, Any] = {}
        for name, value in zip(self.columns, row, strict=True):
            if name in self.json_fields:
                value = json.loads(value) if value is not None else None
            elif name in self.bool_fields:
                value = bool(value)
            values[name] = value
        return self.cls(**values)


RUNS = _Codec(RunRecord, "runs", {"inputs", "summary"}, {"cancel_requested"})
COMPONENTS = _Codec(ComponentRecord, "components", {"resources", "upstream", "features", "outcome"}, {"cached"},
                    stable_fields=frozenset({"resources", "upstream"}))
EVENTS = _Codec(EventRecord, "events", {"data"}, set())


def _insert_sql(codec: _Codec, verb: str = "INSERT") -> str:
    cols = ", ".join(codec.columns)
    marks = ", ".join("?" for _ in codec.columns)
    return f"{verb} INTO {codec.table} ({cols}) VALUES ({marks})"


def _upsert_sql(codec: _Codec, keys: Sequence[str]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in codec.columns if c not in keys)
    return f"{_insert_sql(codec)} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"


_UPSERT_RUN = _upsert_sql(RUNS, ("run_id",))
_UPSERT_COMPONENT = _upsert_sql(COMPONENTS, ("run_id", "component_id"))
_INSERT_EVENT = _insert_sql(EVENTS, "INSERT OR IGNORE")


class SqliteStore:
    """A RunStore in one SQLite file. One connection, guarded by a lock."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.url = f"sqlite:///{self.path}"
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            str(self.path),
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # autocommit; write transactions are explicit
            check_same_thread=False,
        )
        with self._lock:
            self._configure()
            self._migrate()

    # -- setup -------------------------------------------------------------------------

    def _configure(self) -> None:
        conn = self._connection()
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:  # switching to WAL needs an exclusive moment; another opener may hold it
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        conn.execute("PRAGMA synchronous = NORMAL")

    def _migrate(self) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
            current = int(row[0])
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for stmt in statements:
                    conn.execute(stmt)
                conn.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    (version, time.time()),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"run store {self.url} is closed")
        return self._conn

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        """Run ``sql`` for every row in one write transaction; return rows changed."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return cur.rowcount

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

    def schema_version(self) -> int:
        """The highest migration version applied to this file."""
        return int(self._read("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0][0])

    # -- RunStore ----------------------------------------------------------------------

    def create_run(self, run: RunRecord, components: list[ComponentRecord]) -> None:
        """Insert (or replace) ``run`` and upsert ``components``, in one transaction."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(_UPSERT_RUN, RUNS.encode(run))
                conn.executemany(_UPSERT_COMPONENT, [COMPONENTS.encode(c) for c in components])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set only the given fields; an unknown run is left alone (no error)."""
        check_run_fields(fields)
        if not fields:
            return
        names = list(fields)
        assignments = ", ".join(f"{n} = ?" for n in names)
        values = tuple(RUNS.encode_value(n, fields[n]) for n in names)
        self._write(f"UPDATE runs SET {assignments} WHERE run_id = ?", [(*values, run_id)])

    def upsert_components(self, records: list[ComponentRecord]) -> None:
        if records:
            with gcpause.paused():   # a row per component at once: collect after, not during
                rows = [COMPONENTS.encode(r) for r in records]
            self._write(_UPSERT_COMPONENT, rows)

    def append_events(self, events: list[EventRecord]) -> None:
        if events:
            self._write(_INSERT_EVENT, [EVENTS.encode(e) for e in events])

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._read(f"{RUNS.select} WHERE run_id = ?", (run_id,))
        return RUNS.decode(rows[0]) if rows else None

    def list_runs(self, status: str | None = None, limit: int = 100) -> list[RunRecord]:
        """Newest first: created_at descending, then run_id descending."""
        where, params = ("WHERE status = ?", (status,)) if status is not None else ("", ())
        sql = f"{RUNS.select} {where} ORDER BY created_at DESC, run_id DESC LIMIT ?"
        return [RUNS.decode(r) for r in self._read(sql, (*params, max(limit, 0)))]

    def get_components(self, run_id: str) -> list[ComponentRecord]:
        """The components of ``run_id`` in ascending component_id order."""
        sql = f"{COMPONENTS.select} WHERE run_id = ? ORDER BY component_id"
        return [COMPONENTS.decode(r) for r in self._read(sql, (run_id,))]

    def get_events(self, run_id: str, after_seq: int = 0, limit: int = 10_000) -> list[EventRecord]:
        """Events with ``seq > after_seq`` in ascending seq order, at most ``limit``."""
        sql = f"{EVENTS.select} WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        return [EVENTS.decode(r) for r in self._read(sql, (run_id, after_seq, max(limit, 0)))]

    def request_cancel(self, run_id: str) -> bool:
        changed = self._write(
            "UPDATE runs SET cancel_requested = 1 WHERE run_id = ?", [(run_id,)]
        )
        return changed > 0

    def claim_run(self, run_id: str, owner: str, now: float, stale_before: float) -> bool:
        changed = self._write(
            "UPDATE runs SET owner = ?, heartbeat_at = ?, status = 'RUNNING' WHERE run_id = ? "
            "AND status != 'SUCCEEDED' AND (heartbeat_at IS NULL OR heartbeat_at < ?)",
            [(owner, now, run_id, stale_before)],
        )
        return changed > 0

    def cancel_requested(self, run_id: str) -> bool:
        rows = self._read("SELECT cancel_requested FROM runs WHERE run_id = ?", (run_id,))
        return bool(rows and rows[0][0])

    # -- cache rows ----------------------------------------------------------------------

    def cache_get(self, key: str, now: float) -> bytes | None:
        rows = self._read("SELECT data, expires_at FROM cache_entries WHERE key = ?", (key,))
        if not rows:
            return None
        data, expires_at = rows[0]
        if expires_at is not None and expires_at <= now:
            self._write("DELETE FROM cache_entries WHERE key = ? AND expires_at <= ?", [(key, now)])
            return None
        return bytes(data)

    def cache_put(self, key: str, data: bytes, expires_at: float | None, now: float) -> None:
        self._write("INSERT INTO cache_entries (key, data, expires_at, stored_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at, "
                    "stored_at = excluded.stored_at", [(key, sqlite3.Binary(data), expires_at, now)])

    def cache_delete(self, key: str) -> None:
        self._write("DELETE FROM cache_entries WHERE key = ?", [(key,)])

    def cache_clear(self, prefix: str | None = None) -> int:
        if prefix is None:
            return self._write("DELETE FROM cache_entries", [()])
        # substr, not LIKE: a prefix may hold % or _
        return self._write("DELETE FROM cache_entries WHERE substr(key, 1, ?) = ?", [(len(prefix), prefix)])

    def cache_usage(self) -> tuple[int, int]:
        n, size = self._read("SELECT COUNT(*), COALESCE(SUM(length(data)), 0) FROM cache_entries")[0]
        return int(n), int(size)

    def close(self) -> None:
        """Close the connection; idempotent. Later calls raise RuntimeError."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"
