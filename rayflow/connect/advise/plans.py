"""PostgreSQL plans, read: which scans read whole tables, on which columns, and what index
would serve them.

Owns walking ``EXPLAIN (FORMAT JSON)`` output (every node, sub-plans and init-plans
included), the facts the advisor takes from it (``facts``: the sequential scans with their
``Filter``, the join columns of ``Hash Cond``/``Merge Cond``/``Join Filter``, the ``Sort
Key`` columns, the cost, the measured time), the candidate indexes for the scans over
large tables (``candidates``: filter columns with equality ones first, each group in
selectivity order from ``pg_stats``; else join columns; else, under a LIMIT, the sort
key), and the DDL: generated index names (``rayflow_advise_<table>_<cols>``, at most 63
bytes) and identifiers quoted. Column and table names in the DDL are the catalog's
(``TableInfo``, read by ``rayflow.connect.advise.pgcatalog``); a name the plan prints is
only looked up in it. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rayflow.connect.advise.sqltext import Ref, refs

NAME_BYTES = 63          # PostgreSQL's NAMEDATALEN - 1
MAX_COLUMNS = 3          # a candidate index keeps its three most selective columns
JOIN_KEYS = ("Hash Cond", "Merge Cond", "Join Filter")


@dataclass(frozen=True)
class Scan:
    """One sequential scan node."""

    schema: str | None
    relation: str
    alias: str
    rows: float                  # the planner's estimate of the rows it returns
    filter: str | None
    parallel: bool


@dataclass
class PlanFacts:
    cost: float
    rows: float
    execution_ms: float | None           # EXPLAIN ANALYZE only
    scans: list[Scan] = field(default_factory=list)
    relations: dict[str, tuple[str | None, str]] = field(default_factory=dict)   # alias -> (schema, table)
    join_refs: list[Ref] = field(default_factory=list)
    sort_refs: list[Ref] = field(default_factory=list)
    limited: bool = False                # a Limit node: an index in the sort order can stop early
    paths: list[str] = field(default_factory=list)   # "Seq Scan on orders", "Index Scan using ix on orders"


@dataclass(frozen=True)
class ColumnStats:
    null_frac: float
    n_distinct: float      # pg_stats: > 0 a count, < 0 minus a fraction of the rows, 0 unknown


@dataclass
class TableInfo:
    """A table as the catalog knows it (names exactly as stored)."""

    schema: str | None
    name: str
    reltuples: float                       # -1: never analyzed
    columns: tuple[str, ...]
    stats: dict[str, ColumnStats] = field(default_factory=dict)
    indexed: list[tuple[str, ...]] = field(default_factory=list)   # key columns of its btree indexes


@dataclass(frozen=True)
class Candidate:
    schema: str | None
    table: str
    columns: tuple[str, ...]
    reason: str                            # filter | join | sort
    rows: float
    descending: tuple[bool, ...] = ()

    @property
    def name(self) -> str:
        return index_name(self.table, self.columns)

    def ddl(self) -> str:
        return create_index_sql(self.schema, self.table, self.columns, self.name, self.descending)


def load(doc: Any) -> tuple[dict[str, Any], float | None]:
    """The top plan node and the measured execution time (ms) of EXPLAIN's JSON output."""
    if isinstance(doc, (str, bytes)):
        doc = json.loads(doc)
    if isinstance(doc, list):
        doc = doc[0]
    if not isinstance(doc, dict) or not isinstance(doc.get("Plan"), dict):
        raise ValueError("not the output of EXPLAIN (FORMAT JSON)")
    ms = doc.get("Execution Time")
    return doc["Plan"], (float(ms) if ms is not None else None)


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of ``plan``, depth first (iterative: however deep the plan)."""
    stack = [plan]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.get("Plans") or []))


def _path(node: dict[str, Any]) -> str | None:
    relation, index = node.get("Relation Name"), node.get("Index Name")
    if relation is None and index is None:
        return None
    kind = node.get("Node Type", "?")
    if node.get("Parallel Aware"):
        kind = f"Parallel {kind}"
    if relation is None:
        return f"{kind} using {index}"
    return f"{kind} using {index} on {relation}" if index else f"{kind} on {relation}"


def facts(doc: Any) -> PlanFacts:
    """What the advisor reads in one EXPLAIN output (module doc)."""
    plan, ms = load(doc)
    out = PlanFacts(float(plan.get("Total Cost", 0.0)), float(plan.get("Plan Rows", 0.0)), ms)
    for node in nodes(plan):
        kind = node.get("Node Type", "")
        relation = node.get("Relation Name")
        if relation is not None:
            out.relations.setdefault(node.get("Alias") or relation, (node.get("Schema"), relation))
        path = _path(node)
        if path is not None:
            out.paths.append(path)
        if kind == "Seq Scan" and relation is not None:
            out.scans.append(Scan(node.get("Schema"), relation, node.get("Alias") or relation,
                                  float(node.get("Plan Rows", 0.0)), node.get("Filter"),
                                  bool(node.get("Parallel Aware"))))
        for key in JOIN_KEYS:
            if node.get(key):
                out.join_refs.extend(refs(node[key]))
        if kind in ("Sort", "Incremental Sort") and node.get("Sort Key"):
            for key in node["Sort Key"]:
                out.sort_refs.extend(refs(key))
        if kind == "Limit":
            out.limited = True
    return out


def eq_fraction(stats: ColumnStats | None, reltuples: float) -> float:
    """The share of rows one value of the column matches (lower: more selective); 1 when
    the statistics do not say."""
    if stats is None:
        return 1.0
    distinct = stats.n_distinct
    if distinct < 0:
        distinct = -distinct * max(reltuples, 1.0)
    if distinct <= 0:
        return 1.0
    return max(0.0, 1.0 - stats.null_frac) / distinct


def by_selectivity(columns: list[str], stats: dict[str, ColumnStats], reltuples: float) -> list[str]:
    """``columns`` most selective first (ties: in the order given)."""
    order = {c: i for i, c in enumerate(columns)}
    return sorted(columns, key=lambda c: (eq_fraction(stats.get(c), reltuples), order[c]))


def index_columns(found: list[Ref], stats: dict[str, ColumnStats], reltuples: float) -> list[str]:
    """The columns of a filter's index: equality ones, then range ones, each group in
    selectivity order; columns compared otherwise (in a function call) left out."""
    eq = [r.name for r in found if r.kind == "eq"]
    rng = [r.name for r in found if r.kind == "range" and r.name not in eq]
    return (by_selectivity(eq, stats, reltuples) + by_selectivity(rng, stats, reltuples))[:MAX_COLUMNS]


def table_rows(scan: Scan, info: TableInfo | None) -> float:
    """The table's size: the catalog's row count when it has one, else the plan's."""
    if info is not None and info.reltuples >= 0:
        return max(info.reltuples, scan.rows)
    return scan.rows


