"""SQL writes: an Arrow table into a database table, one transaction per batch.

``sql_write(batch, url=, table=, mode=)`` is a batch component's function, so a write is
the sink of a stream (each batch committed as it arrives) or a task over a whole table.
Modes: ``insert`` (a parameterised INSERT per row, bound from the Arrow columns),
``upsert`` (insert, or update the row with the same ``key``: ``ON CONFLICT ... DO UPDATE``,
MySQL's ``ON DUPLICATE KEY UPDATE``) and ``copy`` (the bulk path: SQLite's bulk ingest,
MySQL's multi-row INSERT). On PostgreSQL every mode is a binary ``COPY``: straight into
the table when each Arrow column's type is its column's (int64 into bigint, string into
text, ...), else into a temporary table followed by one ``INSERT ... SELECT`` (which casts
to the table's types on the server; ``upsert`` always, with its ``ON CONFLICT``). The columns written
are the batch's, each checked against the target table's own (read from the catalog once
per process), so no name from the data reaches SQL text unverified. A batch is written
in one transaction, so a retried transient failure writes it once. The output is one row
per batch: ``rows`` written. No ray.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

import pyarrow as pa

from rayflow.connect.sql import statements as sql
from rayflow.connect.sql.drivers import Connection
from rayflow.connect.sql.errors import SqlConfigError
from rayflow.connect.sql.session import Target, report, target, transaction

_COLUMNS: dict[tuple[str, str], dict[str, str]] = {}
_COLUMNS_LOCK = threading.Lock()

# Arrow types whose binary COPY format is the PostgreSQL column type's own: a batch of only
# these goes straight into its table; any other goes through a temporary table first.
_PG_SAME = {pa.int64(): {"bigint"}, pa.int32(): {"integer"}, pa.int16(): {"smallint"},
            pa.float64(): {"double precision"}, pa.float32(): {"real"}, pa.bool_(): {"boolean"},
            pa.string(): {"text", "character varying"}, pa.large_string(): {"text", "character varying"},
            pa.date32(): {"date"}}


def _table_columns(t: Target, conn: Connection, table: str, columns: list[str]) -> dict[str, str]:
    """``table``'s columns and their types, from the catalog: read once per process, and
    again when ``columns`` (the input's) names one the cached answer lacks (the table may
    have gained it since)."""
    key = (t.url.url, table)
    with _COLUMNS_LOCK:
        known = _COLUMNS.get(key)
    if known is not None and all(c in known for c in columns):
        return known
    query, params = sql.catalog_query(t.dialect, table)
    found: dict[str, str] = {}
    for b in conn.batches(query, params, 10_000):
        for name, kind in zip(b.column(0).to_pylist(), b.column(1).to_pylist(), strict=True):
            found[str(name)] = str(kind or "").lower()
    if not found:
        raise SqlConfigError(f"component {t.component!r} field 'table': no table {table!r} on {t.shown}")
    with _COLUMNS_LOCK:
        _COLUMNS[key] = found
    return found


def _copies_straight(data: pa.Table, have: dict[str, str]) -> bool:
    return all(have.get(f.name, "") in _PG_SAME.get(f.type, ()) for f in data.schema)


def _checked_columns(t: Target, have: dict[str, str], data: pa.Table, key: tuple[str, ...], table: str) -> list[str]:
    columns = list(data.column_names)
    unknown = [c for c in columns if c not in have]
    if unknown:
        raise SqlConfigError(f"component {t.component!r}: column {unknown[0]!r} of the input is not in table "
                             f"{table!r} (its columns: {', '.join(have)})")
    missing = [k for k in key if k not in columns]
    if missing:
        raise SqlConfigError(f"component {t.component!r} field 'key': {missing[0]!r} is not a column of the input "
                             f"(columns: {', '.join(columns)})")
    return columns


def _write(t: Target, conn: Connection, data: pa.Table, table: str, mode: str, key: tuple[str, ...]) -> int:
    have = _table_columns(t, conn, table, data.column_names)
    columns = _checked_columns(t, have, data, key, table)
    if data.num_rows == 0:
        return 0
    d = t.dialect
    if mode == "copy" and d == "sqlite":
        return conn.ingest(table, data)
    if d == "postgresql" and mode != "upsert" and _copies_straight(data, have):
        return conn.ingest(table, data)            # binary COPY into the table itself
    if d == "postgresql":
        staging = f"rayflow_stage_{secrets.token_hex(6)}"
        conn.ingest_temporary(staging, data)
        tail = sql.upsert_clause(d, columns, key) if mode == "upsert" else ""
        n = conn.execute(sql.insert_select(d, table, staging, columns) + tail)
        conn.execute(f"DROP TABLE {sql.quote(staging, d)}")
        return data.num_rows if mode == "upsert" else n
    statement = sql.insert(d, table, columns)
    if mode == "upsert":
        statement += sql.upsert_clause(d, columns, key)
    return conn.executemany(statement, data)


def sql_write(batch: pa.RecordBatch | pa.Table, *, url: Any, table: str, mode: str = "insert",
              key: list[str] | tuple[str, ...] | None = None, tables: list[str] | None = None,
              component: str = "", statement_timeout_s: float | None = None,
              retries: int | None = None) -> pa.Table:
    """Write ``batch`` into ``table`` (module doc); one row: how many rows were written."""
    if mode not in sql.WRITE_MODES:
        raise SqlConfigError(f"component {component!r} field 'mode': expected one of "
                             f"{', '.join(sql.WRITE_MODES)}, got {mode!r}")
    keys = tuple(key or ())
    if mode == "upsert" and not keys:
        raise SqlConfigError(f"component {component!r}: mode 'upsert' needs 'key' (the conflict columns)")
    name = sql.table_name(table, tables, component=component)
    data = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    t = target(url, component=component, retries=retries)
    written = transaction(t, lambda conn: _write(t, conn, data, name, mode, keys),
                          what=f"the {mode} into {name!r}", statement_timeout_s=statement_timeout_s)
    report(t, rows_written=written)
    return pa.table({"rows": pa.array([written], pa.int64())})
