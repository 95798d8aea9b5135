"""What the PostgreSQL catalog tells the advisor: tables, columns, statistics, indexes,
index usage and the statements run most.

Owns the catalog queries: a table by schema and name (``pg_class``, ``pg_namespace``,
its row estimate ``reltuples``), its columns (``pg_attribute``: the only source of the
column names put in DDL), their statistics (``pg_stats``: ``null_frac``,
``n_distinct``), its indexes (``pg_index`` with ``pg_am``, ``pg_constraint`` and
``pg_stat_user_indexes.idx_scan``), and ``pg_stat_statements`` (the statements that
took the most time, when the extension is installed and loaded). Every value is a bound
parameter; every statement only reads.
"""

from __future__ import annotations

from typing import Any

from rayflow.connect.advise.indexes import IndexInfo
from rayflow.connect.advise.plans import ColumnStats, TableInfo
from rayflow.connect.advise.session import Session

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

TABLE = """
SELECT c.oid::bigint, n.nspname, c.relname, c.reltuples::float8
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'm')"""
TABLE_ON_PATH = """
SELECT c.oid::bigint, n.nspname, c.relname, c.reltuples::float8
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(quote_ident($1)) AND c.relkind IN ('r', 'p', 'm')"""
COLUMNS = """
SELECT attnum::int, attname FROM pg_attribute
WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum"""
STATS = """
SELECT attname, COALESCE(null_frac, 0)::float8, COALESCE(n_distinct, 0)::float8 FROM pg_stats
WHERE schemaname = $1 AND tablename = $2 ORDER BY inherited"""
INDEXES = """
SELECT n.nspname, t.relname, ic.relname, am.amname, i.indisunique, i.indisprimary,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid),
       pg_get_expr(i.indpred, i.indrelid), i.indexprs IS NOT NULL,
       i.indkey::text, i.indclass::text, i.indnkeyatts::int,
       s.idx_scan::bigint, pg_relation_size(i.indexrelid)::bigint, i.indisvalid
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = ic.relam
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
WHERE i.indrelid = $1::oid
ORDER BY ic.relname"""
STATS_RESET = "SELECT stats_reset::text FROM pg_stat_database WHERE datname = current_database()"
STATEMENTS = """
SELECT query, calls::bigint, {total}::float8, {mean}::float8, rows::bigint FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY {total} DESC LIMIT $1"""


class Catalog:
    """Catalog reads on one session, each table read once."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self._tables: dict[tuple[str | None, str], tuple[int, TableInfo] | None] = {}
        self._indexes: dict[int, list[IndexInfo]] = {}

    def table(self, schema: str | None, name: str) -> TableInfo | None:
        """The table ``schema.name`` (``name`` on the search path when schema is None);
        None for a system table, a view, or one not found."""
        key = (schema, name)
        if key not in self._tables:
            self._tables[key] = self._read_table(schema, name)
        got = self._tables[key]
        return got[1] if got else None

    def oid(self, schema: str | None, name: str) -> int | None:
        got = self._tables.get((schema, name))
        return got[0] if got else None

    def _read_table(self, schema: str | None, name: str) -> tuple[int, TableInfo] | None:
        if schema in SYSTEM_SCHEMAS:
            return None
        rows = self.s.rows(TABLE, (schema, name)) if schema else self.s.rows(TABLE_ON_PATH, (name,))
        if not rows:
            return None
        oid, nsp, rel, reltuples = rows[0]
        if nsp in SYSTEM_SCHEMAS:
            return None
        names = {int(num): str(att) for num, att in self.s.rows(COLUMNS, (int(oid),))}
        stats: dict[str, ColumnStats] = {}
        for att, null_frac, n_distinct in self.s.rows(STATS, (nsp, rel)):
            stats.setdefault(att, ColumnStats(float(null_frac), float(n_distinct)))
        info = TableInfo(nsp, rel, float(reltuples), tuple(names.values()), stats)
        indexes = self._read_indexes(int(oid), names)
        self._indexes[int(oid)] = indexes
        info.indexed = [i.columns for i in indexes if i.method == "btree" and not i.expressions
                        and i.predicate is None]
        return int(oid), info

    def _read_indexes(self, oid: int, names: dict[int, str]) -> list[IndexInfo]:
        out = []
        for (nsp, table, name, method, unique, primary, backs, predicate, exprs, indkey, indclass, nkeys,
             scans, size, valid) in self.s.rows(INDEXES, (oid,)):
            if not valid:
                continue      # a failed CREATE INDEX CONCURRENTLY: neither used nor covering
            keys = [int(k) for k in str(indkey).split()][: int(nkeys)]
            columns = tuple(names.get(k, f"#{k}") if k else "(expression)" for k in keys)
            classes = tuple(str(indclass).split())[: int(nkeys)]
            out.append(IndexInfo(nsp, table, name, columns, method, bool(unique), bool(primary), bool(backs),
                                 predicate, bool(exprs), classes, None if scans is None else int(scans),
                                 None if size is None else int(size)))
        return out

    def tables(self) -> list[tuple[int, TableInfo]]:
        """Every user table read so far."""
        return [got for got in self._tables.values() if got is not None]

    def indexes(self) -> list[IndexInfo]:
        return [i for oid, _ in self.tables() for i in self._indexes.get(oid, [])]

    def stats_reset(self) -> str | None:
        got = self.s.try_rows(STATS_RESET)
        return got[0][0] if got else None

    def statements(self, limit: int = 10) -> dict[str, Any]:
        """``pg_stat_statements``' top ``limit`` statements of this database by total time,
        or why they cannot be read (the transaction rolled back when they cannot)."""
        ext = self.s.value("SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'")
        if ext is None:
            return {"available": False, "top": [],
                    "note": "pg_stat_statements is not installed in this database "
                            "(shared_preload_libraries = 'pg_stat_statements', then "
                            "CREATE EXTENSION pg_stat_statements)"}
        rows = self.s.try_rows(STATEMENTS.format(total="total_exec_time", mean="mean_exec_time"), (limit,))
        if rows is None:    # before PostgreSQL 13
            rows = self.s.try_rows(STATEMENTS.format(total="total_time", mean="mean_time"), (limit,))
        if rows is None:
            return {"available": False, "top": [],
                    "note": "pg_stat_statements is installed but cannot be read (is it in "
                            "shared_preload_libraries, and may this role read it?)"}
        top = [{"query": q, "calls": calls, "total_ms": round(total, 3), "mean_ms": round(mean, 3), "rows": n}
               for q, calls, total, mean, n in rows]
        return {"available": True, "top": top, "note": None}
