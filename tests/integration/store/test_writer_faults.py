"""The StoreWriter never wedges (issue 15 item 2), on real SQLite and real PostgreSQL: text
UTF-8 cannot encode (a lone surrogate) lands cleaned; a record the store refuses for what it
holds is set aside with a warning and the rest lands; flush and close return within their
bound when the store is unreachable; and a run whose component fails with such text ends
FAILED instead of hanging."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

import rayflow as rf
from rayflow.core.errors import WorkflowFailed
from rayflow.store.port import ComponentRecord, EventRecord, RunRecord, RunStore
from rayflow.store.sqlite import SqliteStore
from rayflow.store.urls import open_store
from rayflow.store.writer import StoreWriter
from tests.integration.store.test_postgres import table_locked
from tests.support.postgres import with_params
from tests.support.tcpproxy import TcpProxy

NEVER = 3600.0                      # a flush interval that never elapses during a test
BAD = os.fsdecode(b"\xff")          # a lone surrogate, as a file name with a non-UTF-8 byte decodes
CLEANED = "\\udcff"                 # what the store keeps of it: the backslash escape
TOO_BIG = 2**70                     # an integer neither store's INTEGER / BIGINT holds


class Opaque:
    """A value JSON cannot encode (what a buggy outcome or payload may hold)."""


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[RunStore]:
    if request.param == "sqlite":
        s: RunStore = SqliteStore(tmp_path / "runs.db")
    else:
        s = open_store(request.getfixturevalue("postgres_url"))
    s.insert_run(RunRecord("r1", "flow", status="RUNNING"))
    yield s
    s.close()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "rayflow.store" and r.levelno >= logging.WARNING]


def test_text_with_a_lone_surrogate_lands_cleaned_and_later_writes_still_land(store: RunStore) -> None:
    writer = StoreWriter(store, flush_interval_s=NEVER)
    try:
        writer.component(ComponentRecord("r1", "a", "FAILED", error=f"ValueError: {BAD}",
                                         outcome={"errors": [BAD], BAD: 1}))
        writer.event(EventRecord("r1", 1, 1.0, "component_state", "a", data={"error": BAD}))
        writer.run("r1", status="FAILED", error=f"a failed: {BAD}", summary={"failed": [BAD]})
        assert writer.flush(timeout=10) is True
        writer.component(ComponentRecord("r1", "b", "SUCCEEDED"))   # the writer still flows
        assert writer.flush(timeout=10) is True
        assert writer.dropped == 0
    finally:
        writer.close(timeout=10)
    comps = {c.component_id: c for c in store.get_components("r1")}
    assert comps["a"].error == f"ValueError: {CLEANED}"
    assert comps["a"].outcome == {"errors": [CLEANED], CLEANED: 1}
    assert comps["b"].state == "SUCCEEDED"
    assert [e.data for e in store.get_events("r1")] == [{"error": CLEANED}]
    run = store.get_run("r1")
    assert (run.status, run.error, run.summary) == ("FAILED", f"a failed: {CLEANED}", {"failed": [CLEANED]})


def test_records_the_store_refuses_are_set_aside_and_the_rest_lands(
    store: RunStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rayflow.store")
    writer = StoreWriter(store, flush_interval_s=NEVER)
    try:
        writer.records(
            [ComponentRecord("r1", "a", "SUCCEEDED"),
             ComponentRecord("r1", "b", "FAILED", error="password=hunter2", peak_rss_bytes=TOO_BIG),
             ComponentRecord("r1", "c", "SUCCEEDED")],
            [EventRecord("r1", 1, 1.0, "component_state", "a"),
             EventRecord("r1", 2, 2.0, "component_state", "b", data={"token": "hunter2", "v": Opaque()}),
             EventRecord("r1", 3, 3.0, "component_state", "c")],
        )
        writer.run("r1", summary={"v": Opaque()}, status="FAILED", error="b failed")   # the bad field first
        assert writer.flush(timeout=10) is True
        assert writer.dropped == 3   # component b, event 2, the run's summary field
        writer.component(ComponentRecord("r1", "d", "SUCCEEDED"))
        assert writer.flush(timeout=10) is True
    finally:
        writer.close(timeout=10)
    assert [c.component_id for c in store.get_components("r1")] == ["a", "c", "d"]
    assert [e.seq for e in store.get_events("r1")] == [1, 3]
    run = store.get_run("r1")
    assert (run.status, run.error, run.summary) == ("FAILED", "b failed", {})   # only the summary set aside
    logged = warnings_of(caplog)
    assert any("run r1" in m and "component record(s)" in m and ": b" in m for m in logged)
    assert any("run r1" in m and "event record(s)" in m and "seq 2" in m for m in logged)
    assert any("run r1" in m and "run update record(s)" in m and "field summary" in m for m in logged)
    assert not any("hunter2" in m or str(TOO_BIG) in m for m in logged)   # ids, never values


@pytest.mark.timeout(60)
def test_flush_and_close_return_when_sqlite_refuses_writes(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rayflow.store")
    store = SqliteStore(tmp_path / "runs.db")
    store.insert_run(RunRecord("r1", "flow"))

    def read_only(on: bool) -> None:   # the file refuses writes (as a read-only file would, to root too)
        with store._lock:
            store._connection().execute(f"PRAGMA query_only = {int(on)}")

    writer = StoreWriter(store, flush_interval_s=NEVER, flush_timeout_s=0.5)
    try:
        read_only(True)
        writer.component(ComponentRecord("r1", "a", "RUNNING"))
        writer.event(EventRecord("r1", 1, 1.0, "component_state", "a"))
        assert writer.flush() is False
        assert any("flush gave up" in m and "2 record(s) not written" in m for m in warnings_of(caplog))
        read_only(False)   # back: what was kept lands
        assert writer.flush(timeout=30) is True
        assert [c.component_id for c in store.get_components("r1")] == ["a"]
        read_only(True)
        writer.component(ComponentRecord("r1", "b", "RUNNING"))
        assert writer.close() is False
        assert any("closing the writer with 1 record(s) not written" in m for m in warnings_of(caplog))
        assert writer.dropped == 0   # kept for a retry, never set aside: the store was down
    finally:
        writer.close()
        store.close()


@pytest.mark.timeout(60)
def test_flush_and_close_return_when_postgres_is_unreachable(
    postgres_server: str, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rayflow.store")
    host_port = postgres_server.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    url = postgres_url.replace(host_port, f"127.0.0.1:{proxy.port}")
    store = open_store(with_params(url, connect_timeout=0.5))
    writer = StoreWriter(store, flush_interval_s=NEVER, flush_timeout_s=0.5)
    try:
        store.insert_run(RunRecord("r1", "flow"))
        proxy.close()   # the server's port now refuses every connection
        writer.component(ComponentRecord("r1", "a", "RUNNING"))
        assert writer.flush() is False
        assert any("flush gave up" in m and "1 record(s) not written" in m for m in warnings_of(caplog))
        writer.run("r1", status="FAILED")
        assert writer.close() is False
        assert any("closing the writer with 2 record(s) not written" in m for m in warnings_of(caplog))
        assert writer.dropped == 0
    finally:
        writer.close()
        store.close()
        proxy.close()


@pytest.mark.timeout(60)
def test_a_write_timing_out_on_a_locked_table_is_kept_and_lands_later(
    postgres_server: str, postgres_url: str, postgres_schema: str
) -> None:
    store = open_store(with_params(postgres_url, statement_timeout=0.2))
    writer = StoreWriter(store, flush_interval_s=NEVER, flush_timeout_s=0.5)
    try:
        store.insert_run(RunRecord("r1", "flow"))
        with table_locked(postgres_server, f"{postgres_schema}.components"):
            writer.component(ComponentRecord("r1", "a", "RUNNING"))
            assert writer.flush() is False   # busy, not the record's fault: kept, never set aside
        assert writer.flush(timeout=30) is True
        assert writer.dropped == 0
        assert [c.component_id for c in store.get_components("r1")] == ["a"]
    finally:
        writer.close(timeout=10)
        store.close()


@rf.component
def fails_with_undecodable_text() -> int:
    raise ValueError(BAD)


@rf.workflow(name="undecodable_error")
def undecodable_error_flow():
    return fails_with_undecodable_text()


@pytest.mark.timeout(60)
def test_a_run_whose_component_fails_with_undecodable_text_ends_failed(service) -> None:
    with pytest.raises(WorkflowFailed):
        rf.run(undecodable_error_flow, executor="local")
    service.flush()
    (run,) = service.store.list_runs()
    assert run.status == "FAILED" and CLEANED in run.error
    (comp,) = service.store.get_components(run.run_id)
    assert comp.state == "FAILED" and CLEANED in comp.error
