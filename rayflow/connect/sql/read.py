"""SQL reads: a query's rows as Arrow, whole or batch by batch (the head of a stream).

``SqlQuery`` is a read as a batch source: iterating it (where the component runs) opens
a pooled connection and yields the result's record batches as the driver produces them,
so a stream's head stage reads one batch ahead of the next stage and memory follows the
buffer, not the result. A transient failure before the first batch is retried; one after
it fails the component (its own retries start the read again). ``rows`` is the head
stage's function (each batch passed on as it is); ``sql_read`` is the task of a read whose
parameters come from upstream components; ``sql_execute`` runs a statement that returns
no rows and answers its row count. Parameters are always bound, never put in the text.
No ray.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from rayflow.connect.sql import pool
from rayflow.connect.sql.drivers import driver_errors
from rayflow.connect.sql.errors import SqlConfigError, is_transient
from rayflow.connect.sql.session import Target, begin, report, target, transaction
from rayflow.connect.sql.statements import fill_table, table_name
from rayflow.data.batches import DEFAULT_BATCH_SIZE


@dataclass(frozen=True)
class SqlQuery:
    """A read, as a source of record batches (only a secret's name in ``url``)."""

    url: Any
    query: str
    params: tuple = ()
    component: str = ""
    batch_size: int = DEFAULT_BATCH_SIZE
    read_only: bool = True
    statement_timeout_s: float | None = None
    table: str | None = None
    tables: tuple[str, ...] | None = None
    retries: int | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return read_batches(self)


_SCALARS = (type(None), bool, int, float, str, bytes, datetime.date, datetime.time, datetime.timedelta,
            decimal.Decimal)


def check_params(params: tuple, component: str) -> tuple:
    """``params`` as bound values: each a scalar (a table or a list is no parameter)."""
    for i, value in enumerate(params, start=1):
        if not isinstance(value, _SCALARS):
            raise SqlConfigError(f"component {component!r} field 'params': parameter {i} is a "
                                 f"{type(value).__module__}.{type(value).__qualname__}; expected a "
                                 "number, string, bytes, date, time or None")
    return params


def _query_text(q: SqlQuery, t: Target) -> str:
    check_params(q.params, q.component)
    table = None if q.table is None else table_name(q.table, q.tables, component=q.component)
    return fill_table(q.query, table, t.dialect, component=q.component)


def read_batches(q: SqlQuery) -> Iterator[pa.RecordBatch]:
    t = target(q.url, component=q.component, retries=q.retries)
    text = _query_text(q, t)
    errors = driver_errors()
    attempt = 0
    while True:
        attempt += 1
        yielded = False
        try:
            with pool.lent(t.url) as conn:
                begin(conn, read_only=q.read_only, statement_timeout_s=q.statement_timeout_s)
                rows_read = 0
                for batch in conn.batches(text, q.params, q.batch_size):
                    yielded = True
                    rows_read += batch.num_rows
                    yield batch
                conn.rollback()
            report(t, statements=1, rows_read=rows_read)
            return
        except errors as exc:
            if yielded or not is_transient(exc) or attempt > t.backoff.retries:
                raise t.fail("the read", exc) from None
            t.wait_to_retry("the read", exc, attempt)


def rows(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The head stage of a read: each batch as the database sent it."""
    return batch


def read_table(q: SqlQuery) -> pa.Table:
    """The whole result of ``q`` as one table (no copy of the batches)."""
    batches = list(read_batches(q))
    if not batches:
        return pa.table({})
    return pa.Table.from_batches(batches)


def sql_read(*, url: Any, query: str, params: list | tuple = (), component: str = "",
             batch_size: int = DEFAULT_BATCH_SIZE, read_only: bool = True,
             statement_timeout_s: float | None = None, table: str | None = None,
             tables: list[str] | None = None, retries: int | None = None) -> pa.Table:
    """A read whose parameters (or table) came from upstream components, as one table."""
    return read_table(SqlQuery(url, query, tuple(params), component, batch_size, read_only,
                               statement_timeout_s, table, None if tables is None else tuple(tables), retries))


def sql_execute(*, url: Any, query: str, params: list | tuple = (), component: str = "",
                statement_timeout_s: float | None = None, table: str | None = None,
                tables: list[str] | None = None, retries: int | None = None) -> int:
    """A statement that returns no rows (DDL, UPDATE, DELETE), committed; its row count."""
    q = SqlQuery(url, query, tuple(params), component, read_only=False, statement_timeout_s=statement_timeout_s,
                 table=table, tables=None if tables is None else tuple(tables), retries=retries)
    t = target(url, component=component, retries=retries)
    text = _query_text(q, t)
    return transaction(t, lambda conn: conn.execute(text, q.params), what="the statement",
                       statement_timeout_s=statement_timeout_s)
