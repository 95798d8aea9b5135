"""Setting aside what a run store refuses: which failures are the store's (retry the
batch later) and which are the records' (``store_unavailable``), and ``Salvage``, which
writes a refused chunk again in halves down to one record so that the rest lands.
Used by the store writer (rayflow.store.writer)."""

from __future__ import annotations

import logging
from typing import Any

from rayflow.core.errors import StoreUnavailable
from rayflow.store.port import RunStore

logger = logging.getLogger("rayflow.store")

DROPS_NAMED = 5           # records named in one warning about the records the store refused

# the store cannot take writes now: unreachable (PostgresStore and SqliteStore raise
# StoreUnavailable; a plain OSError is a socket's or a file's), or busy (SQLSTATE classes
# 08 connection, 40 serialization failure or deadlock, 53 insufficient resources, 55 lock
# not available, 57 statement timeout or shutdown, 58 I/O error): never the records' fault
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (StoreUnavailable, OSError, TimeoutError)
BUSY_SQLSTATES = ("08", "40", "53", "55", "57", "58")


def store_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says the store cannot take writes now,
    not that these records are wrong: such a batch is kept and retried. Any other failure
    (a value the codec or the database refuses, a constraint) is the records'."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, UNREACHABLE_ERRORS):
            return True
        state = getattr(seen, "sqlstate", None)   # asyncpg's server errors
        if isinstance(state, str) and state[:2] in BUSY_SQLSTATES:
            return True
        seen = seen.__cause__
    return False


class Salvage:
    """The records of a chunk the store refused, written again in halves down to one record
    (a run update: down to one field); what it still refuses is set aside. Any other
    failure on the way is raised: the whole chunk is retried later (every write is
    idempotent, so parts written twice change nothing)."""

    def __init__(self, store: RunStore, fences: dict[str, int]) -> None:
        self.store = store
        self.fences = fences or None
        self.lost: set[str] = set()
        self.refused: list[tuple[str, str, str, str]] = []   # (run_id, kind, what, error type)

    def write(self, kind: str, items: list[Any]) -> None:
        if not items:
            return
        try:
            self.lost |= self._write(kind, items)
            return
        except Exception as exc:
            if store_unavailable(exc):
                raise
            if len(items) == 1:
                self._refused(kind, items[0], exc)
                return
        mid = len(items) // 2
        self.write(kind, items[:mid])
        self.write(kind, items[mid:])

    def _write(self, kind: str, items: list[Any]) -> set[str]:
        if kind == "component":
            return self.store.write_batch(items, [], {}, self.fences)
        if kind == "event":
            return self.store.write_batch([], items, {}, self.fences)
        runs: dict[str, dict[str, Any]] = {}
        for run_id, fields in items:   # "run field": several items of one run, merged
            runs.setdefault(run_id, {}).update(fields)
        return self.store.write_batch([], [], runs, self.fences)

    def _refused(self, kind: str, item: Any, exc: Exception) -> None:
        if kind == "run update":
            run_id, fields = item
            if len(fields) > 1:   # the other fields (the run's status, say) still land
                self.write("run field", [(run_id, {name: value}) for name, value in fields.items()])
                return
            self.refused.append((run_id, kind, f"field {next(iter(fields))}", type(exc).__name__))
        elif kind == "run field":
            run_id, fields = item
            self.refused.append((run_id, "run update", f"field {next(iter(fields))}", type(exc).__name__))
        elif kind == "component":
            self.refused.append((item.run_id, kind, item.component_id, type(exc).__name__))
        else:
            self.refused.append((item.run_id, kind, f"seq {item.seq} ({item.kind})", type(exc).__name__))

    def report(self, url: str) -> None:
        """One warning per run, kind of record and error: the ids, never the values."""
        groups: dict[tuple[str, str, str], list[str]] = {}
        for run_id, kind, what, error in self.refused:
            groups.setdefault((run_id, kind, error), []).append(what)
        for (run_id, kind, error), whats in groups.items():
            more = f" and {len(whats) - DROPS_NAMED} more" if len(whats) > DROPS_NAMED else ""
            logger.warning(
                "run %s: the run store %s refused %d %s record(s) (%s), set aside: %s%s",
                run_id, url, len(whats), kind, error, ", ".join(whats[:DROPS_NAMED]), more,
            )
