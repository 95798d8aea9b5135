"""The advisor on SQLite: EXPLAIN QUERY PLAN each query, recommend indexes, verify them,
find duplicate indexes.

Owns reading SQLite's plans (``SCAN t``: the whole table read; ``SEARCH t USING INDEX``:
an index used), the candidate columns (SQLite prints no expressions: they are the
query's own WHERE, JOIN ... ON and ORDER BY columns, read by ``sqltext.clauses`` and kept
only when ``pragma_table_info`` has them, in the catalog's spelling), their selectivity
(``COUNT(DISTINCT c)``: SQLite keeps no statistics unless ANALYZE made ``sqlite_stat1``),
and verifying: the index built in a savepoint, the plan read again, the query timed
before and after (best of ``Options.repeat``), then rolled back. Index usage is not
counted by SQLite, so unused indexes cannot be known; duplicates come from
``pragma_index_list``/``pragma_index_info``. Only reads are run.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time

from rayflow.connect.advise import plans
from rayflow.connect.advise.guard import advise_one
from rayflow.connect.advise.indexes import IndexInfo, duplicates
from rayflow.connect.advise.job import Job, Options
from rayflow.connect.advise.results import DatabaseReport, QueryReport, Recommendation, Verification
from rayflow.connect.advise.session import QueryError, Session
from rayflow.connect.advise.sqltext import (
    Ref,
    clauses,
    param_count,
    tokenize,
)

_STEP = re.compile(r'^(?P<op>SCAN|SEARCH)(?: TABLE)? (?P<name>"(?:[^"]|"")+"|\S+)(?: AS (?P<alias>\S+))?(?P<rest>.*)$')
_SPECIAL = {"CONSTANT", "SUBQUERY"}


def _bindable(value: object) -> object:
    """A parameter as SQLite stores it: dates as ISO text, other values as text or JSON."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def _owned(found: list[Ref], names: set[str], columns: tuple[str, ...], shared: set[str]) -> list[Ref]:
    """The references to one table's columns (catalog spelling): qualified by its name or
    alias, or bare and a column of no other table of the query."""
    lower = {c.lower(): c for c in columns}
    out = []
    for r in found:
        name = r.name.lower()
        if name not in lower:
            continue
        if (r.qualifier or "").lower() in names or (r.qualifier is None and name not in shared):
            out.append(Ref(None, lower[name], r.kind, r.descending))
    return out


