"""PostgreSQL RunStore (asyncpg): one durable store shared by many processes and hosts.

Owns the asyncpg connection pool and its management (sizes, timeouts, connection
lifetimes, health checks of idle connections, statistics, rebuilding after the server
restarts), the private event loop that drives it (``rayflow.store.loopthread``), and the RunStore methods over the
schema in ``pgschema``. The only module that imports asyncpg. Must not hold a
transaction open across calls, and must not let a password reach a log line, an error
message or ``url``. URL query parameters (pool sizes, timeouts, ``schema``): see
``rayflow/store/pgurl.py``.

Threads: the port is synchronous and asyncpg is async, so each store runs one asyncio
loop in a private daemon thread; a method call submits a coroutine to it and waits for
the result, so any thread may call any method.

Recovery: a connection-level failure (refused, reset, the server shutting down or
starting up, a dead pooled connection) terminates the pool; the next attempt builds a
new one. Reads try 4 times with a short backoff; writes, all idempotent (upserts,
insert-if-new, updates to given values), try twice. Then the call raises
StoreUnavailable: the StoreWriter keeps the records and retries with backoff, so a run
pauses with its writes queued while the database is down and they land once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from rayflow.core.errors import ConfigError, StoreError, StoreUnavailable
from rayflow.store import pgleases as ops
from rayflow.store import pgmodels
from rayflow.store import pgschema as sql
from rayflow.store.loopthread import LoopThread, abandon
from rayflow.store.memory import check_run_fields
from rayflow.store.pgrecords import ServerRecords
from rayflow.store.pgurl import PostgresUrl, parse_postgres_url
from rayflow.store.port import ComponentRecord, EventRecord, Lease, RunRecord

T = TypeVar("T")
Op = Callable[..., Awaitable[T]]

READ_ATTEMPTS = 4
WRITE_ATTEMPTS = 2
RETRY_BASE_S = 0.05      # backoff between attempts: 0.05 s, 0.1 s, 0.2 s
CLOSE_TIMEOUT_S = 5.0    # how long close() lets calls in flight finish
MIGRATION_TIMEOUT_S = 3600.0

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,                                          # refused, reset, unreachable
    asyncio.TimeoutError,                             # connecting, or no answer at all
    asyncpg.exceptions.PostgresConnectionError,       # class 08: ConnectionDoesNotExistError, ...
    asyncpg.exceptions.InterfaceError,                # "connection is closed", "pool is closing"
    asyncpg.exceptions.InternalClientError,           # protocol state broken, e.g. by a killed backend
    asyncpg.exceptions.CannotConnectNowError,         # the server is starting up
    asyncpg.exceptions.AdminShutdownError,            # ... or shutting down
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection or the server is gone, not the statement wrong."""
    return isinstance(exc, _CONNECTION_ERRORS) and not isinstance(exc, asyncpg.exceptions.DataError)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class TrackedConnection(asyncpg.Connection):
    """A pooled connection that knows when it was opened and since when it is idle."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.born_at = self.idle_since = time.monotonic()

    def mark_idle(self) -> None:
        self.idle_since = time.monotonic()


class ManagedPool:
    """An asyncpg pool built on first use, terminated after a connection-level failure
    and built again on the next use, with ages, health checks and statistics.

    Lives on the store's loop: every method but ``snapshot`` (a read of plain counters)
    runs there, so the counters need no lock."""

    def __init__(self, target: PostgresUrl) -> None:
        self._target = target
        self._settings = target.settings
        self._pool: asyncpg.Pool | None = None
        self._closed = False
        self._building: asyncio.Lock | None = None
        self._in_use = 0
        self._pools_built = 0
        self.stats = dict.fromkeys(
            ("acquired", "released", "waits", "exhaustions", "failed_health_checks",
             "expired", "rebuilds"), 0)

    def snapshot(self) -> dict[str, int]:
        pool = self._pool
        return {**self.stats, "in_use": self._in_use,
                "size": pool.get_size() if pool else 0, "idle": pool.get_idle_size() if pool else 0}

    async def _current(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._closed:
            raise RuntimeError(f"run store at {self._target.where} is closed")
        if self._building is None:
            self._building = asyncio.Lock()
        async with self._building:   # one build at a time; the others wait and reuse it
            if self._pool is None:
                self._pool = await self._build()
        return self._pool

    async def _build(self) -> asyncpg.Pool:
        s = self._settings
        pool = await asyncpg.create_pool(
            self._target.dsn, min_size=s.min_size, max_size=s.max_size,
            max_inactive_connection_lifetime=s.max_idle_lifetime, timeout=s.connect_timeout,
            command_timeout=s.command_timeout, server_settings=self._target.server_settings(),
            connection_class=TrackedConnection, reset=_reset,
        )
        self.stats["rebuilds"] += self._pools_built > 0
        self._pools_built += 1
        return pool

    def discard(self, pool: asyncpg.Pool) -> None:
        """Terminate ``pool`` after a connection-level failure, if it is still the current one."""
        if pool is self._pool:
            self._pool = None
            pool.terminate()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A healthy connection for one call. A connection-level failure, while connecting or
        during the call, discards the pool: the next call builds a new one."""
        pool = await self._current()
        try:
            conn = await self._acquire(pool)
        except StoreUnavailable:
            raise
        except BaseException as exc:
            if is_connection_error(exc):
                self.discard(pool)
            raise
        try:
            yield conn
        except BaseException as exc:
            await self._release(pool, conn, broken=is_connection_error(exc))
            if is_connection_error(exc):
                self.discard(pool)
            raise
        await self._release(pool, conn)

    async def _acquire(self, pool: asyncpg.Pool) -> Any:
        s = self._settings
        must_wait = self._in_use >= s.max_size
        self.stats["waits"] += must_wait
        for _ in range(s.max_size + 1):
            try:
                conn = await pool.acquire(timeout=s.acquire_timeout)
            except asyncio.TimeoutError:
                if not must_wait:
                    raise   # it was opening a connection that timed out: connection-level
                self.stats["exhaustions"] += 1
                raise StoreUnavailable(
                    f"no free connection to PostgreSQL at {self._target.where} within "
                    f"acquire_timeout={s.acquire_timeout:g}s (max_size={s.max_size} all in use); "
                    "raise max_size or acquire_timeout in the store URL"
                ) from None
            self._in_use += 1
            self.stats["acquired"] += 1
            if await self._healthy(conn):
                return conn
            await self._release(pool, conn, broken=True)
        raise StoreUnavailable(f"PostgreSQL at {self._target.where}: every pooled connection failed its health check")

    async def _healthy(self, conn: Any) -> bool:
        """Ping a connection that sat idle at least ``health_check_idle`` seconds."""
        if time.monotonic() - conn.idle_since < self._settings.health_check_idle:
            return True
        try:
            await conn.fetchval("SELECT 1", timeout=self._settings.connect_timeout)
            return True
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS):
            self.stats["failed_health_checks"] += 1
            return False

    async def _release(self, pool: asyncpg.Pool, conn: Any, *, broken: bool = False) -> None:
        """Give ``conn`` back: terminated if broken, closed if older than ``max_lifetime``."""
        self._in_use -= 1
        self.stats["released"] += 1
        max_lifetime = self._settings.max_lifetime
        try:
            if broken:
                conn.terminate()   # the pool opens a new one when it is next needed
            elif max_lifetime and time.monotonic() - conn.born_at >= max_lifetime:
                self.stats["expired"] += 1
                await conn.close(timeout=self._settings.connect_timeout)
            else:
                conn.mark_idle()
                await pool.release(conn)
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS):
            pass   # a connection that fails on release is dropped by asyncpg itself

    async def check(self) -> None:
        """Build the pool if needed and take one connection in and out of it."""
        async with self.connection():
            pass

    def terminate(self) -> None:
        """Close every connection at once (no goodbye to the server); no pool is built again."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()

    async def close(self) -> None:
        """Close the pool, letting calls in flight finish for a while; no pool is built again."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
        except (asyncio.TimeoutError, *_CONNECTION_ERRORS):
            pool.terminate()


