"""Existing indexes, judged: which were never used, and which another index makes redundant.

Owns ``IndexInfo`` (an index as either catalog describes it: PostgreSQL's ``pg_index``
with ``pg_stat_user_indexes``, SQLite's ``PRAGMA index_list``/``index_info``) and the two
rules: UNUSED, an index with no scan counted (``idx_scan = 0``) that backs no primary key,
unique rule or constraint (dropping it changes no behaviour); DUPLICATE, an index whose key
columns are the same as, or a prefix of, another index's on the same table with the same
method, operator classes and predicate (every query it serves, the longer one serves too),
unless it enforces a constraint or a uniqueness the other does not. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class IndexInfo:
    schema: str | None
    table: str
    name: str
    columns: tuple[str, ...]          # key columns; an expression key is "(expr)"
    method: str = "btree"
    unique: bool = False
    primary: bool = False
    constraint: bool = False          # backs a constraint (primary key, unique, exclusion)
    predicate: str | None = None      # a partial index's WHERE
    expressions: bool = False
    opclasses: tuple[str, ...] = ()
    scans: int | None = None          # idx_scan; None where the database does not count
    size_bytes: int | None = None

    @property
    def enforces(self) -> bool:
        return self.primary or self.unique or self.constraint

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("opclasses", "expressions")}


@dataclass(frozen=True)
class Duplicate:
    schema: str | None
    table: str
    index: str
    columns: tuple[str, ...]
    covered_by: str
    covering_columns: tuple[str, ...]
    identical: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def unused(indexes: list[IndexInfo]) -> list[IndexInfo]:
    """The indexes never scanned that enforce nothing."""
    return [i for i in indexes if i.scans == 0 and not i.enforces]


def _same_kind(a: IndexInfo, b: IndexInfo) -> bool:
    return (a.schema, a.table, a.method, a.predicate) == (b.schema, b.table, b.method, b.predicate) \
        and not a.expressions and not b.expressions


def _prefix(a: IndexInfo, b: IndexInfo) -> bool:
    n = len(a.columns)
    if n == 0 or n > len(b.columns) or b.columns[:n] != a.columns:
        return False
    return not (a.opclasses and b.opclasses) or b.opclasses[:n] == a.opclasses


def duplicates(indexes: list[IndexInfo]) -> list[Duplicate]:
    """Each redundant index once, with the index that covers it (module doc). Of two
    identical indexes, the one that enforces nothing is flagged (the later name when
    neither does)."""
    out: list[Duplicate] = []
    flagged: set[tuple[str | None, str, str]] = set()
    ordered = sorted(indexes, key=lambda i: (i.schema or "", i.table, i.name))
    for a in ordered:
        if a.primary or a.constraint:
            continue
        for b in ordered:
            if b is a or not _same_kind(a, b) or not _prefix(a, b):
                continue
            identical = len(a.columns) == len(b.columns)
            if a.unique and not (identical and b.unique):
                continue      # a unique rule on fewer columns says more than the longer index
            if identical and not b.enforces and (a.enforces or a.name < b.name):
                continue      # the pair is reported from the other side
            if (b.schema, b.table, b.name) in flagged and identical:
                continue
            out.append(Duplicate(a.schema, a.table, a.name, a.columns, b.name, b.columns, identical))
            flagged.add((a.schema, a.table, a.name))
            break
    return out
