"""PostgreSQL run-store URLs: the connection-pool settings a ``postgresql://`` URL carries.

Owns the names, defaults and checks of those settings, the DSN handed to the driver
(the settings stripped, the password kept, user and password percent-encoded) and the
public form of the URL (password removed) that the store shows as ``url``; messages show
the URL redacted (``rayflow.core.redact``, which also says how a password holding
``@ / ? #`` unencoded is read). Must not import asyncpg or open a connection.

    postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE?schema=rayflow&max_size=20

Settings (query parameters; seconds may be fractional):

    schema              server's search_path  schema of the tables; created if missing
                                              (lower-case letters, digits, _)
    min_size            1     connections the pool keeps open
    max_size            10    connections the pool opens at most
    acquire_timeout     10    seconds to wait for a free connection; then StoreUnavailable
    connect_timeout     5     seconds to open one connection
    statement_timeout   30    seconds one statement may run (the server's
                              statement_timeout); 0: no limit
    max_idle_lifetime   300   close a connection idle this long (asyncpg's
                              max_inactive_connection_lifetime); 0: never
    max_lifetime        3600  close a connection this old when it is released; 0: never
    health_check_idle   30    ping (SELECT 1) a connection idle at least this long before
                              handing it out; 0: every time, inf: never

Every other query parameter (sslmode, application_name, ...) goes to asyncpg as it is.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from urllib.parse import parse_qsl, unquote, urlsplit

from rayflow.core.errors import ConfigError
from rayflow.core.redact import normalized, redact, secret_name, split_url

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class PoolSettings:
    """The pool settings of one store; the defaults are the module docstring's."""

    schema: str | None = None
    min_size: int = 1
    max_size: int = 10
    acquire_timeout: float = 10.0
    connect_timeout: float = 5.0
    statement_timeout: float = 30.0
    max_idle_lifetime: float = 300.0
    max_lifetime: float = 3600.0
    health_check_idle: float = 30.0

    @property
    def command_timeout(self) -> float | None:
        """The client's limit on one statement: the server's, plus slack for the network;
        it fires only when the server does not answer at all."""
        return self.statement_timeout + 5.0 if self.statement_timeout else None


SETTING_NAMES = frozenset(f.name for f in fields(PoolSettings))


@dataclass(frozen=True)
class PostgresUrl:
    """A parsed run-store URL. ``dsn`` holds the password: never show it."""

    public: str              # the URL as given, password removed
    dsn: str                 # for asyncpg: pool settings removed, password kept
    where: str               # HOST:PORT/DATABASE, for messages
    settings: PoolSettings
    passthrough: frozenset[str]   # names of the query parameters left for asyncpg

    def server_settings(self) -> dict[str, str]:
        """Session settings every pooled connection starts with."""
        ms = self.settings.statement_timeout * 1000
        out = {"statement_timeout": str(max(1, round(ms)) if ms else 0)}
        if "application_name" not in self.passthrough:
            out["application_name"] = "rayflow"
        if self.settings.schema:
            out["search_path"] = self.settings.schema
        return out


def parse_postgres_url(url: str) -> PostgresUrl:
    """Split ``url`` into the public URL, the driver's DSN and checked pool settings."""
    shown = redact(url)
    given = split_url(url)          # the user and password cut off first: they may hold @ / ? #
    scheme = given.head[:-3].lower()
    if scheme not in _SCHEMES:
        raise ConfigError(f"not a PostgreSQL URL: {shown!r}; expected postgresql://...")
    try:
        parts = urlsplit(f"{scheme}://{given.rest}")
    except ValueError as exc:       # a bad [IPv6] host
        raise ConfigError(f"run store URL {shown!r}: {exc}") from None
    pairs = [(piece, parse_qsl(piece, keep_blank_values=True)) for piece in parts.query.split("&") if piece]
    named = [(piece, kv[0]) for piece, kv in pairs if kv]   # (the text as given, (key, value))
    ours = {k: v for _, (k, v) in named if k in SETTING_NAMES}
    settings = _settings(ours, shown)
    public_query = "&".join(piece for piece, (k, _) in named if not secret_name(k))
    dsn_query = "&".join(piece for piece, (k, _) in named if k not in SETTING_NAMES)
    user = given.user or ""
    public = _join(scheme, _netloc(user, None, parts.netloc), parts.path, public_query)
    login = split_url(normalized(url))
    dsn = _join(scheme, _netloc(login.user or "", login.password, parts.netloc), parts.path, dsn_query)
    passthrough = frozenset(k for _, (k, _) in named if k not in SETTING_NAMES)
    return PostgresUrl(public, dsn, _where(parts, dict(kv for _, kv in named), user), settings, passthrough)


def _join(scheme: str, netloc: str, path: str, query: str) -> str:
    """The URL of these parts; unlike urlunsplit, keeps ``//`` when there is no host."""
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def _netloc(user: str, password: str | None, hostport: str) -> str:
    if password is not None:
        return f"{user}:{password}@{hostport}"
    return f"{user}@{hostport}" if user else hostport


def _where(parts, query: dict[str, str], user: str) -> str:
    host = parts.hostname or query.get("host") or "localhost"
    try:
        port = parts.port or query.get("port") or 5432
    except ValueError:
        port = "?"
    database = parts.path.lstrip("/") or query.get("dbname") or query.get("database") or unquote(user)
    return f"{host}:{port}/{database}"


def _settings(raw: dict[str, str], shown: str) -> PoolSettings:
    values: dict[str, object] = {}
    for f in fields(PoolSettings):
        if f.name in raw:
            values[f.name] = _setting(f.name, f.type, raw[f.name], shown)
    settings = PoolSettings(**values)  # type: ignore[arg-type]
    if settings.min_size > settings.max_size:
        raise ConfigError(
            f"run store URL {shown!r}: min_size={settings.min_size} is above "
            f"max_size={settings.max_size}; expected min_size <= max_size"
        )
    return settings


def _setting(name: str, kind: str, text: str, shown: str) -> object:
    """One query parameter, parsed and range-checked, or a ConfigError naming it."""
    if name == "schema":
        if not _SCHEMA_NAME.fullmatch(text):
            raise ConfigError(
                f"run store URL {shown!r}: schema={text!r} is not a plain schema name; "
                "expected lower-case letters, digits and _ (at most 63, not starting with a digit)"
            )
        return text
    is_int = kind == "int"
    try:
        value: float = int(text) if is_int else float(text)
    except ValueError:
        value = math.nan
    lowest = 1 if name in ("max_size",) else 0
    positive = name in ("acquire_timeout", "connect_timeout")
    endless = math.isinf(value) and name != "health_check_idle"   # only a ping may never be due
    if math.isnan(value) or endless or value < lowest or (positive and value <= 0) or (is_int and value > 10_000):
        expected = "an integer >= 1" if name == "max_size" else "an integer >= 0" if is_int else (
            "seconds > 0" if positive else "seconds >= 0")
        raise ConfigError(f"run store URL {shown!r}: {name}={text!r}; expected {expected}")
    return value
