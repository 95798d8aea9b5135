"""Opening SQL connections: the one module importing the database drivers.

PostgreSQL and SQLite go through ADBC (``adbc_driver_postgresql``, ``adbc_driver_sqlite``):
Arrow-native reads (PostgreSQL's binary COPY format straight into Arrow buffers) and bulk
ingest (``COPY`` for PostgreSQL). MySQL and MariaDB go through aiomysql, on a private
event loop thread, behind the same synchronous ``Connection``. Each ``Connection`` is one
database session with the handful of operations the components and the advisor need;
``dbapi_connect`` hands out a plain DB-API connection (PostgreSQL, SQLite) for the advisor.
No ray.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from rayflow.connect.sql.urls import SqlUrl, parse
from rayflow.store.loopthread import LoopThread


def dbapi_connect(url: str | SqlUrl) -> Any:
    """A DB-API 2.0 connection (ADBC) to a PostgreSQL or SQLite URL; not in autocommit mode."""
    u = parse(url) if isinstance(url, str) else url
    if u.dialect == "postgresql":
        import adbc_driver_postgresql.dbapi as pg
        return pg.connect(u.postgres_uri())
    if u.dialect == "sqlite":
        import adbc_driver_sqlite.dbapi as sl
        return sl.connect(u.sqlite_path)
    raise ValueError(f"{u.shown}: the advisor reads PostgreSQL and SQLite")


def driver_errors() -> tuple[type[BaseException], ...]:
    """The exception classes the drivers raise (for the connectors' error handling)."""
    import adbc_driver_manager
    import pymysql
    return (adbc_driver_manager.Error, pymysql.err.Error, OSError)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error (ADBC), when it has one."""
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


def mysql_errno(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


class Connection:
    """One session: ``batches`` (a read as Arrow record batches), ``execute`` (a statement,
    its row count), ``executemany`` (one statement for every row of an Arrow table),
    ``ingest`` (the bulk path), ``commit``/``rollback``, ``close``."""

    dialect = ""

    def batches(self, query: str, params: Sequence[Any], batch_size: int) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError

    def execute(self, query: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    def executemany(self, query: str, rows: pa.Table) -> int:
        raise NotImplementedError

    def ingest(self, table: str, rows: pa.Table) -> int:
        """The bulk path (ADBC's ingest; MySQL has none here: its writes are multi-row INSERTs)."""
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class AdbcConnection(Connection):
    """PostgreSQL or SQLite through ADBC's DB-API."""

    def __init__(self, u: SqlUrl) -> None:
        self.dialect = u.dialect
        self._conn = dbapi_connect(u)

    def batches(self, query: str, params: Sequence[Any], batch_size: int) -> Iterator[pa.RecordBatch]:
        cur = self._conn.cursor()
        try:
            if self.dialect == "postgresql" and not _copyable(query):
                cur.adbc_statement.set_options(**{"adbc.postgresql.use_copy": "false"})
            elif self.dialect == "sqlite":
                cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(max(1, batch_size))})
            cur.execute(query, tuple(params) if params else None)
            reader = cur.fetch_record_batch()
            seen = False
            for batch in reader:
                seen = True
                for start in range(0, max(batch.num_rows, 1), batch_size):
                    yield _plain(batch.slice(start, batch_size))
            if not seen:   # no rows: one empty batch keeps the result's schema
                yield _plain(pa.RecordBatch.from_pylist([], schema=reader.schema))
        finally:
            cur.close()

    def execute(self, query: str, params: Sequence[Any] = ()) -> int:
        cur = self._conn.cursor()
        try:
            if params:   # ADBC counts the rows of a bound statement through executemany only
                cur.executemany(query, [tuple(params)])
            else:
                cur.execute(query)
            return max(cur.rowcount, 0)
        finally:
            cur.close()

    def executemany(self, query: str, rows: pa.Table) -> int:
        if rows.num_rows == 0:
            return 0
        cur = self._conn.cursor()
        try:
            cur.executemany(query, rows)
            return rows.num_rows
        finally:
            cur.close()

    def ingest(self, table: str, rows: pa.Table) -> int:
        if rows.num_rows == 0:
            return 0
        schema, _, name = table.rpartition(".")
        cur = self._conn.cursor()
        try:
            kwargs = {"db_schema_name": schema} if schema else {}
            cur.adbc_ingest(name, rows, mode="append", **kwargs)
            return rows.num_rows
        finally:
            cur.close()

    def ingest_temporary(self, table: str, rows: pa.Table) -> int:
        """``rows`` bulk-loaded into a new temporary table (PostgreSQL: binary COPY)."""
        cur = self._conn.cursor()
        try:
            cur.adbc_ingest(table, rows, mode="create", temporary=True)
            return rows.num_rows
        finally:
            cur.close()

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        self._conn.rollback()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()


