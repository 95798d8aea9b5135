"""Connection URLs of SQL components: which database, and how to show the URL safely.

Accepted: ``postgresql://`` (or ``postgres://``), ``sqlite:///PATH`` (as the run store
reads it: relative, ``/absolute`` or ``~/``), ``sqlite://:memory:``, ``mysql://`` and
``mariadb://`` (``mysql+aiomysql://`` too). Pure: no I/O, no ray.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from rayflow.core.errors import ConfigError
from rayflow.core.redact import normalized, redact

DIALECTS = {"postgresql": "postgresql", "postgres": "postgresql", "sqlite": "sqlite",
            "mysql": "mysql", "mariadb": "mysql", "mysql+aiomysql": "mysql"}


@dataclass(frozen=True)
class SqlUrl:
    url: str            # as given (may hold a password: never shown)
    dialect: str        # postgresql | sqlite | mysql

    @property
    def shown(self) -> str:
        return redact(self.url)

    @property
    def sqlite_path(self) -> str:
        rest = self.url.split("://", 1)[1]
        if rest in (":memory:", "/:memory:"):
            return ":memory:"
        if not rest.startswith("/") or len(rest) < 2:
            raise ConfigError(f"SQL URL {self.shown!r} names no file; expected sqlite:///PATH")
        path = rest[1:].split("?", 1)[0]
        return os.path.expanduser(path)

    def mysql_params(self) -> dict:
        """aiomysql's connect() keywords from a mysql:// URL."""
        parts = urlsplit(normalized(self.url))
        params = {"host": parts.hostname or "127.0.0.1", "port": parts.port or 3306,
                  "user": unquote(parts.username or "root"), "password": unquote(parts.password or ""),
                  "db": (parts.path or "/").lstrip("/") or None}
        query = parse_qs(parts.query)
        if "charset" in query:
            params["charset"] = query["charset"][0]
        return params

    def postgres_uri(self) -> str:
        scheme, rest = self.url.split("://", 1)
        return normalized("postgresql://" + rest)


def parse(url: str) -> SqlUrl:
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"SQL URL {redact(str(url))!r}: expected postgresql://..., sqlite:///PATH or mysql://...")
    scheme = url.split("://", 1)[0].lower()
    dialect = DIALECTS.get(scheme)
    if dialect is None:
        raise ConfigError(f"SQL URL {redact(url)!r}: unknown scheme {scheme!r} "
                          f"(expected one of {', '.join(sorted(DIALECTS))})")
    return SqlUrl(url, dialect)
