"""The advisor on PostgreSQL: EXPLAIN each query, recommend indexes, verify them, judge the
existing indexes.

Owns running the queries under EXPLAIN: each is prepared (``PREPARE``: the server infers
its parameters' types, and refuses more than one statement) and explained through
``EXPLAIN (FORMAT JSON, VERBOSE[, ANALYZE, BUFFERS]) EXECUTE`` with its values as
literals the server quoted (``quote_nullable``), or as a generic plan
(``plan_cache_mode = force_generic_plan``) when the values cannot be known. Verifying a
recommendation: with hypopg (``CREATE EXTENSION IF NOT EXISTS hypopg`` succeeds) a
hypothetical index and the new plan's cost; otherwise the index is built for real and the
query timed (EXPLAIN ANALYZE, best of ``Options.repeat``) before and after it. Each query
is advised in one transaction that is always rolled back, each recommendation in a
savepoint of its own: no index, extension or setting stays. Building an index takes a
SHARE lock on its table (writes wait) until the rollback; ``lock_timeout`` bounds the wait
for it. Only reads are run (``sqltext.read_only``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import Any

from rayflow.connect.advise import plans
from rayflow.connect.advise.guard import advise_one
from rayflow.connect.advise.indexes import duplicates, unused
from rayflow.connect.advise.job import Job, Options
from rayflow.connect.advise.pgcatalog import Catalog
from rayflow.connect.advise.results import DatabaseReport, QueryReport, Recommendation, Verification
from rayflow.connect.advise.session import QueryError, Session
from rayflow.connect.advise.sqltext import param_count, without_semicolon

STATEMENT = "rayflow_advise_stmt"


def _text(value: Any) -> str | None:
    """A parameter value as the text of a literal (the server quotes it)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, decimal.Decimal, str)):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        items = ("NULL" if v is None else '"' + str(_text(v)).replace("\\", "\\\\").replace('"', '\\"') + '"'
                 for v in value)
        return "{" + ",".join(items) + "}"
    return json.dumps(value, default=str)