def _unique(refs_: list[Ref]) -> list[Ref]:
    seen: dict[str, Ref] = {}
    for r in refs_:
        if r.name not in seen or (seen[r.name].kind != "eq" and r.kind == "eq"):
            seen[r.name] = r
    return list(seen.values())


def _owner(ref: Ref, facts_: PlanFacts, tables: dict[tuple[str | None, str], TableInfo],
           scanned: set[tuple[str | None, str]]) -> tuple[str | None, str] | None:
    """The (schema, table) of a reference: its qualifier's relation, else the one scanned
    table that has such a column."""
    if ref.qualifier is not None:
        return facts_.relations.get(ref.qualifier)
    owners = [key for key in scanned if key in tables and ref.name in tables[key].columns]
    return owners[0] if len(owners) == 1 else None


def covered(columns: tuple[str, ...], info: TableInfo) -> tuple[str, ...] | None:
    """An existing index of the table whose leading columns are ``columns``."""
    for existing in info.indexed:
        if existing[: len(columns)] == columns:
            return existing
    return None


def candidates(facts_: PlanFacts, tables: dict[tuple[str | None, str], TableInfo],
               min_rows: float) -> tuple[list[Candidate], list[str]]:
    """Candidate indexes for the sequential scans over tables of at least ``min_rows``
    rows, and notes (an index that exists already but is not used)."""
    out: list[Candidate] = []
    notes: list[str] = []
    big = [(s, tables.get((s.schema, s.relation))) for s in facts_.scans]
    big = [(s, info) for s, info in big if info is not None and table_rows(s, info) >= min_rows]
    scanned = {(s.schema, s.relation) for s, _ in big}
    joins: dict[tuple[str | None, str], list[Ref]] = {}
    for ref in facts_.join_refs:
        owner = _owner(ref, facts_, tables, scanned)
        if owner in scanned and ref.name in tables[owner].columns:
            joins.setdefault(owner, []).append(Ref(None, ref.name, "eq"))
    sorts = [(r, _owner(r, facts_, tables, scanned)) for r in facts_.sort_refs]
    owns: list[list[Ref]] = []
    for scan, info in big:       # a filter comparing another table's column: a join
        own: list[Ref] = []
        for ref in refs(scan.filter or ""):
            if ref.qualifier not in (None, scan.alias):
                other = facts_.relations.get(ref.qualifier)
                if other in scanned and ref.name in tables[other].columns:
                    joins.setdefault(other, []).append(Ref(None, ref.name, "eq"))
            elif ref.name in info.columns:
                own.append(ref)
        owns.append(own)
    seen: set[tuple[str | None, str, tuple[str, ...]]] = set()
    for (scan, info), own in zip(big, owns, strict=True):
        key = (scan.schema, scan.relation)
        rows = table_rows(scan, info)
        picks: list[tuple[str, tuple[str, ...], tuple[bool, ...]]] = []
        filter_cols = tuple(index_columns(_unique(own), info.stats, info.reltuples))
        if filter_cols:
            picks.append(("filter", filter_cols, ()))
        join_cols = tuple(index_columns(_unique(joins.get(key, [])), info.stats, info.reltuples))
        if join_cols and not (filter_cols and filter_cols[0] in join_cols):
            picks.append(("join", join_cols[:1], ()))
        if not picks and facts_.limited and sorts and all(o == key for _, o in sorts):
            cols = tuple(dict.fromkeys(r.name for r, _ in sorts if r.name in info.columns))
            if cols and len(cols) == len(sorts):
                desc = tuple(r.descending for r, _ in sorts)
                picks.append(("sort", cols[:MAX_COLUMNS], desc[:MAX_COLUMNS] if len(set(desc)) > 1 else ()))
        for reason, cols, desc in picks:
            if (info.schema, info.name, cols) in seen:
                continue
            seen.add((info.schema, info.name, cols))
            existing = covered(cols, info)
            if existing is not None:
                notes.append(f"an index on {info.name} ({', '.join(existing)}) exists; the planner chose a "
                             f"sequential scan anyway (too many matching rows, or outdated statistics: ANALYZE)")
                continue
            out.append(Candidate(info.schema, info.name, cols, reason, rows, desc))
    return out, notes


