"""Turns a run-store URL into a RunStore adapter.

Owns the accepted URL schemes, the default URL and the ``RAYFLOW_STORE`` environment
variable. Must not import an adapter's module until that adapter is asked for, so that
importing ``rayflow.store`` stays cheap.

Accepted URLs:

    memory://                     a MemoryStore (process-local, for tests)
    sqlite:///relative/path.db    relative to the current directory
    sqlite:////absolute/path.db   absolute path (three slashes, then the path)
    sqlite:///~/.rayflow/x.db     under the home directory
"""

from __future__ import annotations

import os

from rayflow.errors import ConfigError
from rayflow.store.port import RunStore

DEFAULT_STORE_URL = "sqlite:///~/.rayflow/rayflow.db"
STORE_ENV_VAR = "RAYFLOW_STORE"

_SQLITE_PREFIX = "sqlite:///"
_ACCEPTED = "memory://, sqlite:///PATH (relative, /absolute or ~/home-relative)"


def sqlite_path(url: str) -> str:
    """The filesystem path named by a ``sqlite:///`` URL, with ``~`` expanded."""
    path = url[len(_SQLITE_PREFIX):]
    if not path:
        raise ConfigError(f"run store URL {url!r} names no file; expected sqlite:///PATH")
    return os.path.expanduser(path)


def open_store(url: str | None = None) -> RunStore:
    """Open the run store named by ``url``; ``None`` means $RAYFLOW_STORE or the default."""
    if url is None:
        url = os.environ.get(STORE_ENV_VAR) or DEFAULT_STORE_URL
    url = url.strip()
    if url == "memory://":
        from rayflow.store.memory import MemoryStore

        return MemoryStore()
    if url.startswith(_SQLITE_PREFIX):
        from rayflow.store.sqlite import SqliteStore

        return SqliteStore(sqlite_path(url))
    if url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "PostgreSQL run store is not available yet in this version; use sqlite:///PATH"
        )
    raise ConfigError(f"unsupported run store URL {url!r}; accepted schemes: {_ACCEPTED}")
