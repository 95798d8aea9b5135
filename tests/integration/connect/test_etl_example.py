"""The shipped connectors ETL example (rayflow/examples/connectors_etl): PostgreSQL -> batch
transform -> HTTP enrichment -> PostgreSQL, as a spec and in Python, against the real
PostgreSQL and a loopback scoring endpoint that fails now and then."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

import rayflow as rf
from rayflow.connect.sql import pool
from rayflow.examples import connectors_etl
from tests.integration.connect.test_sql import put_secret
from tests.support.httpfaults import FaultServer
from tests.support.postgres import pg_run

SPEC = Path(connectors_etl.__file__).with_suffix(".yaml")


@pytest.fixture
def orders_db(postgres_server):
    schema = f"rayflow_etl_{uuid.uuid4().hex[:10]}"
    pg_run(postgres_server, f"CREATE SCHEMA {schema}")
    url = f"{postgres_server}?options=-csearch_path%3D{schema}"
    put_secret("ORDERS_DB", url)
    connectors_etl.setup()   # through rf.sql, in this process (the secrets file has it)
    yield schema
    pool.close_all()
    pg_run(postgres_server, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.mark.parametrize("form", ["spec", "python"])
def test_the_etl_example_runs_end_to_end(form, orders_db, postgres_server, ray_session, service):
    with FaultServer() as server:
        server.schedule("score", ("status", 503), ("retry_after", 0.2), "reset")
        target = rf.WorkflowSpec.from_file(SPEC) if form == "spec" else connectors_etl.pipeline
        plan = rf.explain(target, score_url=server.url + "/score")
        assert plan.streams == (("orders", "clean", "enrich", "scores"),)
        h = rf.submit(target, executor="ray", score_url=server.url + "/score")
        written = h.result(timeout=240)
    positive = pg_run(postgres_server, f"SELECT count(*) FROM {orders_db}.orders WHERE amount > 0", fetch=True)[0][0]
    assert sum(written.column("rows").to_pylist()) == positive
    rows = pg_run(postgres_server, f"SELECT o.amount::float8, s.score FROM {orders_db}.orders o "
                                   f"JOIN {orders_db}.order_scores s USING (id)", fetch=True)
    assert len(rows) == positive and all(score == amount * 2 for amount, score in rows)
    sent = [r for r in server.log if r.route == "score"]
    assert max(len(r.body) for r in sent if r.body) <= 100                  # batched, 100 per request
    ok_items = sum(len(r.body) for r in sent if r.outcome == "ok")
    assert ok_items == positive                                              # nothing lost, nothing twice
    assert [r.outcome for r in sent[:3]] == ["503", "429", "reset"]          # each fault retried
    # each connector's figures, in its outcome (store, h.metrics(), the server's /metrics)
    comps = h.metrics()["components"]
    http = comps["enrich"]["outcome"]["connector"]["http"]
    assert http["requests"] == len(sent) and http["retries"] == 3
    assert set(http["breaker"].values()) == {"closed"}
    total = pg_run(postgres_server, f"SELECT count(*) FROM {orders_db}.orders", fetch=True)[0][0]
    assert comps["orders"]["outcome"]["connector"]["sql"]["rows_read"] == total
    sink = comps["scores"]["outcome"]["connector"]["sql"]
    assert sink["rows_written"] == positive and sink["pool"]["opened"] >= 1
    # the stage that retried is a run event (the quiet ones are not)
    from rayflow.service import get_service

    service = get_service()
    service.flush()
    told = [e for e in service.store.get_events(h.run_id) if e.kind == "connector"]
    assert [(e.component_id, e.data["http"]["retries"]) for e in told] == [("enrich", 3)]
