"""Turns a run-store URL into a RunStore adapter.

Owns the accepted URL schemes, the default URL and the ``RAYFLOW_STORE`` environment
variable. Must not import an adapter's module until that adapter is asked for, so that
importing ``rayflow.store`` stays cheap. Shows a URL only redacted (``rayflow.core.redact``).

Accepted URLs:

    memory://                     a MemoryStore (process-local, for tests)
    sqlite:///relative/path.db    relative to the current directory
    sqlite:////absolute/path.db   absolute path (three slashes, then the path)
    sqlite:///~/.rayflow/x.db     under the home directory
    postgresql://USER@HOST:PORT/DB?schema=NAME&max_size=N
                                  a PostgresStore (needs asyncpg); postgres:// too. Pool
                                  settings in the query: see rayflow/store/pgurl.py
"""

from __future__ import annotations

import os

from rayflow.core import config
from rayflow.core.errors import ConfigError, RayflowError
from rayflow.core.redact import redact, scrub
from rayflow.store.port import RunStore

DEFAULT_STORE_URL = "sqlite:///~/.rayflow/rayflow.db"
STORE_ENV_VAR = "RAYFLOW_STORE"

_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_PREFIXES = ("postgresql://", "postgres://")
_ACCEPTED = ("memory://, sqlite:///PATH (relative, /absolute or ~/home-relative), "
             "postgresql://USER@HOST:PORT/DATABASE")


def sqlite_path(url: str) -> str:
    """The filesystem path named by a ``sqlite:///`` URL, with ``~`` expanded."""
    path = url[len(_SQLITE_PREFIX):]
    if not path:
        raise ConfigError(f"run store URL {redact(url)!r} names no file; expected sqlite:///PATH")
    return os.path.expanduser(path)


def open_store(url: str | None = None) -> RunStore:
    """Open the run store named by ``url``; ``None`` means $RAYFLOW_STORE or the default."""
    if url is None:
        url = config.store_url() or DEFAULT_STORE_URL
    url = url.strip()
    if url == "memory://":
        from rayflow.store.memory import MemoryStore

        return MemoryStore()
    if url.startswith(_SQLITE_PREFIX):
        from rayflow.store.sqlite import SqliteStore

        return SqliteStore(sqlite_path(url))
    if url.startswith(_POSTGRES_PREFIXES):
        return _open_postgres(url)
    raise ConfigError(f"unsupported run store URL {redact(url)!r}; accepted schemes: {_ACCEPTED}")


def _open_postgres(url: str) -> RunStore:
    try:
        from rayflow.store.postgres import PostgresStore
    except ModuleNotFoundError as exc:
        if exc.name != "asyncpg":
            raise
        raise ConfigError(
            "the PostgreSQL run store needs the asyncpg package, which is not installed; "
            "pip install 'asyncpg>=0.29' (or use sqlite:///PATH)"
        ) from None
    try:
        return PostgresStore(url)
    except RayflowError as exc:   # a driver's reason may quote a part of the URL: never its password
        exc.args = tuple(scrub(a, url) if isinstance(a, str) else a for a in exc.args)
        raise
