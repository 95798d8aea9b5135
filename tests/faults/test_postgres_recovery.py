"""PostgreSQL restarts and outages, on a throwaway server of this test's own.

While the database is down, a run pauses: its writes wait in the StoreWriter, which
retries with backoff; once the server is back they land, each exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rayflow.core.errors import StoreUnavailable
from rayflow.store.port import ComponentRecord, EventRecord, RunRecord
from rayflow.store.urls import open_store
from rayflow.store.writer import StoreWriter
from tests.support.pgserver import ThrowawayPostgres
from tests.support.pgserver import throwaway_postgres as started_throwaway

N_COMPONENTS = 40


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    with started_throwaway() as server:   # stopped and deleted, whatever the test did
        yield server


class Producer:
    """Writes like a running workflow: a component update and an event per step."""

    def __init__(self, writer: StoreWriter) -> None:
        self.writer = writer
        self.seq = 0

    def steps(self, n: int, state: str) -> None:
        for _ in range(n):
            self.seq += 1
            comp = ComponentRecord(run_id="r1", component_id=f"c{self.seq % N_COMPONENTS:02d}",
                                   state=state, attempts=self.seq)
            event = EventRecord(run_id="r1", seq=self.seq, ts=float(self.seq), kind="component_state",
                                component_id=comp.component_id, data={"step": self.seq, "to": state})
            self.writer.records([comp], [event])


@pytest.mark.slow
def test_writes_through_a_restart_and_an_outage_land_once(throwaway_postgres: ThrowawayPostgres) -> None:
    server = throwaway_postgres
    store = open_store(f"{server.url}?schema=rayflow&connect_timeout=2&acquire_timeout=2")
    writer = StoreWriter(store, flush_interval_s=0.05)
    try:
        store.create_run(RunRecord(run_id="r1", name="flow", status="RUNNING"),
                         [ComponentRecord(run_id="r1", component_id=f"c{i:02d}") for i in range(N_COMPONENTS)])
        run = Producer(writer)
        run.steps(100, "RUNNING")
        assert writer.flush(timeout=10)

        server.restart()   # every pooled connection dies while idle
        run.steps(100, "RUNNING")
        assert writer.flush(timeout=30)

        server.stop()      # down: the run goes on producing, its writes queue
        run.steps(100, "SUCCEEDED")
        writer.run("r1", status="SUCCEEDED", ended_at=99.0)
        assert writer.flush(timeout=1.0) is False
        with pytest.raises(StoreUnavailable, match="unreachable"):
            store.get_run("r1")

        server.start()
        assert writer.flush(timeout=30)
        events = store.get_events("r1")
        assert [e.seq for e in events] == list(range(1, 301))
        assert all(e.data["step"] == e.seq for e in events)
        comps = {c.component_id: c for c in store.get_components("r1")}
        assert len(comps) == N_COMPONENTS
        assert all(c.state == "SUCCEEDED" and c.attempts > 200 for c in comps.values())
        final = store.get_run("r1")
        assert final.status == "SUCCEEDED" and final.ended_at == 99.0
        assert store.pool_stats()["rebuilds"] >= 1
    finally:
        writer.close(timeout=5)
        store.close()