_COPY_HEADS = ("select", "with", "values", "table", "(")


def _copyable(query: str) -> bool:
    """Whether PostgreSQL's ``COPY (query) TO STDOUT`` can run ``query`` (a SELECT, WITH,
    VALUES or TABLE; not EXPLAIN, SHOW nor a statement without rows): ADBC reads the fast
    binary COPY format for those, and plain results for the others."""
    text = query.lstrip()
    while text.startswith("--") or text.startswith("/*"):
        end = text.find("\n") if text.startswith("--") else text.find("*/")
        text = "" if end < 0 else text[end + (1 if text.startswith("--") else 2):].lstrip()
    return text[:6].lower().startswith(_COPY_HEADS)


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` without the driver's per-field metadata (``POSTGRESQL:type``), so batches
    from different drivers and queries compare and concatenate by their types alone."""
    if batch.schema.metadata is None and all(f.metadata is None for f in batch.schema):
        return batch
    schema = pa.schema([f.remove_metadata() for f in batch.schema])
    return pa.RecordBatch.from_arrays(batch.columns, schema=schema)


_MYSQL_LOOP: LoopThread | None = None
_MYSQL_LOCK = threading.Lock()


def _mysql_loop() -> LoopThread:
    global _MYSQL_LOOP
    with _MYSQL_LOCK:
        if _MYSQL_LOOP is None:
            _MYSQL_LOOP = LoopThread("rayflow-mysql")
        return _MYSQL_LOOP


class MysqlConnection(Connection):
    """MySQL or MariaDB through aiomysql (an unbuffered cursor for reads)."""

    dialect = "mysql"

    def __init__(self, u: SqlUrl) -> None:
        import aiomysql
        self._aiomysql = aiomysql
        self._loop = _mysql_loop()
        self._conn = self._loop.run(aiomysql.connect(autocommit=False, local_infile=False, **u.mysql_params()))

    def batches(self, query: str, params: Sequence[Any], batch_size: int) -> Iterator[pa.RecordBatch]:
        async def open_cursor() -> Any:
            return await self._conn.cursor(self._aiomysql.SSCursor)
        cur = self._loop.run(open_cursor())
        try:
            self._loop.run(cur.execute(query, tuple(params) if params else None))
            names = [d[0] for d in cur.description or ()]
            seen = False
            while True:
                rows = self._loop.run(cur.fetchmany(batch_size))
                if not rows:
                    if not seen:   # no rows: the columns' names, without types
                        yield pa.RecordBatch.from_arrays([pa.array([], pa.null()) for _ in names], names=names)
                    break
                seen = True
                columns = list(zip(*rows, strict=True))
                yield pa.RecordBatch.from_arrays([pa.array(c) for c in columns], names=names)
        finally:
            with contextlib.suppress(Exception):
                self._loop.run(cur.close())

    def execute(self, query: str, params: Sequence[Any] = ()) -> int:
        async def run() -> int:
            async with self._conn.cursor() as cur:
                await cur.execute(query, tuple(params) if params else None)
                return max(cur.rowcount, 0)
        return self._loop.run(run())

    def executemany(self, query: str, rows: pa.Table) -> int:
        if rows.num_rows == 0:
            return 0
        values = list(zip(*(rows.column(i).to_pylist() for i in range(rows.num_columns)), strict=True))

        async def run() -> int:
            async with self._conn.cursor() as cur:
                await cur.executemany(query, values)
            return rows.num_rows
        return self._loop.run(run())

    def commit(self) -> None:
        self._loop.run(self._conn.commit())

    def rollback(self) -> None:
        self._loop.run(self._conn.rollback())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()


def connect(u: SqlUrl) -> Connection:
    """A new session to ``u``'s database."""
    if u.dialect == "mysql":
        return MysqlConnection(u)
    return AdbcConnection(u)
