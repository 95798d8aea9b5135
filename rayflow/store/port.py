"""The RunStore port and the plain records that cross it.

Owns the contract every store adapter (memory, SQLite, PostgreSQL) fulfils;
tests/contracts/test_run_store.py (and test_model_rows.py for the models a store keeps)
runs the same suite against each. Records are
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
    heartbeat_at: float | None = None   # the owner's last sign of life while it drives the run (its lease),
    # on the database's clock (``RunStore.db_now``)
    lease_epoch: int = 0             # the fencing token: +1 at every claim; an owner's writes check it
    spec: dict[str, Any] = field(default_factory=dict)   # the spec the run was planned from (when it came
    # from one): any server can plan the run again from it, without the file it was read from

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
    traceback: str | None = None           # a failed component's traceback, the user's own frames

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


@dataclass(frozen=True)
class Lease:
    """A claim on driving one run: ``epoch`` is the fencing token its writes carry."""

    run_id: str
    owner: str
    epoch: int


@dataclass
class TokenRecord:
    """An API token of the server. Only its hash is kept (``token_hash``: SHA-256 hex)."""

    token_id: str
    name: str
    scope: str                       # read | submit | admin
    token_hash: str
    created_at: float = 0.0
    revoked_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WorkflowRecord:
    """A workflow registered with the server, by name: a spec, or an import path."""

    name: str
    spec: dict[str, Any] = field(default_factory=dict)
    target: str = ""                 # "module:attr" when not a spec
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ServerRecord:
    """A live ``rayflow server`` (its heartbeat on the database's clock)."""

    server_id: str
    url: str
    host: str = ""
    pid: int = 0
    started_at: float = 0.0
    heartbeat_at: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

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

    def create_run(self, run: RunRecord, components: list[ComponentRecord]) -> None:
        """Insert ``run`` and upsert ``components``, atomically, only if the run's id is new;
        otherwise raise ``RunExists`` and change nothing (an existing run, finished or not,
        is never reset). Two creates of one id at once: exactly one succeeds."""

    def update_run(self, run_id: str, **fields: Any) -> None: ...

    def upsert_components(self, records: list[ComponentRecord]) -> None: ...

    def append_events(self, events: list[EventRecord]) -> None: ...

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def list_runs(self, status: str | None = None, limit: int = 100) -> list[RunRecord]: ...

    def get_components(self, run_id: str) -> list[ComponentRecord]: ...

    def get_events(self, run_id: str, after_seq: int = 0, limit: int = 10_000) -> list[EventRecord]: ...

    def request_cancel(self, run_id: str) -> bool: ...

    def cancel_requested(self, run_id: str) -> bool: ...

    def close(self) -> None: ...

    # -- leases (fenced) -----------------------------------------------------------------

    def db_now(self) -> float:
        """The database's clock, UNIX seconds: every lease time is on it, not the caller's."""

    def insert_run(self, run: RunRecord) -> bool:
        """Insert ``run`` only if its id is new; False (nothing changed) when it exists."""

    def claim_run(self, run_id: str, owner: str, lease_s: float, *, force: bool = False) -> Lease | None:
        """Take the run's lease, atomically: unless it SUCCEEDED, and unless someone holds a
        live lease (``heartbeat_at`` within ``lease_s`` of ``db_now``; ``force`` ignores it),
        set ``owner``, ``heartbeat_at=db_now``, status RUNNING and ``lease_epoch + 1``.
        Two claims at once (any processes) never both win."""

    def claim_next(self, owner: str, lease_s: float, limit: int) -> list[Lease]:
        """Claim up to ``limit`` runs any server can drive, oldest first: PENDING or RUNNING,
        with no live lease, planned from something another process can plan again (a
        ``spec``, or a ``target`` that is not ``__main__:...``). Safe under concurrency
        (PostgreSQL: ``FOR UPDATE SKIP LOCKED``): a run goes to one claimer."""

    def renew_lease(self, lease: Lease) -> bool:
        """``heartbeat_at = db_now`` if ``lease`` still holds the run (owner and epoch) and
        its heartbeat is set: a run's last write (``heartbeat_at=None``) ends the lease, and a
        renewal that lands after it must not revive it."""

    def release_lease(self, lease: Lease, *, status: str | None = None) -> bool:
        """End ``lease`` (owner '', heartbeat_at None; ``status`` set when given) if it still
        holds the run; the epoch stays, so the old owner's late writes stay fenced."""

    def write_batch(self, components: list[ComponentRecord], events: list[EventRecord],
                    runs: dict[str, dict[str, Any]], fences: dict[str, int] | None = None) -> set[str]:
        """One writer cycle in one transaction: components, events, then run updates. The
        records of a run in ``fences`` are written only while its ``lease_epoch`` equals the
        fence (checked in the transaction, the row locked against claims); a fenced update
        of ``heartbeat_at`` not None takes ``db_now``. Returns the fenced run ids whose
        records were dropped (their lease was taken over)."""

    # -- the server's records -------------------------------------------------------------

    def list_runs_page(self, *, status: str | None = None, name: str | None = None, limit: int = 100,
                       before: tuple[float, str] | None = None, since: float | None = None) -> list[RunRecord]:
        """Newest first by (created_at, run_id); ``before``: only runs strictly older than
        that key (cursor pagination); ``name``: one workflow's runs; ``since``: only runs
        created at or after that time."""

    def count_runs(self, *, name: str | None = None, since: float | None = None) -> dict[str, int]:
        """How many runs are in each status (statuses with none are left out), of one
        workflow (``name``) and created at or after ``since`` when given."""

    def create_token(self, token: TokenRecord) -> None: ...

    def get_token(self, token_hash: str) -> TokenRecord | None:
        """The token with that hash, revoked or not (the caller checks ``revoked_at``)."""

    def list_tokens(self) -> list[TokenRecord]: ...

    def revoke_token(self, token_id: str, now: float) -> bool: ...

    def delete_runs(self, run_ids: list[str]) -> int:
        """Delete these runs' rows (the run, its components, events and idempotency keys),
        in one transaction; a run that is not finished (PENDING, RUNNING) or unknown is
        left. How many runs were deleted (``rayflow gc --rows``)."""

    def insert_run_once(self, run: RunRecord, key: str, body_hash: str, now: float) -> tuple[str, str, bool]:
        """An idempotent submit, in one transaction: when ``key`` is known, nothing is
        inserted and the kept (run_id, body_hash) come back with False; otherwise ``key`` is
        kept for ``run.run_id`` and the run inserted (True; False when that id existed).
        A key never points at a run that was not recorded."""

    def put_workflow(self, workflow: WorkflowRecord) -> None:
        """Register or replace a workflow by name (``created_at`` of the first kept)."""

    def get_workflow(self, name: str) -> WorkflowRecord | None: ...

    def list_workflows(self) -> list[WorkflowRecord]: ...

    def beat_server(self, server: ServerRecord) -> float:
        """Upsert a live server with ``heartbeat_at = db_now``; returns db_now."""

    def list_servers(self) -> list[ServerRecord]: ...

    def remove_server(self, server_id: str) -> None: ...

    # -- learned models (one per name; the resource model learns from this store) ---------

    def save_model(self, name: str, blob: bytes) -> None:
        """Keep ``blob`` (a model in the codec's signed format) under ``name``, replacing
        what was there; ``saved_at`` becomes the store's clock (``db_now``)."""

    def load_model(self, name: str) -> tuple[bytes, float] | None:
        """(blob, saved_at) of the model kept under ``name``; None when there is none. The
        bytes come back as stored: the caller verifies their signature before loading."""
