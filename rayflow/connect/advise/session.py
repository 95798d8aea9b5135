"""The advisor's connection to one database: open it, run a statement, read rows, roll back.

Owns the one DB-API connection per database (``rayflow.connect.sql.drivers.dbapi_connect``:
ADBC for PostgreSQL and SQLite; never in autocommit, so every change the advisor makes
lives in a transaction it rolls back), a connect timeout, PostgreSQL reads through plain
queries rather than ``COPY`` (which EXPLAIN and the utility statements cannot run in),
and errors as one line with no secret: ``ConfigError`` when the database cannot be
reached (``rayflow db advise`` exits 2), ``QueryError`` for one statement that failed.
"""

from __future__ import annotations

import contextlib
from typing import Any

from rayflow.connect.secrets import Revealed
from rayflow.connect.sql.drivers import dbapi_connect, driver_errors
from rayflow.connect.sql.urls import SqlUrl, parse
from rayflow.core.errors import ConfigError
from rayflow.core.redact import redact, scrub, split_url

CONNECT_TIMEOUT_S = 10
_PG_OPTIONS = {"adbc.postgresql.use_copy": "false"}


class QueryError(Exception):
    """One statement failed; the message is one line without secrets."""


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _with_timeout(url: str) -> str:
    if "connect_timeout" in split_url(url).rest:
        return url
    return f"{url}{'&' if '?' in split_url(url).rest else '?'}connect_timeout={CONNECT_TIMEOUT_S}"


class Session:
    """One connection (module doc). ``shown``: the URL as messages show it."""

    def __init__(self, url: str, *, shown: str | None = None, search_path: str | None = None,
                 revealed: Revealed | None = None) -> None:
        self._url = url
        self._revealed = revealed or Revealed()
        self._revealed.add(url)
        u: SqlUrl = parse(url)
        self.dialect = u.dialect
        self.shown = shown or u.shown
        if self.dialect not in ("postgresql", "sqlite"):
            raise ConfigError(f"{self.shown}: the advisor reads PostgreSQL and SQLite databases")
        target = parse(_with_timeout(url)) if self.dialect == "postgresql" else u
        try:
            self._conn = dbapi_connect(target)
        except (*driver_errors(), ValueError) as exc:
            raise ConfigError(f"cannot connect to {self.shown}: {self.reason(exc)}") from None
        try:
            if search_path:
                self.rows("SELECT set_config('search_path', $1, false)", (search_path,))
                self._conn.commit()
            else:
                self.rows("SELECT 1")
                self.rollback()
        except QueryError as exc:
            self.close()
            raise ConfigError(f"cannot use {self.shown}: {exc}") from None

    def reason(self, exc: BaseException) -> str:
        """The driver's message in one line: the statement it repeats and the position
        marker left out, no secret in it."""
        text = str(exc)
        start = text.find("Failed to execute query '")
        end = text.find("': ERROR:", start)
        if start >= 0 and end > start:
            text = text[:start] + text[end + 3:]
        for cut in ("\nLINE ", "\nQuery was:", "\n. SQLSTATE"):
            text = text.split(cut)[0]
        return one_line(self._revealed.scrub(scrub(text, self._url))) or type(exc).__name__

    def _cursor(self) -> Any:
        cur = self._conn.cursor()
        if self.dialect == "postgresql":
            cur.adbc_statement.set_options(**_PG_OPTIONS)
        return cur

    def rows(self, sql: str, params: tuple | list | None = None) -> list[tuple]:
        """The rows of ``sql`` (none for a statement that returns none); QueryError."""
        try:
            cur = self._cursor()
        except driver_errors() as exc:
            raise QueryError(self.reason(exc)) from None
        try:
            cur.execute(sql, tuple(params) if params else None)
            return cur.fetchall() if cur.description else []
        except driver_errors() as exc:
            raise QueryError(self.reason(exc)) from None
        finally:
            with contextlib.suppress(Exception):
                cur.close()

    def value(self, sql: str, params: tuple | list | None = None) -> Any:
        got = self.rows(sql, params)
        return got[0][0] if got else None

    def try_rows(self, sql: str, params: tuple | list | None = None) -> list[tuple] | None:
        """``rows``, or None when the statement fails. On PostgreSQL a failed statement
        aborts the transaction, and the driver takes no statement before a rollback: the
        transaction is then rolled back whole, so call this where nothing before it in the
        transaction is still needed (at its start)."""
        try:
            return self.rows(sql, params)
        except QueryError:
            if self.dialect == "postgresql":
                self.rollback()
            return None

    def rollback(self) -> None:
        try:
            self._conn.rollback()
        except driver_errors() as exc:
            raise QueryError(self.reason(exc)) from None

    def rollback_quietly(self) -> None:
        """``rollback``, a failure ignored: the end of a step whose own outcome is already told."""
        with contextlib.suppress(QueryError):
            self.rollback()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.rollback()
        with contextlib.suppress(Exception):
            self._conn.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Session({redact(self.shown)!r})"
