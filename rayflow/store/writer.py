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
taken over. The writer then forgets that run's fence and calls its ``on_lost`` (the
owner stops driving); nothing of it is retried.
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

logger = logging.getLogger("rayflow.store")

FIRST_RETRY_S = 0.1
MAX_RETRY_S = 5.0
COMPONENTS_DUE = 50_000   # pending component records that make a write due before its interval


class RecordSource(Protocol):
    """Something that keeps component records current and hands over the changed ones
    when a write is due (the run recorder): updates between writes coalesce for free."""

    @property
    def source_key(self) -> str: ...

    def drain(self) -> list[ComponentRecord]:
        """The records changed since the last drain (the writer owns them)."""


@dataclass
class _Batch:
    """One flush cycle's worth of writes; parts are removed as they are written."""

    seq: int
    components: list[ComponentRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: list[RecordSource] = field(default_factory=list)

    def size(self) -> int:
        return len(self.components) + len(self.events) + len(self.runs)


class StoreWriter:
    """Queues writes and applies them to ``store`` every ``flush_interval_s`` seconds,
    or sooner when ``max_batch`` items are pending or ``flush()`` is called."""

    def __init__(self, store: RunStore, *, flush_interval_s: float = 0.2, max_batch: int = 2000) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
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
        """Block until everything enqueued before this call is written; False on timeout."""
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

        With a ``timeout``, gives up waiting on a failing store after that many seconds
        and logs an error counting what could not be written.
        """
        with self._cond:
            already = self._closing
            self._closing = True
        if already:  # closed, or being closed by another thread
            return self._closed if self._closed is not None else self.flush(timeout)
        ok = self.flush(timeout)
        with self._cond:
            self._stop = True
            lost = self._pending()
            self._closed = ok
            self._cond.notify_all()
        self._thread.join(timeout)
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
                self._retry_at = time.monotonic() + delay
                self._flush_now = True  # the batch was already due: retry as soon as allowed
            return
        with self._cond:
            self._failures = 0
            self._written = max(self._written, batch.seq)
            self._cond.notify_all()

    def _write_parts(self, batch: _Batch) -> None:
        """Components, then events, then run updates, in chunks of ``max_batch``, each
        chunk one ``write_batch`` with the fences held now."""
        while batch.sources:
            with gcpause.paused():   # thousands of records at once: collect after, not during
                batch.components.extend(batch.sources[-1].drain())   # newer than any queued copy
            batch.sources.pop()
        with self._cond:
            fences = {run_id: epoch for run_id, (epoch, _) in self._fences.items()}
        n = self.max_batch
        while batch.components or batch.events or batch.runs:
            components, events = batch.components[:n], batch.events[:n]
            last = len(batch.components) <= n and len(batch.events) <= n
            runs = batch.runs if last else {}
            lost = self.store.write_batch(components, events, runs, fences or None)
            del batch.components[:n]
            del batch.events[:n]
            if last:
                batch.runs = {}
            if lost:
                self._lost(lost, batch)

    def _lost(self, run_ids: set[str], batch: _Batch) -> None:
        """The store refused these runs' records: their owner lost the lease."""
        with self._cond:
            lost = [(run_id, self._fences.pop(run_id)) for run_id in run_ids if run_id in self._fences]
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
        for source in batch.sources:   # not drained yet
            self._sources.setdefault(source.source_key, source)
        if self._since is None:
            self._since = time.monotonic()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