class PgAdvisor:
    def __init__(self, session: Session, options: Options) -> None:
        self.s = session
        self.o = options
        self.catalog = Catalog(session)
        self._hypopg: bool | None = None if options.verify_with != "transaction" else False

    # -- running EXPLAIN -------------------------------------------------------------------

    def _begin(self) -> None:
        self.s.rollback()
        self.s.rows(f"SET LOCAL statement_timeout = {int(self.o.statement_timeout_s * 1000)}")
        self.s.rows(f"SET LOCAL lock_timeout = {int(self.o.lock_timeout_s * 1000)}")

    def _literals(self, job: Job) -> str:
        n = param_count(job.query)
        if n == 0:
            return ""
        if job.generic:
            return "(" + ", ".join(["NULL"] * n) + ")"
        if len(job.params) != n:
            raise QueryError(f"the query takes {n} parameter(s), {len(job.params)} given")
        quoted = [self.s.value("SELECT quote_nullable($1::text)", (_text(v),)) for v in job.params]
        return "(" + ", ".join(str(q) for q in quoted) + ")"

    def explain(self, job: Job, *, analyze: bool) -> plans.PlanFacts:
        """One EXPLAIN of the job's query (module doc). On failure the transaction is
        rolled back (the driver takes nothing else after an error) and QueryError raised."""
        options = "FORMAT JSON, VERBOSE" + (", ANALYZE, BUFFERS" if analyze and not job.generic else "")
        try:
            if job.generic:
                self.s.rows("SET LOCAL plan_cache_mode = force_generic_plan")
            literals = self._literals(job)
            self.s.rows(f"PREPARE {STATEMENT} AS {without_semicolon(job.query)}")
            doc = self.s.value(f"EXPLAIN ({options}) EXECUTE {STATEMENT}{literals}")
            self.s.rows(f"DEALLOCATE {STATEMENT}")
        except QueryError:
            self.s.rollback()
            self.s.try_rows("DEALLOCATE ALL")     # a statement prepared before the failure
            self.s.rollback()
            raise
        return plans.facts(doc)

    def _timed(self, job: Job, first: plans.PlanFacts | None = None) -> plans.PlanFacts:
        """EXPLAIN ANALYZE ``repeat`` times (``first``: a run already made); the fastest."""
        runs = [first] if first is not None and first.execution_ms is not None else []
        while len(runs) < max(self.o.repeat, 1):
            runs.append(self.explain(job, analyze=True))
        return min(runs, key=lambda f: f.execution_ms or 0.0)

    # -- one query ---------------------------------------------------------------------------

    def advise(self, job: Job) -> QueryReport:
        def body(rep: QueryReport) -> None:
            if job.generic:
                rep.notes.append("parameter values unknown: the generic plan (no times measured)")
            self._begin()
            before = self.explain(job, analyze=self.o.analyze)
            self._describe(rep, before)
            if rep.recommendations and self.o.verify:
                self._verify_all(job, rep, before)
                rep.settle()

        return advise_one(job, "postgresql", self.s, body)

    def _describe(self, rep: QueryReport, facts: plans.PlanFacts) -> None:
        rep.cost, rep.time_ms, rep.plan = facts.cost, facts.execution_ms, facts.paths
        tables = {}
        for schema, name in facts.relations.values():
            info = self.catalog.table(schema, name)
            if info is not None:
                tables[(schema, name)] = info
        verdicts = []
        for scan in facts.scans:
            info = tables.get((scan.schema, scan.relation))
            rows = plans.table_rows(scan, info)
            rep.seq_scans.append({"schema": scan.schema, "table": scan.relation, "rows": rows,
                                  "filter": scan.filter, "parallel": scan.parallel})
            if rows >= self.o.min_rows:
                verdicts.append(f"seq scan on {scan.relation} ({rows:,.0f} rows)")
        found, notes = plans.candidates(facts, tables, self.o.min_rows)
        rep.notes.extend(notes)
        for c in found:
            rep.recommendations.append(Recommendation(c.table, list(c.columns), c.reason, c.name, c.ddl(),
                                                      c.schema, c.rows))
        rep.verdict = "; ".join(dict.fromkeys(verdicts)) or "ok"
        rep.status = "advice" if rep.recommendations else "ok"
        if verdicts and not rep.recommendations and not notes:
            rep.notes.append("the scan reads the table whole: no filtered, joined or sorted column an index serves")

    # -- verifying -----------------------------------------------------------------------------

    def _hypopg_schema(self) -> str | None:
        """The schema of hypopg, created in this transaction when it can be; None when it
        cannot (the transaction is then begun again: call this first in it)."""
        if self._hypopg is False:
            return None
        if self.s.try_rows("CREATE EXTENSION IF NOT EXISTS hypopg") is None:
            self._hypopg = False
            self._begin()
            return None
        self._hypopg = True
        schema = self.s.value("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                              "WHERE e.extname = 'hypopg'")
        self._hypo_reset(schema)     # hypothetical indexes live in the session, not the transaction
        return schema

    def _hypo_reset(self, schema: str) -> None:
        self.s.rows(f"SELECT {plans.quote_ident(schema)}.hypopg_reset()")

    def _verify_all(self, job: Job, rep: QueryReport, before: plans.PlanFacts) -> None:
        self._begin()     # hypopg first in the transaction (its failure rolls the transaction back)
        hypo = self._hypopg_schema()
        if hypo is None and self.o.verify_with == "hypopg":
            rep.notes.append("hypopg is not available here (CREATE EXTENSION hypopg failed): verified by "
                             "building each index in a transaction that is rolled back")
        timed = None
        if hypo is None and not job.generic:
            timed = self._timed(job, before)
            rep.time_ms = timed.execution_ms
        for rec in rep.recommendations:
            try:
                self.s.rows("SAVEPOINT rayflow_verify")
                rec.verification = (self._by_hypopg(job, rec, before, hypo) if hypo is not None
                                    else self._by_building(job, rec, before, timed))
                self.s.rows("ROLLBACK TO SAVEPOINT rayflow_verify")
            except QueryError as exc:
                rec.verification = Verification("hypopg" if hypo else "transaction", before.paths,
                                                cost_before=before.cost, note=f"not verified: {exc}")
                self.s.rollback()
                self._begin()
                if hypo is not None:
                    hypo = self._hypopg_schema()

    def _by_hypopg(self, job: Job, rec: Recommendation, before: plans.PlanFacts, schema: str) -> Verification:
        fn = f"{plans.quote_ident(schema)}.hypopg_create_index"
        got = self.s.rows(f"SELECT indexrelid::bigint, indexname FROM {fn}($1)", (rec.ddl,))
        name = str(got[0][1]) if got else ""
        after = self.explain(job, analyze=False)
        self._hypo_reset(schema)
        return Verification("hypopg", before.paths, after.paths, before.cost, after.cost,
                            uses_index=any(f"using {name}" in p for p in after.paths) if name else False,
                            note="a hypothetical index (hypopg): plan cost only, no time measured")

    def _by_building(self, job: Job, rec: Recommendation, before: plans.PlanFacts,
                     timed: plans.PlanFacts | None) -> Verification:
        self.s.rows(rec.ddl)
        after = self._timed(job) if timed is not None else self.explain(job, analyze=False)
        return Verification("transaction", before.paths, after.paths, before.cost, after.cost,
                            timed.execution_ms if timed else None, after.execution_ms if timed else None,
                            uses_index=any(f"using {rec.index_name}" in p for p in after.paths),
                            note="index built in a transaction, then rolled back")

    # -- the database ------------------------------------------------------------------------

    def database(self) -> DatabaseReport:
        """Unused and duplicate indexes of the tables the queries read, and pg_stat_statements."""
        rep = DatabaseReport(self.s.shown, "postgresql")
        try:
            self._begin()
            indexes = self.catalog.indexes()
            rep.unused = unused(indexes)
            rep.duplicates = duplicates(indexes)
            reset = self.catalog.stats_reset()
            if rep.unused:
                since = f"since the statistics were reset ({reset})" if reset else "since the server's statistics began"
                rep.notes.append(f"unused: no scan counted {since}, on this server only (a replica counts its own)")
            rep.statements = self.catalog.statements()
        except QueryError as exc:
            rep.notes.append(f"index statistics not read: {exc}")
        finally:
            self.s.rollback_quietly()
        return rep
