"""One unit of SQL work on a pooled connection: a transaction, retried when transient.

``transaction(target, work)`` lends a connection, starts the transaction (read-only and a
statement timeout when asked), runs ``work(conn)``, commits (rolls back a read) and gives
the connection back; a transient failure (``rayflow.connect.sql.errors``) rolls back,
waits (exponential backoff with jitter) and tries again, up to the target's retries, on a
new connection when the old one was lost. Other failures, and the last transient one,
raise ``SqlError``: the component, the URL redacted, the database's message with every
secret scrubbed, one line. A ``Target`` is what every SQL component resolves first: the
URL revealed where it runs (``{$secret: NAME}``), its dialect, the retry policy. No ray.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from rayflow.connect.backoff import Backoff
from rayflow.connect.secrets import Revealed, marker_name
from rayflow.connect.sql import pool
from rayflow.connect.sql.drivers import Connection, driver_errors
from rayflow.connect.sql.errors import SqlConfigError, SqlError, is_transient
from rayflow.connect.sql.urls import SqlUrl, parse
from rayflow.core import notes
from rayflow.core.errors import ConfigError
from rayflow.core.redact import secrets_of

log = logging.getLogger("rayflow.connect")
T = TypeVar("T")
DEFAULT_RETRIES = 8          # about 25 s of backoff in all: a PostgreSQL restart fits
DEFAULT_BASE_S = 0.2
DEFAULT_CAP_S = 5.0


@dataclass
class Target:
    """A SQL component's database, revealed where it runs."""

    component: str
    url: SqlUrl
    revealed: Revealed
    backoff: Backoff
    shown: str = ""      # the database as messages name it: the secret's name, or the URL redacted

    @property
    def dialect(self) -> str:
        return self.url.dialect

    def wait_to_retry(self, what: str, exc: BaseException, attempt: int) -> None:
        """Count and log a transient failure of try ``attempt``, then wait the backoff."""
        wait = self.backoff.delay(attempt)
        report(self, retries=1)
        log.warning("%s", self.revealed.scrub(
            f"component {self.component!r}: {what} on {self.shown}: transient {type(exc).__name__} "
            f"(try {attempt} of {self.backoff.retries + 1}); again in {wait:.2f} s"))
        time.sleep(wait)

    def fail(self, what: str, exc: BaseException) -> SqlError:
        message = " ".join(str(exc).split()) or type(exc).__name__
        return SqlError(self.revealed.scrub(
            f"component {self.component!r}: {what} on {self.shown} failed: {type(exc).__name__}: {message}"))


def target(url: Any, *, component: str, retries: int | None = None) -> Target:
    revealed = Revealed()
    try:
        plain = revealed.reveal(url)
        if not isinstance(plain, str):
            raise SqlConfigError(f"component {component!r} field 'url': expected a URL or "
                                 f"{{$secret: NAME}}, got {type(plain).__name__}")
        name = marker_name(url)
        if name is None:   # a literal URL: its password (if any) is the secret, not the URL
            revealed.add(*secrets_of(plain))
        else:
            revealed.add(plain)
        u = parse(plain)
    except ConfigError as exc:
        raise SqlConfigError(revealed.scrub(f"component {component!r} field 'url': {exc}")) from None
    n = DEFAULT_RETRIES if retries is None else retries
    shown = f"the database of secret {name!r}" if name is not None else u.shown
    return Target(component, u, revealed, Backoff(retries=n, base_s=DEFAULT_BASE_S, cap_s=DEFAULT_CAP_S), shown)


def report(t: Target, **sums: float) -> None:
    """Add to the call's SQL figures (``rayflow.core.notes``): ``sums``, and the pool of its URL."""
    notes.add(t.component, "sql", sums=sums, latest={"pool": pool.stats_of(t.url)})


def begin(conn: Connection, *, read_only: bool, statement_timeout_s: float | None) -> None:
    """Start the transaction as asked (each statement here is fixed text: no value of a user's)."""
    if conn.dialect == "postgresql":
        if read_only:
            conn.execute("SET TRANSACTION READ ONLY")
        if statement_timeout_s:
            conn.execute(f"SET LOCAL statement_timeout = {int(statement_timeout_s * 1000)}")
    elif conn.dialect == "mysql":
        conn.execute(f"SET SESSION max_statement_time = {float(statement_timeout_s or 0):.3f}")
        if read_only:
            conn.commit()
            conn.execute("START TRANSACTION READ ONLY")
    elif conn.dialect == "sqlite":
        conn.execute(f"PRAGMA query_only = {1 if read_only else 0}")


def transaction(t: Target, work: Callable[[Connection], T], *, what: str, read_only: bool = False,
                statement_timeout_s: float | None = None) -> T:
    """``work(conn)`` in one transaction, retried while its failure is transient (module doc)."""
    errors = driver_errors()
    attempt = 0
    while True:
        attempt += 1
        try:
            with pool.lent(t.url) as conn:
                begin(conn, read_only=read_only, statement_timeout_s=statement_timeout_s)
                result = work(conn)
                if read_only:
                    conn.rollback()
                else:
                    conn.commit()
            report(t, statements=1)
            return result
        except errors as exc:
            if not is_transient(exc) or attempt > t.backoff.retries:
                raise t.fail(what, exc) from None
            t.wait_to_retry(what, exc, attempt)
        except TimeoutError as exc:   # the pool had no free connection
            raise t.fail(what, exc) from None
