"""One query's advice, the part both databases share: skipping what is no single read, and
running the rest inside a transaction that is always rolled back.

``advise_one(job, dialect, session, body)`` makes the query's report, marks it skipped
(the job says why, or it is not one read statement), else calls ``body(rep)`` and rolls
back whatever it did, a failed statement becoming the report's error. No ray.
"""

from __future__ import annotations

from collections.abc import Callable

from rayflow.connect.advise.job import Job
from rayflow.connect.advise.results import QueryReport
from rayflow.connect.advise.session import QueryError, Session
from rayflow.connect.advise.sqltext import one_statement, read_only


def advise_one(job: Job, dialect: str, session: Session, body: Callable[[QueryReport], None]) -> QueryReport:
    rep = QueryReport(job.source, job.shown, dialect, job.query, params=len(job.params), generic=job.generic)
    if job.skip:
        rep.status, rep.verdict = "skipped", f"skipped: {job.skip}"
        return rep
    if not one_statement(job.query) or not read_only(job.query):
        rep.status, rep.verdict = "skipped", "skipped: not a single read (SELECT, WITH, VALUES or TABLE)"
        return rep
    try:
        body(rep)
    except QueryError as exc:
        rep.status, rep.verdict = "error", f"error: {exc}"
    finally:
        try:
            session.rollback()
        except QueryError as exc:
            rep.notes.append(f"rollback failed: {exc}")
    return rep