class SqliteAdvisor:
    def __init__(self, session: Session, options: Options) -> None:
        self.s = session
        self.o = options
        self._tables: dict[str, tuple[str, tuple[str, ...]] | None] = {}
        self._rows: dict[str, int] = {}

    # -- catalog ---------------------------------------------------------------------------

    def table(self, name: str) -> tuple[str, tuple[str, ...]] | None:
        """(name as stored, columns) of a table, matched case-insensitively."""
        key = name.lower()
        if key not in self._tables:
            got = self.s.rows("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE",
                              (name,))
            if not got:
                self._tables[key] = None
            else:
                stored = str(got[0][0])
                cols = tuple(str(r[0]) for r in self.s.rows("SELECT name FROM pragma_table_info(?) ORDER BY cid",
                                                              (stored,)))
                self._tables[key] = (stored, cols)
        return self._tables[key]

    def rows(self, table: str) -> int:
        if table not in self._rows:
            self._rows[table] = int(self.s.value(f"SELECT COUNT(*) FROM {plans.quote_ident(table)}") or 0)
        return self._rows[table]

    def indexes(self, table: str) -> list[IndexInfo]:
        out = []
        for name, unique, origin, partial in self.s.rows(
                'SELECT name, "unique", origin, partial FROM pragma_index_list(?)', (table,)):
            info = self.s.rows("SELECT seqno, cid, name FROM pragma_index_info(?) ORDER BY seqno", (name,))
            cols = tuple("(expression)" if cid is not None and int(cid) < 0 else str(col) for _, cid, col in info)
            out.append(IndexInfo(None, table, str(name), cols, "btree", bool(unique), origin == "pk",
                                 origin in ("pk", "u"), "(partial)" if partial else None,
                                 any(c == "(expression)" for c in cols)))
        return out

    def _stats(self, table: str, columns: list[str], rows: int) -> dict[str, plans.ColumnStats]:
        out = {}
        if len(columns) < 2 or rows == 0:
            return out
        for c in columns:
            q = plans.quote_ident(c)
            distinct, nulls = self.s.rows(f"SELECT COUNT(DISTINCT {q}), SUM({q} IS NULL) "
                                          f"FROM {plans.quote_ident(table)}")[0]
            out[c] = plans.ColumnStats((nulls or 0) / rows, float(distinct or 0))
        return out

    # -- plans -----------------------------------------------------------------------------

    def _args(self, job: Job) -> tuple:
        n = param_count(job.query)
        if job.generic:
            return (None,) * n
        if len(job.params) != n:
            raise QueryError(f"the query takes {n} parameter(s), {len(job.params)} given")
        return tuple(_bindable(v) for v in job.params)

    def plan(self, job: Job) -> list[str]:
        return [str(r[-1]) for r in self.s.rows(f"EXPLAIN QUERY PLAN {job.query}", self._args(job))]

    def timed_ms(self, job: Job) -> float:
        best = None
        for _ in range(max(self.o.repeat, 1)):
            start = time.perf_counter()
            self.s.rows(job.query, self._args(job))
            took = (time.perf_counter() - start) * 1000
            best = took if best is None else min(best, took)
        return float(best or 0.0)

    @staticmethod
    def read(steps: list[str], *, whole: bool) -> list[str]:
        """The names (or aliases) the plan reads; ``whole``: only those ``SCAN`` reads
        whole (not through an index)."""
        out = []
        for step in steps:
            m = _STEP.match(step.strip())
            if m is None or (whole and (m.group("op") != "SCAN" or "USING" in m.group("rest"))):
                continue
            name = m.group("alias") or m.group("name")
            if name.startswith('"'):
                name = name[1:-1].replace('""', '"')
            if name.split()[0] not in _SPECIAL and not name.startswith("("):
                out.append(name)
        return out

    # -- one query -------------------------------------------------------------------------

    def advise(self, job: Job) -> QueryReport:
        def body(rep: QueryReport) -> None:
            self.s.rollback()
            steps = self.plan(job)
            rep.plan = steps
            self._describe(job, rep, steps)
            if self.o.analyze and not job.generic:
                rep.time_ms = self.timed_ms(job)
            if rep.recommendations and self.o.verify:
                self._verify_all(job, rep, steps)
                rep.settle()

        return advise_one(job, "sqlite", self.s, body)

    def _describe(self, job: Job, rep: QueryReport, steps: list[str]) -> None:
        cl = clauses(job.query)
        limited = any(t.word == "LIMIT" for t in tokenize(job.query))
        verdicts = []
        for alias in self.read(steps, whole=False):     # known to the database report
            self.table(cl.tables.get(alias.lower(), alias))
        for alias in self.read(steps, whole=True):
            found = self.table(cl.tables.get(alias.lower(), alias))
            if found is None:
                continue
            table, columns = found
            rows = self.rows(table)
            rep.seq_scans.append({"schema": None, "table": table, "rows": rows, "filter": None, "parallel": False})
            if rows < self.o.min_rows:
                continue
            verdicts.append(f"full scan of {table} ({rows:,} rows)")
            others = {t.lower() for t in cl.tables.values()} - {table.lower()}
            shared = set()
            for other in others:
                got = self.table(other)
                shared |= {c.lower() for c in got[1]} if got else set()

            def own(found_refs: list[Ref], alias: str = alias, table: str = table,
                    columns: tuple[str, ...] = columns, shared: set[str] = shared) -> list[Ref]:
                return _owned(found_refs, {alias.lower(), table.lower()}, columns, shared)

            filters, joins, order = own(cl.filters), own(cl.joins), own(cl.order)
            picks = []
            wanted = [r.name for r in filters + joins if r.kind in ("eq", "range")]
            stats = self._stats(table, list(dict.fromkeys(wanted)), rows)
            cols = tuple(plans.index_columns(filters, stats, rows))
            if cols:
                picks.append(("filter", cols, ()))
            jcols = tuple(plans.index_columns([Ref(None, r.name, "eq") for r in joins], stats, rows))
            if jcols and not (cols and cols[0] in jcols):
                picks.append(("join", jcols[:1], ()))
            if not picks and order and limited:
                desc = tuple(r.descending for r in order)
                picks.append(("sort", tuple(r.name for r in order)[: plans.MAX_COLUMNS],
                              desc if len(set(desc)) > 1 else ()))
            existing = [i.columns for i in self.indexes(table) if i.predicate is None and not i.expressions]
            for reason, pick, desc in picks:
                if any(e[: len(pick)] == pick for e in existing):
                    rep.notes.append(f"an index on {table} ({', '.join(pick)}) exists; SQLite does not use it here")
                    continue
                name = plans.index_name(table, pick)
                rep.recommendations.append(Recommendation(table, list(pick), reason, name,
                                                          plans.create_index_sql(None, table, pick, name, desc),
                                                          None, float(rows)))
        rep.verdict = "; ".join(verdicts) or "ok"
        rep.status = "advice" if rep.recommendations else "ok"
        if verdicts and not rep.recommendations and not rep.notes:
            rep.notes.append("the scan reads the table whole: no filtered, joined or sorted column an index serves")

    def _verify_all(self, job: Job, rep: QueryReport, steps: list[str]) -> None:
        before = None if job.generic else (rep.time_ms if rep.time_ms is not None else self.timed_ms(job))
        rep.time_ms = before
        for rec in rep.recommendations:
            self.s.rows("SAVEPOINT rayflow_verify")
            try:
                self.s.rows(rec.ddl)
                after_steps = self.plan(job)
                after = None if job.generic else self.timed_ms(job)
                uses = any(f"INDEX {rec.index_name}" in step for step in after_steps)
                rec.verification = Verification("sqlite-transaction", steps, after_steps, None, None, before, after,
                                                uses_index=uses, note="index built in a transaction, then rolled back")
            except QueryError as exc:
                rec.verification = Verification("sqlite-transaction", steps, note=f"not verified: {exc}")
            finally:
                self.s.rows("ROLLBACK TO SAVEPOINT rayflow_verify")
                self.s.rows("RELEASE SAVEPOINT rayflow_verify")

    def database(self) -> DatabaseReport:
        rep = DatabaseReport(self.s.shown, "sqlite", unused_known=False)
        rep.notes.append("SQLite counts no index use: unused indexes cannot be known")
        try:
            found = []
            for got in self._tables.values():
                if got is not None:
                    found.extend(self.indexes(got[0]))
            rep.duplicates = duplicates(found)
        except QueryError as exc:
            rep.notes.append(f"indexes not read: {exc}")
        finally:
            self.s.rollback_quietly()
        return rep
