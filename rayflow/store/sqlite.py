"""SQLite RunStore: the durable default, one file shared by threads and processes.

Owns applying the SQLite schema (its versioned migrations, ``MIGRATIONS``, are in
``rayflow.store.sqlschema``; the mapping between records and rows and the SQL text in
``rayflow.store.sqlrows``) and the connection settings (WAL, synchronous=NORMAL, 10 s
busy timeout); a write the file refuses is StoreUnavailable. Must not hold a transaction
open across calls, and must not import anything beyond the standard library.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rayflow.core import gcpause
from rayflow.core.errors import RunExists, StoreUnavailable
from rayflow.core.states import TERMINAL_RUN_STATES
from rayflow.data.codec import private_dir
from rayflow.store import sqlrows as q
from rayflow.store.memory import check_run_fields
from rayflow.store.port import (
    ComponentRecord,
    EventRecord,
    Lease,
    RunRecord,
    ServerRecord,
    TokenRecord,
    WorkflowRecord,
)
from rayflow.store.sqlschema import MIGRATIONS

BUSY_TIMEOUT_MS = 10_000


@contextlib.contextmanager
def _unavailable(url: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise StoreUnavailable(f"run store {url} refused a write: {exc}") from exc


def _create_private(path: Path) -> None:
    """Create ``path`` with mode 0600 unless it exists (then it is left as it is)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


