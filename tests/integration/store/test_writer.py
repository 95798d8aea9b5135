"""StoreWriter: coalescing, write order, flush semantics, retries and batching."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from rayflow.store.memory import MemoryStore
from rayflow.store.port import ComponentRecord, EventRecord, RunRecord
from rayflow.store.sqlite import SqliteStore
from rayflow.store.writer import StoreWriter

NEVER = 3600.0  # a flush interval that never elapses during a test


class RecordingStore(MemoryStore):
    """A MemoryStore that logs every write call and can fail or block on demand."""

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = []
        self.fail_left = fail_first
        self.gate = threading.Event()
        self.gate.set()
        self.components_at_run_update: list[list[str]] = []

    def _enter(self, name: str, arg: Any) -> None:
        self.gate.wait()
        if self.fail_left > 0:
            self.fail_left -= 1
            raise OSError(f"store unavailable ({name})")
        self.calls.append((name, arg))

    def upsert_components(self, records: list[ComponentRecord]) -> None:
        self._enter("upsert_components", list(records))
        super().upsert_components(records)

    def append_events(self, events: list[EventRecord]) -> None:
        self._enter("append_events", list(events))
        super().append_events(events)

    def update_run(self, run_id: str, **fields: Any) -> None:
        self._enter("update_run", (run_id, dict(fields)))
        self.components_at_run_update.append([c.component_id for c in self.get_components(run_id)])
        super().update_run(run_id, **fields)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def comp(cid: str, state: str = "RUNNING", run_id: str = "r1") -> ComponentRecord:
    return ComponentRecord(run_id=run_id, component_id=cid, state=state)


def ev(seq: int, run_id: str = "r1") -> EventRecord:
    return EventRecord(run_id=run_id, seq=seq, ts=float(seq), kind="component_state")


@pytest.fixture
def store() -> RecordingStore:
    s = RecordingStore()
    s.create_run(RunRecord(run_id="r1", name="flow"), [])
    return s


def test_components_coalesce_and_run_fields_merge(store: RecordingStore) -> None:
    with StoreWriter(store, flush_interval_s=NEVER) as w:
        for state in ("PENDING", "RUNNING", "SUCCEEDED"):
            w.component(comp("a", state))
        w.component(comp("b", "RUNNING"))
        w.run("r1", status="RUNNING", started_at=1.0)
        w.run("r1", status="SUCCEEDED", ended_at=2.0)
        for seq in (1, 2, 3):
            w.event(ev(seq))
        assert w.flush(timeout=10)
    written = [c for name, batch in store.calls if name == "upsert_components" for c in batch]
    assert sorted((c.component_id, c.state) for c in written) == [("a", "SUCCEEDED"), ("b", "RUNNING")]
    assert [arg for name, arg in store.calls if name == "update_run"] == [
        ("r1", {"status": "SUCCEEDED", "started_at": 1.0, "ended_at": 2.0})
    ]
    run = store.get_run("r1")
    assert (run.status, run.started_at, run.ended_at) == ("SUCCEEDED", 1.0, 2.0)
    assert [e.seq for e in store.get_events("r1")] == [1, 2, 3]


def test_flush_writes_components_then_events_then_run(store: RecordingStore) -> None:
    w = StoreWriter(store, flush_interval_s=NEVER)
    w.run("r1", status="SUCCEEDED")  # enqueued first, written last
    for seq in (3, 1, 2):
        w.event(ev(seq))
    w.component(comp("a", "SUCCEEDED"))
    assert w.flush(timeout=10)
    assert store.names() == ["upsert_components", "append_events", "update_run"]
    assert store.components_at_run_update == [["a"]]
    sent = [e.seq for name, batch in store.calls if name == "append_events" for e in batch]
    assert sent == [3, 1, 2]  # events go out in the order they were enqueued
    w.close()


def test_flush_blocks_until_written(store: RecordingStore) -> None:
    w = StoreWriter(store, flush_interval_s=NEVER)
    assert w.flush(timeout=0) is True  # nothing pending
    store.gate.clear()  # the store now blocks every write
    w.component(comp("a"))
    assert w.flush(timeout=0.2) is False
    assert store.get_components("r1") == []
    store.gate.set()
    assert w.flush() is True
    assert store.get_components("r1") == [comp("a")]
    w.close()


def test_background_thread_flushes_without_being_asked(store: RecordingStore) -> None:
    w = StoreWriter(store, flush_interval_s=0.01)
    w.component(comp("a"))
    deadline = time.monotonic() + 10
    while not store.get_components("r1") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.get_components("r1") == [comp("a")]
    w.close()


def test_close_flushes_and_is_idempotent(store: RecordingStore) -> None:
    w = StoreWriter(store, flush_interval_s=NEVER)
    w.component(comp("a"))
    w.event(ev(1))
    assert w.close() is True
    assert store.get_components("r1") == [comp("a")]
    assert [e.seq for e in store.get_events("r1")] == [1]
    assert w.close() is True
    assert w.flush(timeout=1) is True
    with pytest.raises(RuntimeError, match="closed"):
        w.component(comp("b"))


def test_run_update_with_unknown_field_fails_in_caller(store: RecordingStore) -> None:
    with StoreWriter(store, flush_interval_s=NEVER) as w:
        with pytest.raises(ValueError, match="colour"):
            w.run("r1", colour="red")


def test_store_failing_twice_loses_nothing(caplog: pytest.LogCaptureFixture) -> None:
    store = RecordingStore(fail_first=2)
    store.create_run(RunRecord(run_id="r1", name="flow"), [])
    caplog.set_level(logging.WARNING, logger="rayflow.store")
    w = StoreWriter(store, flush_interval_s=NEVER)
    w.component(comp("a", "SUCCEEDED"))
    w.component(comp("b", "FAILED"))
    w.event(ev(1))
    w.event(ev(2))
    w.run("r1", status="FAILED", error="b failed")
    assert w.flush(timeout=30) is True
    assert store.fail_left == 0
    assert [c.component_id for c in store.get_components("r1")] == ["a", "b"]
    assert [e.seq for e in store.get_events("r1")] == [1, 2]
    assert store.get_run("r1").status == "FAILED"
    assert store.names() == ["upsert_components", "append_events", "update_run"]
    warnings = [r for r in caplog.records if r.name == "rayflow.store" and r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "store unavailable" in warnings[0].getMessage()
    w.close()


def test_newer_records_enqueued_during_failure_win(store: RecordingStore) -> None:
    store.gate.clear()
    store.fail_left = 1
    w = StoreWriter(store, flush_interval_s=NEVER)
    w.component(comp("a", "RUNNING"))
    w.run("r1", status="RUNNING", started_at=1.0)
    assert w.flush(timeout=0.05) is False  # the writer has taken the batch; it is blocked
    w.component(comp("a", "SUCCEEDED"))  # newer than the batch in flight, which will fail
    w.run("r1", status="SUCCEEDED")
    store.gate.set()
    assert w.flush(timeout=30) is True
    assert store.get_components("r1") == [comp("a", "SUCCEEDED")]
    run = store.get_run("r1")
    assert (run.status, run.started_at) == ("SUCCEEDED", 1.0)
    w.close()


def test_ten_thousand_components_in_a_handful_of_batches(store: RecordingStore) -> None:
    w = StoreWriter(store, flush_interval_s=NEVER, max_batch=2000)
    for i in range(10_000):
        w.component(comp(f"c{i:05d}"))
    assert w.flush(timeout=60)
    batches = [batch for name, batch in store.calls if name == "upsert_components"]
    assert sum(len(b) for b in batches) == 10_000
    assert max(len(b) for b in batches) <= 2000
    assert len(batches) <= 12
    assert len(store.get_components("r1")) == 10_000
    w.close()


def test_many_threads_enqueue_without_loss(store: RecordingStore) -> None:
    w = StoreWriter(store, flush_interval_s=0.01, max_batch=100)
    n_threads, n_items = 8, 500

    def work(t: int) -> None:
        for i in range(n_items):
            w.component(comp(f"t{t}-{i:03d}"))
            w.event(ev(t * n_items + i + 1))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert w.close() is True
    assert len(store.get_components("r1")) == n_threads * n_items
    assert [e.seq for e in store.get_events("r1")] == list(range(1, n_threads * n_items + 1))


def test_close_with_timeout_on_a_broken_store_reports_the_loss(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RecordingStore(fail_first=10**9)
    caplog.set_level(logging.WARNING, logger="rayflow.store")
    w = StoreWriter(store, flush_interval_s=NEVER)
    w.component(comp("a"))
    w.event(ev(1))
    assert w.close(timeout=0.3) is False
    assert w.close() is False  # idempotent: the first close's result
    assert w.flush(timeout=1) is False  # the thread is gone; nothing more will be written
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "2 record(s) not written" in errors[0]


def test_write_soon_starts_a_write_without_waiting_for_the_interval(tmp_path):
    store = SqliteStore(tmp_path / "soon.db")
    writer = StoreWriter(store, flush_interval_s=60.0)
    try:
        store.create_run(RunRecord("r-soon", "wf"), [])
        writer.run("r-soon", status="RUNNING")
        writer.write_soon()
        deadline = time.monotonic() + 5
        while store.get_run("r-soon").status != "RUNNING":
            assert time.monotonic() < deadline, "write_soon did not start a write"
            time.sleep(0.01)
    finally:
        writer.close()
        store.close()


class Source:
    """A record source like the run recorder: marks changes, hands rows over on drain."""

    def __init__(self, run_id: str = "r1") -> None:
        self.source_key = run_id
        self.states: dict[str, str] = {}
        self.dirty: set[str] = set()
        self.drains = 0

    def set(self, cid: str, state: str) -> None:
        self.states[cid] = state
        self.dirty.add(cid)

    def drain(self) -> list[ComponentRecord]:
        self.drains += 1
        dirty, self.dirty = self.dirty, set()
        return [comp(cid, self.states[cid], self.source_key) for cid in sorted(dirty)]


def test_changes_of_a_source_between_writes_are_written_once_in_their_latest_state():
    store = RecordingStore()
    store.create_run(RunRecord("r1", "wf"), [])
    writer = StoreWriter(store, flush_interval_s=60.0)
    source = Source()
    for state in ("PENDING", "RUNNING", "SUCCEEDED"):
        source.set("a", state)
        writer.changed(source)
    source.set("b", "RUNNING")
    writer.changed(source)
    assert writer.flush(5)
    writes = [arg for name, arg in store.calls if name == "upsert_components"]
    assert [[(c.component_id, c.state) for c in w] for w in writes] == [[("a", "SUCCEEDED"), ("b", "RUNNING")]]
    assert source.drains == 1
    writer.close()


def test_rows_drained_before_a_failed_write_are_written_on_the_retry():
    store = RecordingStore(fail_first=1)
    store.create_run(RunRecord("r1", "wf"), [])
    writer = StoreWriter(store, flush_interval_s=60.0)
    source = Source()
    source.set("a", "SUCCEEDED")
    writer.changed(source)
    assert writer.flush(10)
    assert [(c.component_id, c.state) for c in store.get_components("r1")] == [("a", "SUCCEEDED")]
    writer.close()
