"""The query and index advisor behind ``rayflow db advise``: which queries read whole large
tables, which index would serve them (verified, and measured), which indexes are never used
or duplicate another.

``advise(jobs, options)`` opens one session per database (``session``), runs each job
(``job``: from ``sources``) through the dialect's advisor (``postgres``: EXPLAIN JSON
walked by ``plans``, the catalog read by ``pgcatalog``; ``sqlite``: EXPLAIN QUERY PLAN and
the query's own clauses, read by ``sqltext``), judges the indexes of the tables the
queries read (``indexes``) and gathers a ``results.Report``; ``report`` renders it. Every
change the advisor makes to a database (an index built to measure it, hypopg created) is
made in a transaction that is rolled back. No ray.
"""

from __future__ import annotations

from rayflow.connect.advise.job import DEFAULT_MIN_ROWS, VERIFY_WITH, Job, Options
from rayflow.connect.advise.results import (
    DatabaseReport,
    QueryReport,
    Recommendation,
    Report,
    Verification,
)
from rayflow.connect.advise.session import Session
from rayflow.connect.advise.sqltext import read_only, tokenize

__all__ = ["DEFAULT_MIN_ROWS", "VERIFY_WITH", "DatabaseReport", "Job", "Options", "QueryReport",
           "Recommendation", "Report", "Verification", "advise"]

TOP_STATEMENTS = 10


def _skipped(job: Job) -> QueryReport:
    dialect = "postgresql" if job.url.lower().startswith(("postgres://", "postgresql://")) else \
        "sqlite" if job.url.lower().startswith("sqlite:") else "-"
    return QueryReport(job.source, job.shown, dialect, job.query, status="skipped",
                       verdict=f"skipped: {job.skip}", params=len(job.params))


def _store_statements(advisor, jobs: list[Job], report: Report) -> list[Job]:
    """A PostgreSQL store's most costly reads from pg_stat_statements, when it has them;
    else ``jobs`` (the representative list)."""
    from rayflow.connect.advise.sources import STORE_TABLES

    found = advisor.catalog.statements(limit=50)
    advisor.s.rollback()
    picked = []
    for entry in found.get("top", []):
        words = {t.value.lower() for t in tokenize(entry["query"]) if t.kind in ("ident", "qident")}
        if read_only(entry["query"]) and words & set(STORE_TABLES):
            picked.append(Job(f"store (pg_stat_statements: {entry['calls']} calls, {entry['total_ms']:.0f} ms)",
                              jobs[0].url, jobs[0].shown, entry["query"], generic=True,
                              search_path=jobs[0].search_path, store=True))
    if not picked:
        why = found.get("note") or "it holds no read of the store's tables"
        report.notes.append(f"the store's representative reads (pg_stat_statements: {why})")
        return jobs
    report.notes.append("the store's reads that took the most time (pg_stat_statements)")
    return picked[:TOP_STATEMENTS]


def advise(jobs: list[Job], options: Options | None = None) -> Report:
    """Advise on every job (module doc); ConfigError when a database cannot be reached."""
    from rayflow.connect.advise.postgres import PgAdvisor
    from rayflow.connect.advise.sqlite import SqliteAdvisor

    options = options or Options()
    report = Report()
    groups: dict[tuple[str, str | None], list[Job]] = {}
    for job in jobs:
        if job.skip:
            continue
        groups.setdefault((job.url, job.search_path), []).append(job)
    done: dict[int, QueryReport] = {}
    extra: list[QueryReport] = []
    for (url, search_path), group in groups.items():
        with Session(url, shown=group[0].shown, search_path=search_path) as session:
            advisor = PgAdvisor(session, options) if session.dialect == "postgresql" else \
                SqliteAdvisor(session, options)
            todo = group
            if session.dialect == "postgresql" and all(j.store for j in group):
                todo = _store_statements(advisor, group, report)
            for job in todo:
                rep = advisor.advise(job)
                if any(job is g for g in group):
                    done[id(job)] = rep
                else:
                    extra.append(rep)
            report.databases.append(advisor.database())
    for job in jobs:
        if job.skip:
            report.queries.append(_skipped(job))
        elif id(job) in done:
            report.queries.append(done[id(job)])
    report.queries.extend(extra)
    return report
