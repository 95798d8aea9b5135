"""What the advisor is asked: the queries (``Job``) and how far to go (``Options``).

A ``Job`` is one query on one database: where it came from (``--query``, a spec's
component, a run's recorded spec, the run store's own statements), the URL (revealed: it
may hold a password, so it is never shown; ``shown`` is the redacted form), the values
of its parameters, or ``generic`` when they cannot be known (the plan is then the
generic one, made without values), or ``skip``: why it is not analysed at all. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERIFY_WITH = ("auto", "hypopg", "transaction")
DEFAULT_MIN_ROWS = 10_000


@dataclass
class Job:
    source: str
    url: str
    shown: str
    query: str
    params: list[Any] = field(default_factory=list)
    generic: bool = False
    skip: str | None = None
    search_path: str | None = None          # a PostgreSQL run store's schema
    store: bool = False                     # one of the run store's own statements

    def __repr__(self) -> str:              # never the URL as given
        return f"Job({self.source!r}, {self.shown!r})"


@dataclass(frozen=True)
class Options:
    analyze: bool = False                   # EXPLAIN ANALYZE (with BUFFERS) the queries themselves
    verify: bool = True                     # check each recommendation (module rayflow.connect.advise)
    verify_with: str = "auto"               # auto: hypopg when it can be created, else a transaction
    min_rows: int = DEFAULT_MIN_ROWS        # a sequential scan over fewer rows is fine
    repeat: int = 3                         # timed runs before and after an index (the best kept)
    statement_timeout_s: float = 120.0
    lock_timeout_s: float = 5.0
