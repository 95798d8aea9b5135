"""What the advisor answers: one ``QueryReport`` per query, one ``DatabaseReport`` per
database, gathered in a ``Report``; each becomes JSON through ``to_dict``.

Owns the shape of ``rayflow db advise --json`` (docs in ``rayflow.cli.db``): a query's
status (``ok``, ``advice``, ``skipped``, ``error``) and one-line verdict, its
recommendations with their DDL and ``Verification`` (plan cost and measured time before
and after, the speed-up), and per database the unused and duplicate indexes and what
``pg_stat_statements`` says. No URL here holds a password (``redact``). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rayflow.connect.advise.indexes import Duplicate, IndexInfo


@dataclass
class Verification:
    method: str                            # hypopg | transaction | sqlite-transaction
    plan_before: list[str] = field(default_factory=list)
    plan_after: list[str] = field(default_factory=list)
    cost_before: float | None = None
    cost_after: float | None = None
    time_before_ms: float | None = None
    time_after_ms: float | None = None
    uses_index: bool = False               # the new plan reads the new index
    note: str | None = None

    @property
    def speedup(self) -> float | None:
        """Measured time before / after (None where not measured)."""
        if self.time_before_ms is None or not self.time_after_ms:
            return None
        return self.time_before_ms / self.time_after_ms

    @property
    def cost_ratio(self) -> float | None:
        if self.cost_before is None or not self.cost_after:
            return None
        return self.cost_before / self.cost_after

    @property
    def failed(self) -> bool:
        """The verification could not run (the note says why)."""
        return bool(self.note and self.note.startswith("not verified"))

    @property
    def helps(self) -> bool:
        """The index is used, and the plan is cheaper (or, without costs, faster)."""
        if not self.uses_index:
            return False
        if self.cost_before is not None and self.cost_after is not None:
            return self.cost_after < self.cost_before
        return self.speedup is None or self.speedup > 1.0      # SQLite: no costs; times where known

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "speedup": _round(self.speedup), "cost_ratio": _round(self.cost_ratio),
                "helps": self.helps}


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Recommendation:
    table: str
    columns: list[str]
    reason: str                            # filter | join | sort
    index_name: str
    ddl: str
    schema: str | None = None
    rows: float | None = None              # the table's rows
    verification: Verification | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["verification"] = self.verification.to_dict() if self.verification else None
        return out


@dataclass
class QueryReport:
    source: str                            # where the query came from: --query, a component, the store
    database: str                          # the URL, redacted
    dialect: str
    query: str
    status: str = "ok"                     # ok | advice | skipped | error
    verdict: str = "ok"
    params: int = 0                        # how many values were bound (never shown)
    generic: bool = False                  # planned without parameter values (a generic plan)
    cost: float | None = None
    time_ms: float | None = None
    plan: list[str] = field(default_factory=list)
    seq_scans: list[dict[str, Any]] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)
    rejected: list[Recommendation] = field(default_factory=list)   # verified: no gain
    notes: list[str] = field(default_factory=list)

    def settle(self) -> None:
        """After verification: a candidate the planner ignores, or that makes the plan no
        cheaper, is no recommendation (it moves to ``rejected``)."""
        keep = []
        for r in self.recommendations:
            v = r.verification
            if v is None or v.failed or v.helps:
                keep.append(r)
            else:
                self.rejected.append(r)
                why = "the planner does not use it" if not v.uses_index else "no cheaper plan with it"
                self.notes.append(f"tried {r.ddl}: {why}")
        self.recommendations = keep
        self.status = "advice" if keep else "ok"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["recommendations"] = [r.to_dict() for r in self.recommendations]
        out["rejected"] = [r.to_dict() for r in self.rejected]
        return out


@dataclass
class DatabaseReport:
    database: str
    dialect: str
    unused: list[IndexInfo] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    unused_known: bool = True              # SQLite counts no index scans
    statements: dict[str, Any] = field(default_factory=dict)   # pg_stat_statements
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"database": self.database, "dialect": self.dialect, "unused_known": self.unused_known,
                "unused": [i.to_dict() for i in self.unused], "duplicates": [d.to_dict() for d in self.duplicates],
                "statements": self.statements, "notes": self.notes}


@dataclass
class Report:
    queries: list[QueryReport] = field(default_factory=list)
    databases: list[DatabaseReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        recs = sum(len(q.recommendations) for q in self.queries)
        return {"queries": [q.to_dict() for q in self.queries],
                "databases": [d.to_dict() for d in self.databases],
                "summary": {"queries": len(self.queries), "recommendations": recs,
                            "skipped": sum(q.status == "skipped" for q in self.queries),
                            "errors": sum(q.status == "error" for q in self.queries),
                            "unused": sum(len(d.unused) for d in self.databases),
                            "duplicates": sum(len(d.duplicates) for d in self.databases)},
                "notes": self.notes}
