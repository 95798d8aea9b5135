"""PostgreSQL restarted (a throwaway server of the test's own) under running SQL components:
the run finishes, every component ran to completion once, nothing completed ran again."""

from __future__ import annotations

import time

import pytest

import rayflow as rf
from rayflow.connect.sql import pool
from tests.helpers import wait_until
from tests.support.pgserver import throwaway_postgres
from tests.support.postgres import pg_run

STEPS = 8


@pytest.fixture
def server():
    with throwaway_postgres() as pg:
        try:
            yield pg
        finally:
            pool.close_all()


@rf.workflow(name="sql_restart")
def chain(url: str):
    prev = rf.sql(url, "SELECT 1", mode="execute", id="start")
    for i in range(1, STEPS + 1):   # each step commits one ledger row after a second's work
        prev = rf.sql(url, "INSERT INTO ledger (step, note) SELECT $1, $2 FROM pg_sleep(0.6)",
                      params=[i, prev], mode="execute", id=f"step_{i}")
    return prev


@pytest.mark.slow
def test_a_restart_under_running_sql_components(server, ray_session, service):
    pg_run(server.url, "CREATE TABLE ledger (step int PRIMARY KEY, note text, at timestamptz DEFAULT clock_timestamp())")
    h = rf.submit(chain, executor="ray", url=server.url)
    wait_until(lambda: pg_run(server.url, "SELECT count(*) FROM ledger", fetch=True)[0][0] >= 2, 120,
               what="two steps committed")
    server.stop("fast")    # every connection is cut, the statement running now is rolled back
    time.sleep(1.0)
    server.start()
    assert h.result(timeout=240) == 1    # the last step inserted its one row
    rows = pg_run(server.url, "SELECT step FROM ledger ORDER BY step", fetch=True)
    assert [r[0] for r in rows] == list(range(1, STEPS + 1))   # each step once (the key forbids twice)
    comps = h.metrics()["components"]
    assert all(c["state"] == "SUCCEEDED" for c in comps.values())
    assert all(c["attempts"] == 1 for c in comps.values()), {k: c["attempts"] for k, c in comps.items()}
    text = "".join(h.logs(f"step_{i}") for i in range(1, STEPS + 1))
    assert "transient" in text      # at least one step saw the restart and waited it out