class SqliteStore:
    """A RunStore in one SQLite file. One connection, guarded by a lock."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
        private_dir(self.path.parent)   # folders made here: owner-only
        _create_private(self.path)      # a new database file is the owner's alone (its -wal, -shm follow)
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

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside one write transaction (committed at the end, rolled back on
        error). The file refusing it (locked past the busy timeout, read-only, full, an I/O
        error) is StoreUnavailable: transient, the StoreWriter keeps its records and retries."""
        with self._lock, _unavailable(self.url):
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _write(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        """Run ``sql`` for every row in one write transaction; return rows changed."""
        with self._transaction() as conn:
            return conn.executemany(sql, rows).rowcount

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

    def schema_version(self) -> int:
        """The highest migration version applied to this file."""
        return int(self._read("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0][0])

    # -- RunStore ----------------------------------------------------------------------

    def create_run(self, run: RunRecord, components: list[ComponentRecord]) -> None:
        """Insert ``run`` and upsert ``components``, in one transaction; RunExists (nothing
        changed) when the id is taken."""
        with self._transaction() as conn:
            if conn.execute(q.INSERT_NEW_RUN, q.RUNS.encode(run)).rowcount == 0:
                raise RunExists(f"run {run.run_id} already exists", run_id=run.run_id)
            conn.executemany(q.UPSERT_COMPONENT, [q.COMPONENTS.encode(c) for c in components])

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set only the given fields; an unknown run is left alone (no error)."""
        check_run_fields(fields)
        if not fields:
            return
        names = list(fields)
        assignments = ", ".join(f"{n} = ?" for n in names)
        values = tuple(q.RUNS.encode_value(n, fields[n]) for n in names)
        self._write(f"UPDATE runs SET {assignments} WHERE run_id = ?", [(*values, run_id)])

    def upsert_components(self, records: list[ComponentRecord]) -> None:
        if records:
            with gcpause.paused():   # a row per component at once: collect after, not during
                rows = [q.COMPONENTS.encode(r) for r in records]
            self._write(q.UPSERT_COMPONENT, rows)

    def append_events(self, events: list[EventRecord]) -> None:
        if events:
            self._write(q.INSERT_EVENT, [q.EVENTS.encode(e) for e in events])

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._read(f"{q.RUNS.select} WHERE run_id = ?", (run_id,))
        return q.RUNS.decode(rows[0]) if rows else None

    def list_runs(self, status: str | None = None, limit: int = 100) -> list[RunRecord]:
        """Newest first: created_at descending, then run_id descending."""
        where, params = ("WHERE status = ?", (status,)) if status is not None else ("", ())
        sql = f"{q.RUNS.select} {where} ORDER BY created_at DESC, run_id DESC LIMIT ?"
        return [q.RUNS.decode(r) for r in self._read(sql, (*params, max(limit, 0)))]

    def get_components(self, run_id: str) -> list[ComponentRecord]:
        """The components of ``run_id`` in ascending component_id order."""
        sql = f"{q.COMPONENTS.select} WHERE run_id = ? ORDER BY component_id"
        return [q.COMPONENTS.decode(r) for r in self._read(sql, (run_id,))]

    def get_events(self, run_id: str, after_seq: int = 0, limit: int = 10_000) -> list[EventRecord]:
        """Events with ``seq > after_seq`` in ascending seq order, at most ``limit``."""
        sql = f"{q.EVENTS.select} WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        return [q.EVENTS.decode(r) for r in self._read(sql, (run_id, after_seq, max(limit, 0)))]

    def request_cancel(self, run_id: str) -> bool:
        changed = self._write(
            "UPDATE runs SET cancel_requested = 1 WHERE run_id = ?", [(run_id,)]
        )
        return changed > 0

    def cancel_requested(self, run_id: str) -> bool:
        rows = self._read("SELECT cancel_requested FROM runs WHERE run_id = ?", (run_id,))
        return bool(rows and rows[0][0])

    # -- leases (fenced) -----------------------------------------------------------------

    def db_now(self) -> float:
        # SQLite's clock is the clock of the process running it (julianday('now') is computed
        # in-process, whichever machine holds the file): this one. No query: under a process
        # driving many runs, each query waits for the GIL a switch interval.
        return time.time()

    def insert_run(self, run: RunRecord) -> bool:
        return self._write(q.INSERT_NEW_RUN, [tuple(q.RUNS.encode(run))]) > 0

    def _claim(self, sql: str, params: tuple[Any, ...]) -> list[Lease]:
        owner = params[0]
        with self._transaction() as conn:
            rows = conn.execute(sql, params).fetchall()   # every row before COMMIT
        rows.sort(key=lambda r: (r[2], r[0]))
        return [Lease(run_id, owner, int(epoch)) for run_id, epoch, _ in rows]

    def claim_run(self, run_id: str, owner: str, lease_s: float, *, force: bool = False) -> Lease | None:
        leases = self._claim(q.CLAIM_RUN, (owner, run_id, int(force), lease_s))
        return leases[0] if leases else None

    def claim_next(self, owner: str, lease_s: float, limit: int) -> list[Lease]:
        if limit <= 0:
            return []
        return self._claim(q.CLAIM_NEXT, (owner, lease_s, limit))

    def renew_lease(self, lease: Lease) -> bool:
        return self._write(q.RENEW, [(lease.run_id, lease.owner, lease.epoch)]) > 0

    def release_lease(self, lease: Lease, *, status: str | None = None) -> bool:
        return self._write(q.RELEASE, [(status, lease.run_id, lease.owner, lease.epoch)]) > 0

    def write_batch(self, components: list[ComponentRecord], events: list[EventRecord],
                    runs: dict[str, dict[str, Any]], fences: dict[str, int] | None = None) -> set[str]:
        """One writer cycle in one transaction: components, events, then run updates. The
        write transaction holds SQLite's one write lock, so no claim can come between the
        check of a fenced run's epoch and its writes."""
        for fields in runs.values():
            check_run_fields(fields)
        fences = fences or {}
        with gcpause.paused():   # encoded outside the lock, as upsert_components does
            comp_rows = [q.COMPONENTS.encode(c) for c in components]
        event_rows = [q.EVENTS.encode(e) for e in events]
        updates = [(run_id, list(fields), [q.RUNS.encode_value(n, v) for n, v in fields.items()])
                   for run_id, fields in runs.items() if fields]
        with self._transaction() as conn:
            dropped: set[str] = set()
            now = None
            if fences:
                now = conn.execute(f"SELECT {q.DB_NOW}").fetchone()[0]
                for run_id, epoch in fences.items():
                    row = conn.execute("SELECT lease_epoch FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                    if row is None or row[0] != epoch:
                        dropped.add(run_id)
            if dropped:   # column 0 of a component's and an event's row is its run_id
                comp_rows = [r for r in comp_rows if r[0] not in dropped]
                event_rows = [r for r in event_rows if r[0] not in dropped]
            if comp_rows:
                conn.executemany(q.UPSERT_COMPONENT, comp_rows)
            if event_rows:
                conn.executemany(q.INSERT_EVENT, event_rows)
            for run_id, names, values in updates:
                if run_id in dropped:
                    continue
                if run_id in fences and "heartbeat_at" in names and values[names.index("heartbeat_at")] is not None:
                    values[names.index("heartbeat_at")] = now
                assignments = ", ".join(f"{n} = ?" for n in names)
                conn.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", (*values, run_id))
            return dropped

    # -- the server's records -------------------------------------------------------------

    def list_runs_page(self, *, status: str | None = None, name: str | None = None, limit: int = 100,
                       before: tuple[float, str] | None = None, since: float | None = None) -> list[RunRecord]:
        """Newest first by (created_at, run_id); ``before`` a row-value cursor."""
        where, params = _run_filter(status=status, name=name, since=since, before=before)
        sql = f"{q.RUNS.select} {where} ORDER BY created_at DESC, run_id DESC LIMIT ?"
        return [q.RUNS.decode(r) for r in self._read(sql, (*params, max(limit, 0)))]

    def count_runs(self, *, name: str | None = None, since: float | None = None) -> dict[str, int]:
        where, params = _run_filter(name=name, since=since)
        return {str(s): int(n) for s, n in self._read(f"SELECT status, COUNT(*) FROM runs {where} GROUP BY status",
                                                      tuple(params))}

    def create_token(self, token: TokenRecord) -> None:
        self._write(q.INSERT_TOKEN, [tuple(q.TOKENS.encode(token))])

    def get_token(self, token_hash: str) -> TokenRecord | None:
        rows = self._read(f"{q.TOKENS.select} WHERE token_hash = ?", (token_hash,))
        return q.TOKENS.decode(rows[0]) if rows else None

    def list_tokens(self) -> list[TokenRecord]:
        rows = self._read(f"{q.TOKENS.select} ORDER BY created_at DESC, token_id DESC")
        return [q.TOKENS.decode(r) for r in rows]

    def revoke_token(self, token_id: str, now: float) -> bool:
        return self._write("UPDATE tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
                           [(now, token_id)]) > 0

    def delete_runs(self, run_ids: list[str]) -> int:
        finished = sorted(TERMINAL_RUN_STATES)
        is_finished = f"SELECT 1 FROM runs WHERE run_id = ? AND status IN ({', '.join('?' * len(finished))})"
        gone = 0
        with self._transaction() as conn:
            for run_id in dict.fromkeys(run_ids):
                found = conn.execute(is_finished, (run_id, *finished)).fetchone()
                if found is None:
                    continue
                for table in ("idempotency", "events", "components", "runs"):
                    conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))   # (names from this list only)
                gone += 1
        return gone

    def insert_run_once(self, run: RunRecord, key: str, body_hash: str, now: float) -> tuple[str, str, bool]:
        with self._transaction() as conn:   # SQLite's one writer: nothing comes between these
            kept = conn.execute("SELECT run_id, body_hash FROM idempotency WHERE key = ?", (key,)).fetchone()
            if kept is not None:
                return kept[0], kept[1], False
            conn.execute("INSERT INTO idempotency (key, body_hash, run_id, created_at) VALUES (?, ?, ?, ?)",
                         (key, body_hash, run.run_id, now))
            created = conn.execute(q.INSERT_NEW_RUN, tuple(q.RUNS.encode(run))).rowcount > 0
            return run.run_id, body_hash, created

    def put_workflow(self, workflow: WorkflowRecord) -> None:
        self._write(q.PUT_WORKFLOW, [tuple(q.WORKFLOWS.encode(workflow))])

    def get_workflow(self, name: str) -> WorkflowRecord | None:
        rows = self._read(f"{q.WORKFLOWS.select} WHERE name = ?", (name,))
        return q.WORKFLOWS.decode(rows[0]) if rows else None

    def list_workflows(self) -> list[WorkflowRecord]:
        return [q.WORKFLOWS.decode(r) for r in self._read(f"{q.WORKFLOWS.select} ORDER BY name")]

    def beat_server(self, server: ServerRecord) -> float:
        row = q.SERVERS.encode(server)
        with self._transaction() as conn:
            now = float(conn.execute(f"SELECT {q.DB_NOW}").fetchone()[0])
            row[q.SERVERS.columns.index("heartbeat_at")] = now
            conn.execute(q.BEAT_SERVER, row)
        return now

    def list_servers(self) -> list[ServerRecord]:
        return [q.SERVERS.decode(r) for r in self._read(f"{q.SERVERS.select} ORDER BY server_id")]

    def remove_server(self, server_id: str) -> None:
        self._write("DELETE FROM servers WHERE server_id = ?", [(server_id,)])

    # -- learned models ------------------------------------------------------------------

    def save_model(self, name: str, blob: bytes) -> None:
        # saved_at only grows: a reader that kept (blob, saved_at) sees every new save
        self._write("INSERT INTO models (name, blob, saved_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                    "SET blob = excluded.blob, saved_at = MAX(excluded.saved_at, models.saved_at + 0.000001)",
                    [(name, sqlite3.Binary(blob), time.time())])

    def load_model(self, name: str) -> tuple[bytes, float] | None:
        rows = self._read("SELECT blob, saved_at FROM models WHERE name = ?", (name,))
        return (bytes(rows[0][0]), float(rows[0][1])) if rows else None

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


def _run_filter(*, status: str | None = None, name: str | None = None, since: float | None = None,
                before: tuple[float, str] | None = None) -> tuple[str, list[Any]]:
    """The WHERE clause of a runs query with these filters, and its parameters."""
    terms: list[str] = []
    params: list[Any] = []
    for value, term in ((status, "status = ?"), (name, "name = ?"), (since, "created_at >= ?")):
        if value is not None:
            terms.append(term)
            params.append(value)
    if before is not None:
        terms.append("(created_at, run_id) < (?, ?)")
        params.extend((float(before[0]), str(before[1])))
    return (f"WHERE {' AND '.join(terms)}" if terms else ""), params