async def migrate(conn: Any, schema: str | None) -> None:
    """Create the schema if asked, then apply the migrations it lacks, under a lock that
    makes every other opener of the same schema wait until this transaction ends."""
    limit = MIGRATION_TIMEOUT_S   # a step may rewrite a big table; a waiter waits for it
    async with conn.transaction():
        await conn.execute("SET LOCAL statement_timeout = 0")
        await conn.execute(sql.MIGRATION_LOCK, f"rayflow.migrate:{schema or ''}", timeout=limit)
        if schema:   # checked by pgurl: a plain lower-case name
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(sql.SCHEMA_VERSION_TABLE)
        current = await conn.fetchval(sql.CURRENT_VERSION)
        for version, statements in sql.MIGRATIONS:
            if version <= current:
                continue
            for stmt in statements:
                await conn.execute(stmt, timeout=limit)
            await conn.execute(sql.RECORD_VERSION, version, time.time())
        await pgmodels.migrate(conn)


class PostgresStore(ServerRecords, pgmodels.ModelRows):
    """A RunStore in a PostgreSQL database (or one schema of it), through a managed pool.
    The server's records (run pages, tokens, workflows, servers): ``pgrecords``; models: ``pgmodels``."""

    def __init__(self, url: str) -> None:
        self._target = parse_postgres_url(url)
        self.url = self._target.public
        self._closed = False
        self._in_flight = 0
        self._idle = threading.Condition()   # guards _closed and _in_flight
        self._pool = ManagedPool(self._target)
        self._loop = LoopThread("rayflow-postgres")
        self._finalizer = weakref.finalize(self, abandon, self._loop.loop, self._pool)
        self._finalizer.atexit = False   # at exit, whoever owns the store closes it (or no one)
        self._open("connect to", self._pool.check)
        self._open("set up the run store schema in", self._migrate)

    def _open(self, what: str, step: Callable[[], Awaitable[Any]]) -> None:
        """One step of opening: any failure closes the store and says what failed, in a line."""
        try:
            self._loop.run(step())
        except Exception as exc:
            self.close()
            raise ConfigError(f"cannot {what} PostgreSQL at {self._target.where}: {_reason(exc)}") from None

    async def _migrate(self) -> None:
        async with self._pool.connection() as conn:
            await migrate(conn, self._target.settings.schema)

    # -- calls -------------------------------------------------------------------------

    def _call(self, op: Op[T], *args: Any, attempts: int) -> T:
        """Run ``op(conn, *args)`` on a pooled connection, retrying connection-level failures."""
        with self._idle:
            if self._closed:
                raise RuntimeError(f"run store {self.url} is closed")
            self._in_flight += 1
        try:
            return self._loop.run(self._attempts(op, args, attempts))
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    async def _attempts(self, op: Op[T], args: tuple[Any, ...], attempts: int) -> T:
        for attempt in range(1, attempts + 1):
            try:
                async with self._pool.connection() as conn:
                    return await op(conn, *args)
            except StoreError:
                raise
            except asyncpg.PostgresError as exc:
                if not is_connection_error(exc):
                    raise StoreError(f"PostgreSQL at {self._target.where}: {_reason(exc)}") from exc
                failure: BaseException = exc
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                failure = exc
            if attempt == attempts:
                raise StoreUnavailable(
                    f"PostgreSQL at {self._target.where} is unreachable ({_reason(failure)}) "
                    f"after {attempts} attempt(s)"
                ) from failure
            await asyncio.sleep(RETRY_BASE_S * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _read(self, op: Op[T], *args: Any) -> T:
        return self._call(op, *args, attempts=READ_ATTEMPTS)

    def _write(self, op: Op[T], *args: Any) -> T:
        return self._call(op, *args, attempts=WRITE_ATTEMPTS)

    def pool_stats(self) -> dict[str, int]:
        """Counters since the store opened: acquired, released, waits (an acquire found every
        connection in use), exhaustions (and timed out), failed_health_checks, expired (closed
        at max_lifetime), rebuilds (pools built again after a failure); and now: in_use, size, idle."""
        return self._pool.snapshot()

    def schema_version(self) -> int:
        """The highest migration version applied to this store's schema."""
        return int(self._read(ops.fetchval, sql.CURRENT_VERSION))

    # -- RunStore ----------------------------------------------------------------------

    def create_run(self, run: RunRecord, components: list[ComponentRecord]) -> None:
        """Insert ``run`` and upsert ``components``, in one transaction; RunExists (nothing
        changed) when the id is taken."""
        run_arrays = sql.RUNS.as_arrays([run], keep="last")
        comp_arrays = sql.COMPONENTS.as_arrays(components, keep="last") if components else None
        self._write(ops.create_run, run_arrays, comp_arrays)

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set only the given fields; an unknown run is left alone (no error)."""
        check_run_fields(fields)
        if fields:
            values = [sql.RUNS.encode_value(name, value) for name, value in fields.items()]
            self._write(ops.execute, sql.update_run_sql(list(fields)), *values, run_id)

    def upsert_components(self, records: list[ComponentRecord]) -> None:
        """One statement for the whole batch; the last record given for an id wins."""
        if records:
            self._write(ops.execute, sql.UPSERT_COMPONENTS, *sql.COMPONENTS.as_arrays(records, keep="last"))

    def append_events(self, events: list[EventRecord]) -> None:
        """One statement for the whole batch; a (run_id, seq) already stored is kept."""
        if events:
            self._write(ops.execute, sql.INSERT_EVENTS, *sql.EVENTS.as_arrays(events, keep="first"))

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._read(ops.fetch, sql.GET_RUN, run_id)
        return sql.RUNS.decode(rows[0]) if rows else None

    def list_runs(self, status: str | None = None, limit: int = 100) -> list[RunRecord]:
        """Newest first: created_at descending, then run_id descending."""
        if status is None:
            rows = self._read(ops.fetch, sql.LIST_RUNS, max(limit, 0))
        else:
            rows = self._read(ops.fetch, sql.LIST_RUNS_BY_STATUS, status, max(limit, 0))
        return [sql.RUNS.decode(r) for r in rows]

    def get_components(self, run_id: str) -> list[ComponentRecord]:
        """The components of ``run_id`` in ascending component_id order."""
        return [sql.COMPONENTS.decode(r) for r in self._read(ops.fetch, sql.GET_COMPONENTS, run_id)]

    def get_events(self, run_id: str, after_seq: int = 0, limit: int = 10_000) -> list[EventRecord]:
        """Events with ``seq > after_seq`` in ascending seq order, at most ``limit``."""
        rows = self._read(ops.fetch, sql.GET_EVENTS, run_id, after_seq, max(limit, 0))
        return [sql.EVENTS.decode(r) for r in rows]

    def request_cancel(self, run_id: str) -> bool:
        return ops.rows_changed(self._write(ops.execute, sql.REQUEST_CANCEL, run_id)) > 0

    def cancel_requested(self, run_id: str) -> bool:
        return bool(self._read(ops.fetchval, sql.CANCEL_REQUESTED, run_id))

    # -- leases (fenced) -----------------------------------------------------------------

    def db_now(self) -> float:
        return float(self._read(ops.fetchval, sql.SELECT_DB_NOW))

    def insert_run(self, run: RunRecord) -> bool:
        status = self._write(ops.execute, sql.INSERT_NEW_RUN, *sql.RUNS.as_arrays([run], keep="last"))
        return ops.rows_changed(status) > 0

    def claim_run(self, run_id: str, owner: str, lease_s: float, *, force: bool = False) -> Lease | None:
        """Take the run's lease unless it SUCCEEDED or someone holds a live one (one statement)."""
        rows = self._write(ops.fetch, sql.CLAIM_RUN, owner, run_id, bool(force), float(lease_s))
        return ops.leases(rows, owner)[0] if rows else None

    def claim_next(self, owner: str, lease_s: float, limit: int) -> list[Lease]:
        """Up to ``limit`` free runs, oldest first (``FOR UPDATE SKIP LOCKED``: one claimer each)."""
        if limit <= 0:
            return []
        return ops.leases(self._write(ops.fetch, sql.CLAIM_NEXT, owner, float(lease_s), int(limit)), owner)

    def renew_lease(self, lease: Lease) -> bool:
        status = self._write(ops.execute, sql.RENEW_LEASE, lease.run_id, lease.owner, lease.epoch)
        return ops.rows_changed(status) > 0

    def release_lease(self, lease: Lease, *, status: str | None = None) -> bool:
        done = self._write(ops.execute, sql.RELEASE_LEASE, lease.run_id, lease.owner, lease.epoch, status)
        return ops.rows_changed(done) > 0

    def write_batch(self, components: list[ComponentRecord], events: list[EventRecord],
                    runs: dict[str, dict[str, Any]], fences: dict[str, int] | None = None) -> set[str]:
        """One writer cycle in one transaction and one connection: components, then events,
        then run updates (the order the writer keeps); a fenced run's records only while its
        epoch is the fence (``pgleases.write_batch``). Saves a round trip per part, which
        at the end of a run is time the caller waits for."""
        for fields in runs.values():
            check_run_fields(fields)
        fences = dict(fences or {})
        comp_arrays = sql.COMPONENTS.as_arrays(components, keep="last") if components else None
        event_arrays = sql.EVENTS.as_arrays(events, keep="first") if events else None
        updates: list[ops.RunUpdate] = []
        for run_id, fields in runs.items():
            if not fields:
                continue
            clock = ("heartbeat_at",) if run_id in fences and fields.get("heartbeat_at") is not None else ()
            args = [sql.RUNS.encode_value(n, v) for n, v in fields.items() if n not in clock]
            updates.append((run_id, sql.update_run_sql(list(fields), clock), [*args, run_id]))
        return self._write(ops.write_batch, comp_arrays, event_arrays, updates, fences)

    # -- cache rows ----------------------------------------------------------------------

    def cache_get(self, key: str, now: float) -> bytes | None:
        rows = self._read(ops.fetch, sql.CACHE_GET, key)
        if not rows:
            return None
        data, expires_at = rows[0]
        if expires_at is not None and expires_at <= now:
            self._write(ops.execute, sql.CACHE_DELETE_EXPIRED, key, now)
            return None
        return bytes(data)

    def cache_put(self, key: str, data: bytes, expires_at: float | None, now: float) -> None:
        self._write(ops.execute, sql.CACHE_PUT, key, bytes(data), expires_at, now)

    def cache_delete(self, key: str) -> None:
        self._write(ops.execute, sql.CACHE_DELETE, key)

    def cache_clear(self, prefix: str | None = None) -> int:
        if prefix is None:
            return ops.rows_changed(self._write(ops.execute, sql.CACHE_CLEAR))
        return ops.rows_changed(self._write(ops.execute, sql.CACHE_CLEAR_PREFIX, prefix))

    def cache_usage(self) -> tuple[int, int]:
        n, size = self._read(ops.fetch, sql.CACHE_USAGE)[0]
        return int(n), int(size)

    def close(self) -> None:
        """Let calls in flight finish (for up to 5 s), close the pool and stop the loop;
        idempotent. Later calls raise RuntimeError."""
        with self._idle:
            if self._closed:
                return
            self._closed = True
            self._idle.wait_for(lambda: self._in_flight == 0, CLOSE_TIMEOUT_S)
        try:
            with contextlib.suppress(RuntimeError):   # the loop already stopped: nothing to close
                self._loop.run(self._pool.close())
        finally:
            self._loop.stop()
            self._finalizer.detach()

    def __reduce__(self) -> Any:
        raise TypeError(f"a PostgresStore holds a connection pool and cannot be pickled; "
                        f"open the store where it is needed: open_store({self.url!r})")

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"


async def _reset(conn: Any) -> None:
    """What a connection needs before it goes back to the pool: only a transaction left open
    (a call that failed midway) rolled back. The store keeps no other session state (its
    search path is a server setting of the connection), so asyncpg's default reset (RESET
    ALL, UNLISTEN, ...) would be a second round trip per call for nothing."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")
