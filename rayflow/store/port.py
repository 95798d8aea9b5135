"""The RunStore port and the plain records that cross it.

Owns the contract every store adapter (memory, SQLite, later PostgreSQL) fulfils;
tests/contracts/test_run_store.py runs the same suite against each. Records are
plain dataclasses of JSON-friendly values. Must not import any database driver.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from rayflow.core.states import TERMINAL_RUN_STATES, RunStatus  # noqa: F401 - TERMINAL_RUN_STATES re-exported

RUN_STATES = tuple(s.value for s in RunStatus)


@dataclass
class RunRecord:
    """One workflow run. Times are UNIX seconds (float); ``None`` until known."""

    run_id: str
    name: str
    status: str = "PENDING"
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    target: str = ""                 # what was run: "module:workflow" or a spec path
    inputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None         # one-line reason when FAILED
    owner: str = ""                  # host:pid of the process driving the run
    cancel_requested: bool = False
    n_components: int = 0
    summary: dict[str, Any] = field(default_factory=dict)   # metrics at the end of the run
    heartbeat_at: float | None = None   # the owner's last sign of life while it drives the run (its lease)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class ComponentRecord:
    """The latest known state of one component within one run."""

    run_id: str
    component_id: str
    state: str = "PENDING"
    attempts: int = 0
    submitted_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    queued_s: float | None = None
    duration_s: float | None = None
    node_id: str | None = None
    worker_id: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)   # requested: num_cpus, memory, ...
    error: str | None = None
    cached: bool = False
    upstream: list[str] = field(default_factory=list)
    cpu_s: float | None = None             # CPU time the call used, measured in the worker
    peak_rss_bytes: int | None = None      # peak resident memory of the worker during the call
    features: dict[str, Any] = field(default_factory=dict)   # what the resource model learns from:
    # fn ("module:qualname"), fp (code fingerprint), config (numeric literal arguments),
    # n_up (upstreams), input_bytes and input_rows (measured in the worker), sized (auto sizing)
    outcome: dict[str, Any] = field(default_factory=dict)   # what the call reported beyond its
    # timings: a dynamic map's items, succeeded, failed, cancelled, item_s, durations_s, errors

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EventRecord:
    """One state change. ``seq`` increases by one per run, starting at 1, with no gaps."""

    run_id: str
    seq: int
    ts: float
    kind: str                         # e.g. "run_state", "component_state"
    component_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class CacheRows(Protocol):
    """Result-cache entries kept in the run store (the cache's store tier, L3): opaque bytes
    under a key, with an optional expiry (UNIX seconds). Keys start with the component id
    and ``:`` (``clear`` with that prefix drops one component's entries)."""

    def cache_get(self, key: str, now: float) -> bytes | None:
        """The bytes under ``key``; None when absent or expired (an expired row is deleted)."""

    def cache_put(self, key: str, data: bytes, expires_at: float | None, now: float) -> None: ...

    def cache_delete(self, key: str) -> None: ...

    def cache_clear(self, prefix: str | None = None) -> int:
        """Drop the entries whose key starts with ``prefix`` (all when None); how many."""

    def cache_usage(self) -> tuple[int, int]:
        """(entries, bytes) held now."""


@runtime_checkable
class RunStore(Protocol):
    """Where runs, their components and their events are kept.

    Writes are idempotent where they can be: ``upsert_components`` replaces the row of
    each (run_id, component_id); ``append_events`` ignores a (run_id, seq) it already has.
    Every method is safe to call from several threads; several processes may share
    one durable store.
    """

    url: str

    def create_run(self, run: RunRecord, components: list[ComponentRecord]) -> None: ...

    def update_run(self, run_id: str, **fields: Any) -> None: ...

    def upsert_components(self, records: list[ComponentRecord]) -> None: ...

    def append_events(self, events: list[EventRecord]) -> None: ...

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def list_runs(self, status: str | None = None, limit: int = 100) -> list[RunRecord]: ...

    def get_components(self, run_id: str) -> list[ComponentRecord]: ...

    def get_events(self, run_id: str, after_seq: int = 0, limit: int = 10_000) -> list[EventRecord]: ...

    def request_cancel(self, run_id: str) -> bool: ...

    def claim_run(self, run_id: str, owner: str, now: float, stale_before: float) -> bool:
        """Take the run's lease, atomically: set ``owner``, ``heartbeat_at=now`` and status
        RUNNING, but only if the run is not SUCCEEDED and no one holds a live lease
        (``heartbeat_at`` is None or older than ``stale_before``). True when taken; two
        claims at once (any processes) never both win."""

    def cancel_requested(self, run_id: str) -> bool: ...

    def close(self) -> None: ...
