"""StoreWriter: batches run-store writes off the hot path, in one daemon thread.

Owns the queue of pending component records, events and run updates, the background
thread that drains it, and retrying when the store fails. Must not block the caller
beyond a short lock, must not drop data silently, and must not reorder what one flush
cycle writes: components first, then events, then run updates (so a run marked
SUCCEEDED already has its components).

The writer takes ownership of the records it is given: callers must not mutate a
record after enqueueing it (it is not copied, to keep the hot path cheap).

Fencing: a run driven under a lease is ``fence``d with its epoch; every cycle passes the
fences to ``RunStore.write_batch``, which drops the records of a run whose lease was
taken over. The writer then calls the run's ``on_lost`` once (the owner stops driving)
and keeps the fence, so whatever the old owner still queues is refused too; nothing of it
is retried. A record source is told after each cycle whether its records landed
(``RecordSource.written``): the run recorder commits inline checkpoints only then.

Failures: a store that cannot take writes now (``store_unavailable``: unreachable, busy,
timing out) keeps the batch, retried with backoff until it lands. Any other failure is
the records' (a value the codec or the database refuses, a constraint): the writer
writes them again in halves, down to one record (one field of a run update), writes
every part the store takes, and sets aside each record it still refuses, with a warning
naming the run, the kind of record and the error's type, never a value; the rest keeps
flowing. ``flush`` and ``close`` wait at most ``flush_timeout_s`` (30 s by default), then
log how many records are not written yet and return False: no caller, nor the
interpreter's exit, hangs on a store that is down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rayflow.core import gcpause
from rayflow.store.memory import check_run_fields
from rayflow.store.port import ComponentRecord, EventRecord, RunStore
from rayflow.store.salvage import Salvage, store_unavailable

logger = logging.getLogger("rayflow.store")

FIRST_RETRY_S = 0.1
MAX_RETRY_S = 5.0
COMPONENTS_DUE = 50_000   # pending component records that make a write due before its interval
FLUSH_TIMEOUT_S = 30.0    # how long flush() and close() wait for a failing store, by default



class RecordSource(Protocol):
    """Something that keeps component records current and hands over the changed ones
    when a write is due (the run recorder): updates between writes coalesce for free."""

    @property
    def source_key(self) -> str: ...

    def drain(self) -> list[ComponentRecord]:
        """The records changed since the last drain (the writer owns them)."""

    def written(self, *, lost: bool) -> None:
        """The drained records landed (``lost``: the store refused them, the run's lease was
        taken over). Called in the writer thread before the cycle counts as written, so a
        source may commit what must follow its rows (the recorder's inline checkpoints)."""


@dataclass
class _Batch:
    """One flush cycle's worth of writes; parts are removed as they are written."""

    seq: int
    components: list[ComponentRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: list[RecordSource] = field(default_factory=list)
    drained: list[RecordSource] = field(default_factory=list)   # told ``written`` once the cycle landed

    def size(self) -> int:
        return len(self.components) + len(self.events) + len(self.runs)


class StoreWriter:
    """Queues writes and applies them to ``store`` every ``flush_interval_s`` seconds,
    or sooner when ``max_batch`` items are pending or ``flush()`` is called."""

    def __init__(self, store: RunStore, *, flush_interval_s: float = 0.2, max_batch: int = 2000,
                 flush_timeout_s: float | None = FLUSH_TIMEOUT_S) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if flush_timeout_s is not None and flush_timeout_s < 0:
            raise ValueError(f"flush_timeout_s must be >= 0 or None, got {flush_timeout_s}")
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.flush_timeout_s = flush_timeout_s   # None: flush() and close() wait as long as it takes
        self.dropped = 0        # records the store refused (set aside with a warning), so far
        self._cond = threading.Condition(threading.Lock())
        self._components: dict[tuple[str, str], ComponentRecord] = {}
        self._events: list[EventRecord] = []
        self._runs: dict[str, dict[str, Any]] = {}
        self._sources: dict[str, RecordSource] = {}
        self._fences: dict[str, tuple[int, Callable[[str], None]]] = {}   # run_id -> (epoch, on_lost)
        self._enqueued = 0      # count of enqueue calls so far
        self._written = 0       # every enqueue call up to this count is in the store
        self._flush_now = False
        self._closing = False   # set by close(): no more enqueues
        self._stop = False      # set by close() after its flush: the thread exits
        self._thread_done = False
        self._closed: bool | None = None  # None while open; then close()'s result
        self._failures = 0
        self._retry_at = 0.0
        self._since: float | None = None   # when the oldest pending item was queued
        self._in_flight = 0     # records (and undrained sources) of the batch being written
        self._thread = threading.Thread(target=self._loop, name="rayflow-store-writer", daemon=True)
        self._thread.start()

    # -- hot path ----------------------------------------------------------------------

    def component(self, rec: ComponentRecord) -> None:
        """Queue the latest state of one component; a later record for it replaces this one."""
        self.records([rec], [])

    def event(self, ev: EventRecord) -> None:
        """Queue one event; all events are kept, in order."""
        self.records([], [ev])

    def records(self, components: list[ComponentRecord], events: list[EventRecord]) -> None:
        """Queue component records and events together, under one lock (the recorder's path)."""
        with self._cond:
            self._check_open()
            for rec in components:
                self._components[(rec.run_id, rec.component_id)] = rec
            self._events.extend(events)
            self._enqueued_one()

    def changed(self, source: RecordSource) -> None:
        """``source`` has changed records; they are drained when the next write is due."""
        with self._cond:
            self._check_open()
            self._sources[source.source_key] = source
            self._enqueued_one()

    def run(self, run_id: str, **fields: Any) -> None:
        """Queue an update of a run; fields for one run merge, later values win."""
        check_run_fields(fields)  # fail here, not forever in the writer thread
        with self._cond:
            self._check_open()
            self._runs.setdefault(run_id, {}).update(fields)
            self._enqueued_one()

    def fence(self, run_id: str, epoch: int, on_lost: Callable[[str], None]) -> None:
        """Write ``run_id``'s records only while its lease epoch is ``epoch``; call
        ``on_lost(run_id)`` (from the writer thread) once the store refuses them."""
        with self._cond:
            self._fences[run_id] = (epoch, on_lost)

    def unfence(self, run_id: str) -> None:
        with self._cond:
            self._fences.pop(run_id, None)

    def _check_open(self) -> None:
        if self._closing:
            raise RuntimeError("StoreWriter is closed; nothing more can be written through it")

    def _enqueued_one(self) -> None:
        self._enqueued += 1
        if self._since is None:   # the first pending item starts the interval
            self._since = time.monotonic()
            self._cond.notify_all()
        elif self._due_by_size():
            self._cond.notify_all()

    def _due_by_size(self) -> bool:
        """Events and run updates pile up, so ``max_batch`` of them is due at once; component
        records coalesce (one per component), so only far more of them are."""
        return (len(self._events) + len(self._runs) >= self.max_batch
                or len(self._components) >= COMPONENTS_DUE)

    def _pending(self) -> int:
        return len(self._components) + len(self._events) + len(self._runs) + len(self._sources)

    # -- flush and close ---------------------------------------------------------------

    def write_soon(self) -> None:
        """Start writing what is queued now, without waiting for it (``flush`` waits)."""
        with self._cond:
            if self._pending():
                self._flush_now = True
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything enqueued before this call is written; False on timeout.

        ``timeout`` None: the writer's ``flush_timeout_s``. Giving up logs a warning that
        counts the records not written yet (they stay queued and are retried)."""
        timeout = self.flush_timeout_s if timeout is None else timeout
        if self._wait_written(timeout):
            return True
        if self._thread_done:   # closed: close() said what it left
            return False
        if timeout is not None and timeout > 0:   # flush(timeout=0) only asks
            logger.warning(
                "run store %s: flush gave up after %gs with %d record(s) not written yet "
                "(kept; the writer retries them)", self.store.url, timeout, self.unwritten(),
            )
        return False

    def unwritten(self) -> int:
        """Records queued or being written now (a changed source counts as one)."""
        with self._cond:
            return self._pending() + self._in_flight

    def _wait_written(self, timeout: float | None) -> bool:
        """Wait until everything enqueued before this call is written; False on timeout or
        once the thread is gone."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._enqueued
            if self._written >= target:
                return True
            self._flush_now = True
            self._cond.notify_all()
            while self._written < target:
                if self._thread_done:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop the thread. Idempotent; returns whether everything was written.

        Waits at most ``timeout`` seconds (None: the writer's ``flush_timeout_s``) for a
        failing store, then logs an error counting what could not be written and returns.
        """
        timeout = self.flush_timeout_s if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            already = self._closing
            self._closing = True
        if already:  # closed, or being closed by another thread
            return self._closed if self._closed is not None else self._wait_written(timeout)
        ok = self._wait_written(timeout)
        with self._cond:
            self._stop = True
            lost = self._pending() + self._in_flight
            self._closed = ok
            self._cond.notify_all()
        self._thread.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        if not ok:
            logger.error(
                "run store %s: closing the writer with %d record(s) not written",
                self.store.url, lost,
            )
        return ok

    # -- writer thread -----------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._write_batch(batch)

    def _next_batch(self) -> _Batch | None:
        """Wait for work to be due and take it all; None once close() stops the writer.

        Work is due ``flush_interval_s`` after the oldest pending item was queued (so a
        burst of updates to the same components coalesces into one write), at once on
        ``flush()``, or when enough has piled up.
        """
        with self._cond:
            while not self._stop:
                now = time.monotonic()
                if not self._pending():
                    self._cond.wait()
                elif now < self._retry_at:
                    self._cond.wait(self._retry_at - now)
                elif self._flush_now or self._due_by_size() or now >= self._since + self.flush_interval_s:
                    return self._take()
                else:
                    self._cond.wait(self._since + self.flush_interval_s - now)
            self._thread_done = True
            self._cond.notify_all()  # wake any flush() still waiting: nothing more will be written
            return None

    def _take(self) -> _Batch:
        batch = _Batch(self._enqueued, list(self._components.values()), self._events, self._runs,
                       list(self._sources.values()))
        self._components, self._events, self._runs, self._sources = {}, [], {}, {}
        self._in_flight = batch.size() + len(batch.sources)
        self._flush_now = False
        self._since = None
        return batch

    def _write_batch(self, batch: _Batch) -> None:
        try:
            self._write_parts(batch)
        except Exception as exc:  # any store failure is logged and retried
            self._failures += 1
            delay = min(FIRST_RETRY_S * 2 ** (self._failures - 1), MAX_RETRY_S)
            logger.warning(
                "run store %s: write failed (%s: %s); keeping %d record(s), retry #%d in %.1fs",
                self.store.url, type(exc).__name__, exc, batch.size(), self._failures, delay,
            )
            with self._cond:
                self._restore(batch)
                self._in_flight = 0
                self._retry_at = time.monotonic() + delay
                self._flush_now = True  # the batch was already due: retry as soon as allowed
            return
        with self._cond:
            self._failures = 0
            self._in_flight = 0
            self._written = max(self._written, batch.seq)
            self._cond.notify_all()

    def _write_parts(self, batch: _Batch) -> None:
        """Components, then events, then run updates, in chunks of ``max_batch``, each
        chunk one ``write_batch`` with the fences held now."""
        while batch.sources:
            with gcpause.paused():   # thousands of records at once: collect after, not during
                batch.components.extend(batch.sources[-1].drain())   # newer than any queued copy
            batch.drained.append(batch.sources.pop())
        with self._cond:
            fences = {run_id: epoch for run_id, (epoch, _) in self._fences.items()}
        n = self.max_batch
        refused: set[str] = set()
        while batch.components or batch.events or batch.runs:
            components, events = batch.components[:n], batch.events[:n]
            last = len(batch.components) <= n and len(batch.events) <= n
            runs = batch.runs if last else {}
            lost = self._write_chunk(components, events, runs, fences)
            del batch.components[:n]
            del batch.events[:n]
            if last:
                batch.runs = {}
            if lost:
                refused |= lost
                self._lost(lost, batch)
        self._tell_written(batch, refused)

    def _tell_written(self, batch: _Batch, refused: set[str]) -> None:
        """Tell each drained source whether its records landed (a run fenced out earlier
        counts as refused: its fence is kept for that)."""
        with self._cond:
            out = refused | {run_id for run_id, (_, on_lost) in self._fences.items() if on_lost is _told}
        for source in batch.drained:
            tell = getattr(source, "written", None)
            if tell is not None:
                try:
                    tell(lost=source.source_key in out)
                except Exception:  # noqa: BLE001 - a source's follow-up must not stop the writer
                    logger.exception("run %s: committing what follows its records failed", source.source_key)
        batch.drained = []

    def _write_chunk(self, components: list[ComponentRecord], events: list[EventRecord],
                     runs: dict[str, dict[str, Any]], fences: dict[str, int]) -> set[str]:
        """One ``write_batch``; when the store refuses it for its records (the store being
        unavailable is raised, and the batch retried), the records in parts."""
        try:
            return self.store.write_batch(components, events, runs, fences or None)
        except Exception as exc:
            if store_unavailable(exc):
                raise
            logger.warning(
                "run store %s: a write of %d record(s) failed (%s); writing them in parts, "
                "to set aside the ones the store refuses", self.store.url,
                len(components) + len(events) + len(runs), type(exc).__name__,
            )
        salvage = Salvage(self.store, fences)
        salvage.write("component", components)
        salvage.write("event", events)
        salvage.write("run update", list(runs.items()))
        with self._cond:
            self.dropped += len(salvage.refused)
        salvage.report(self.store.url)
        return salvage.lost

    def _lost(self, run_ids: set[str], batch: _Batch) -> None:
        """The store refused these runs' records: their owner lost the lease."""
        with self._cond:   # the fence stays (told once): whatever the old owner still queues is refused too
            lost = [(run_id, self._fences[run_id]) for run_id in run_ids if run_id in self._fences]
            for run_id, (epoch, _) in lost:
                self._fences[run_id] = (epoch, _told)
        batch.components = [c for c in batch.components if c.run_id not in run_ids]
        batch.events = [e for e in batch.events if e.run_id not in run_ids]
        for run_id, (epoch, on_lost) in lost:
            logger.warning("run %s: the store refused its records (lease epoch %d was taken over)", run_id, epoch)
            try:
                on_lost(run_id)
            except Exception:  # noqa: BLE001 - the owner's callback must not stop the writer
                logger.exception("run %s: on_lost failed", run_id)

    def _restore(self, batch: _Batch) -> None:
        """Put back what a failed cycle did not write; anything enqueued since wins."""
        components = {(c.run_id, c.component_id): c for c in batch.components}
        components.update(self._components)
        self._components = components
        self._events = batch.events + self._events
        runs = batch.runs
        for run_id, fields in self._runs.items():
            runs.setdefault(run_id, {}).update(fields)
        self._runs = runs
        for source in batch.sources + batch.drained:   # not drained yet, or not told: drained again
            self._sources.setdefault(source.source_key, source)
        if self._since is None:
            self._since = time.monotonic()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _told(_run_id: str) -> None:
    """The owner of a lost run was told already: a later refusal says nothing more."""
