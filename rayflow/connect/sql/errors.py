"""Which SQL failures are transient (retried with backoff) and how a failure reads.

Transient: the connection was lost or refused (the server restarting, a network blip),
PostgreSQL's serialization failure (40001), deadlock (40P01), admin shutdown or "cannot
connect now" (57P01-57P03), connection exceptions (08xxx), too many connections (53300);
MySQL/MariaDB's deadlock (1213), lock wait timeout (1205), server gone away or lost
(2006, 2013), cannot connect (2002, 2003), too many connections (1040); SQLite's "database
is locked"/"busy". Anything else (a syntax error, a missing table, a constraint) fails the
component with the database's message, its secrets scrubbed. Pure: no I/O, no ray.
"""

from __future__ import annotations

from rayflow.connect.sql.drivers import mysql_errno, sqlstate
from rayflow.core.errors import RayflowError

_PG_TRANSIENT = {"40001", "40P01", "57P01", "57P02", "57P03", "53300", "55P03"}
_MYSQL_TRANSIENT = {1040, 1205, 1213, 2002, 2003, 2006, 2013, 2055}
_TEXT_TRANSIENT = ("connection refused", "server closed the connection", "terminating connection",
                   "connection reset", "broken pipe", "could not connect", "connection to server",
                   "database is locked", "database is busy", "lost connection", "gone away",
                   "no connection to the server", "the database system is", "eof detected",
                   "connection is closed", "connection not open")


class SqlError(RayflowError):
    """A SQL component failed: the database's message, naming the component and the URL
    (its password shown as ***)."""


class SqlConfigError(RayflowError, ValueError):
    """A SQL component is configured wrongly (mode, table, key, columns, placeholders)."""


def is_transient(exc: BaseException) -> bool:
    state = sqlstate(exc)
    if state is not None:
        return state in _PG_TRANSIENT or state.startswith("08")
    errno = mysql_errno(exc)
    if errno is not None and errno in _MYSQL_TRANSIENT:
        return True
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    text = str(exc).lower()
    return any(t in text for t in _TEXT_TRANSIENT)


def is_connection_lost(exc: BaseException) -> bool:
    """A failure after which the connection cannot be used again (so it leaves the pool)."""
    state = sqlstate(exc)
    if state is not None and (state.startswith("08") or state.startswith("57P")):
        return True
    return is_transient(exc) and state not in ("40001", "40P01", "55P03")