def quote_ident(name: str) -> str:
    """``name`` as one double-quoted identifier (PostgreSQL and SQLite)."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"identifier {name!r}: expected a non-empty name")
    return '"' + name.replace('"', '""') + '"'


def index_name(table: str, columns: tuple[str, ...] | list[str]) -> str:
    """``rayflow_advise_<table>_<cols>``; over 63 bytes, cut and ended with a hash of the
    whole name (so that two long names stay apart)."""
    name = "_".join(["rayflow_advise", table, *columns])
    raw = name.encode("utf-8")
    if len(raw) <= NAME_BYTES:
        return name
    digest = hashlib.sha1(raw).hexdigest()[:8]
    head = raw[: NAME_BYTES - len(digest) - 1].decode("utf-8", "ignore")
    return f"{head}_{digest}"


def create_index_sql(schema: str | None, table: str, columns: tuple[str, ...] | list[str], name: str,
                     descending: tuple[bool, ...] = ()) -> str:
    where = f"{quote_ident(schema)}.{quote_ident(table)}" if schema else quote_ident(table)
    keys = ", ".join(quote_ident(c) + (" DESC" if i < len(descending) and descending[i] else "")
                     for i, c in enumerate(columns))
    return f"CREATE INDEX {quote_ident(name)} ON {where} ({keys})"
