"""SQL text the connectors write themselves: quoted identifiers and the write statements.

Values are never put in SQL text: they are bound parameters. Identifiers (a table, its
columns, conflict keys) are never taken from a user's text as they are: a table name is
a plain (optionally schema-qualified) name, one of an allow-list where it varies; column
names are the target table's own, read from the database's catalog; each is quoted for
its dialect. ``{table}`` in a query is the one placeholder filled in, and only with an
allowed table's quoted name. Pure: no I/O, no ray.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rayflow.connect.sql.errors import SqlConfigError

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
WRITE_MODES = ("insert", "upsert", "copy")


def quote(name: str, dialect: str) -> str:
    """``name`` (one identifier) quoted for ``dialect``."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise SqlConfigError(f"identifier {name!r}: expected a non-empty name")
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def table_name(name: object, allowed: Sequence[str] | None, *, component: str) -> str:
    """``name`` checked: a plain ``[schema.]table`` name, and one of ``allowed`` when given."""
    if not isinstance(name, str):
        raise SqlConfigError(f"component {component!r} field 'table': expected a table name, "
                             f"got {type(name).__name__}")
    if allowed is not None and name not in allowed:
        raise SqlConfigError(f"component {component!r} field 'table': {name!r} is not one of the "
                             f"allowed tables ({', '.join(allowed) or 'none'})")
    parts = name.split(".")
    if len(parts) > 2 or not all(_PLAIN.fullmatch(p) for p in parts):
        raise SqlConfigError(f"component {component!r} field 'table': {name!r} is not a plain "
                             "[schema.]table name (letters, digits, '_', '$')")
    return name


def quoted_table(name: str, dialect: str) -> str:
    return ".".join(quote(p, dialect) for p in name.split("."))


def fill_table(query: str, table: str | None, dialect: str, *, component: str) -> str:
    """``query`` with ``{table}`` replaced by the quoted (already checked) table name."""
    if "{table}" not in query:
        if table is not None:
            raise SqlConfigError(f"component {component!r}: 'table' is set but the query has no "
                                 "{table} placeholder")
        return query
    if table is None:
        raise SqlConfigError(f"component {component!r}: the query has a {{table}} placeholder but "
                             "no 'table' is set")
    return query.replace("{table}", quoted_table(table, dialect))


def placeholders(dialect: str, n: int, start: int = 1) -> list[str]:
    if dialect == "postgresql":
        return [f"${i}" for i in range(start, start + n)]
    if dialect == "mysql":
        return ["%s"] * n
    return ["?"] * n


def insert(dialect: str, table: str, columns: Sequence[str]) -> str:
    cols = ", ".join(quote(c, dialect) for c in columns)
    return (f"INSERT INTO {quoted_table(table, dialect)} ({cols}) "
            f"VALUES ({', '.join(placeholders(dialect, len(columns)))})")


def upsert_clause(dialect: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """What follows an INSERT to make it an upsert on ``key``."""
    rest = [c for c in columns if c not in key]
    if dialect == "mysql":
        sets = ", ".join(f"{quote(c, dialect)} = VALUES({quote(c, dialect)})" for c in rest or key)
        return f" ON DUPLICATE KEY UPDATE {sets}"
    keys = ", ".join(quote(c, dialect) for c in key)
    if not rest:
        return f" ON CONFLICT ({keys}) DO NOTHING"
    sets = ", ".join(f"{quote(c, dialect)} = excluded.{quote(c, dialect)}" for c in rest)
    return f" ON CONFLICT ({keys}) DO UPDATE SET {sets}"


def insert_select(dialect: str, table: str, staging: str, columns: Sequence[str]) -> str:
    cols = ", ".join(quote(c, dialect) for c in columns)
    return f"INSERT INTO {quoted_table(table, dialect)} ({cols}) SELECT {cols} FROM {quote(staging, dialect)}"


def catalog_query(dialect: str, table: str) -> tuple[str, list[str]]:
    """The query listing ``table``'s columns (name, type), and its parameters."""
    schema, _, name = table.rpartition(".")
    if dialect == "sqlite":
        return f"SELECT name, type FROM pragma_table_info({placeholders(dialect, 1)[0]}) ORDER BY cid", [name]
    if dialect == "mysql":
        where = "table_schema = %s" if schema else "table_schema = DATABASE()"
        return (f"SELECT column_name, data_type FROM information_schema.columns WHERE {where} AND table_name = %s "
                "ORDER BY ordinal_position", [schema, name] if schema else [name])
    where = "table_schema = $1" if schema else "table_schema = current_schema()"
    p = "$2" if schema else "$1"
    return (f"SELECT column_name, data_type FROM information_schema.columns WHERE {where} AND table_name = {p} "
            "ORDER BY ordinal_position", [schema, name] if schema else [name])
