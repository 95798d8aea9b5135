"""``rayflow db advise`` against a real PostgreSQL (a million-row table in a schema of the
test's own) and real SQLite files: the index it recommends, verified and measured, the
unused and duplicate indexes it flags, and nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from rayflow.connect.advise import Job, Options, advise
from rayflow.connect.advise.session import QueryError, Session
from tests.helpers import REPO
from tests.support.postgres import POSTGRES_URL, pg_run, with_params

ROWS = 1_000_000
PLANTED = {"orders_pkey", "orders_status_unused", "orders_day", "orders_day_amount"}


def cli(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rayflow.cli.main", "db", "advise", *args], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, **(env or {})}, timeout=timeout)


def hypopg_here() -> bool:
    """Whether ``CREATE EXTENSION hypopg`` works in the test database (tried, rolled back)."""
    with Session(POSTGRES_URL) as s:
        try:
            s.rows("CREATE EXTENSION IF NOT EXISTS hypopg")
            return True
        except QueryError:
            return False


def extensions() -> set[str]:
    return {r["extname"] for r in pg_run(POSTGRES_URL, "SELECT extname FROM pg_extension", fetch=True)}


@pytest.fixture(scope="module")
def shop(postgres_server: str):
    """A schema of this module's own: orders (1M rows, analyzed), an index never used
    (status) and a redundant one (day, a prefix of day+amount); dropped at the end."""
    schema = f"rayflow_advise_{uuid.uuid4().hex[:10]}"
    try:
        pg_run(postgres_server, f"CREATE SCHEMA {schema}")
        pg_run(postgres_server, f"""CREATE TABLE {schema}.orders (id bigint PRIMARY KEY, customer_id int,
                                     day date, amount numeric, status text)""")
        pg_run(postgres_server, f"""INSERT INTO {schema}.orders
            SELECT g, (g::bigint * 7919) % 50000, DATE '2024-01-01' + (g % 365), (g % 1000) / 10.0,
                   (ARRAY['new', 'paid', 'shipped', 'done', 'void'])[1 + g % 5]
            FROM generate_series(1, {ROWS}) g""")
        pg_run(postgres_server, f"CREATE INDEX orders_status_unused ON {schema}.orders (status)")
        pg_run(postgres_server, f"CREATE INDEX orders_day ON {schema}.orders (day)")
        pg_run(postgres_server, f"CREATE INDEX orders_day_amount ON {schema}.orders (day, amount)")
        pg_run(postgres_server, f"ANALYZE {schema}.orders")
        yield schema
    finally:
        pg_run(postgres_server, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def query_of(schema: str) -> str:
    return f"SELECT id, amount FROM {schema}.orders WHERE customer_id = $1"


def indexes_in(schema: str) -> set[str]:
    rows = pg_run(POSTGRES_URL, "SELECT indexname FROM pg_indexes WHERE schemaname = $1", schema, fetch=True)
    return {r["indexname"] for r in rows}


def left_behind() -> list[str]:
    rows = pg_run(POSTGRES_URL, "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'rayflow_advise%'", fetch=True)
    return [r["indexname"] for r in rows]


def check_indexes_flagged(db: dict, schema: str) -> None:
    unused = {(i["schema"], i["name"]) for i in db["unused"]}
    assert (schema, "orders_status_unused") in unused
    assert (schema, "orders_pkey") not in unused            # backs the primary key
    dups = {(d["schema"], d["index"], d["covered_by"]) for d in db["duplicates"]}
    assert (schema, "orders_day", "orders_day_amount") in dups
    assert db["statements"]["note"] or db["statements"]["available"]   # it says either way


@pytest.mark.slow
def test_recommends_an_index_built_timed_and_rolled_back(shop):
    before_ext = extensions()
    report = advise([Job("test", POSTGRES_URL, POSTGRES_URL, query_of(shop), [42])],
                    Options(verify_with="transaction")).to_dict()
    q = report["queries"][0]
    assert q["status"] == "advice" and q["verdict"] == f"seq scan on orders ({ROWS:,} rows)"
    [rec] = q["recommendations"]
    assert rec["columns"] == ["customer_id"] and rec["index_name"] == "rayflow_advise_orders_customer_id"
    assert rec["ddl"] == (f'CREATE INDEX "rayflow_advise_orders_customer_id" ON "{shop}"."orders" '
                          '("customer_id")')
    v = rec["verification"]
    assert v["method"] == "transaction" and v["uses_index"] and v["helps"]
    assert v["cost_after"] < v["cost_before"]
    assert v["time_before_ms"] > 0 and v["time_after_ms"] > 0 and v["speedup"] > 1
    print(f"\n1M rows, transaction: cost {v['cost_before']} -> {v['cost_after']}, time {v['time_before_ms']} ms "
          f"-> {v['time_after_ms']} ms, speed-up {v['speedup']}x; plan {v['plan_before']} -> {v['plan_after']}")
    check_indexes_flagged(report["databases"][0], shop)
    assert indexes_in(shop) == PLANTED and left_behind() == []
    assert extensions() == before_ext


@pytest.mark.slow
def test_hypothetical_index_with_hypopg(shop):
    if not hypopg_here():
        pytest.skip("hypopg is not installed on the test server (apt-get install postgresql-15-hypopg)")
    before_ext = extensions()
    report = advise([Job("test", POSTGRES_URL, POSTGRES_URL, query_of(shop), [42])],
                    Options(verify_with="hypopg")).to_dict()
    [rec] = report["queries"][0]["recommendations"]
    v = rec["verification"]
    assert v["method"] == "hypopg" and v["uses_index"] and v["cost_after"] < v["cost_before"]
    assert v["time_after_ms"] is None
    print(f"\n1M rows, hypopg: cost {v['cost_before']} -> {v['cost_after']}")
    assert indexes_in(shop) == PLANTED and left_behind() == [] and extensions() == before_ext


@pytest.mark.slow
def test_cli_one_query_json(shop):
    run = cli("--url", POSTGRES_URL, "--query", query_of(shop), "--param", "42", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    [rec] = report["queries"][0]["recommendations"]
    v = rec["verification"]
    assert rec["columns"] == ["customer_id"] and v["helps"] and v["cost_after"] < v["cost_before"]
    if v["method"] == "transaction":
        assert v["speedup"] > 1
    check_indexes_flagged(report["databases"][0], shop)
    assert report["summary"]["recommendations"] == 1
    assert indexes_in(shop) == PLANTED and left_behind() == []


@pytest.mark.slow
def test_cli_spec_file_with_a_secret_url(shop, tmp_path):
    password = "s3cr3t-advise-pw"       # the test server trusts local connections: any password does
    secret_url = POSTGRES_URL.replace("postgres@", f"postgres:{password}@")
    spec = tmp_path / "shop.yaml"
    spec.write_text(f"""
name: shop
inputs: {{customer: 42}}
components:
  - id: customer_orders
    type: sql
    url: {{$secret: ADVISE_TEST_DB}}
    query: "SELECT id, amount FROM {shop}.orders WHERE customer_id = $1"
    params: [{{$input: customer}}]
  - id: pick
    function: tests.fns.basic:one
  - id: picked_orders
    type: sql
    url: {{$secret: ADVISE_TEST_DB}}
    query: "SELECT id FROM {shop}.orders WHERE customer_id = $1"
connections:
  - {{from: pick, to: picked_orders, port: params}}
""")
    run = cli(str(spec), "--json", "--verify-with", "transaction", env={"ADVISE_TEST_DB": secret_url})
    assert run.returncode == 0, run.stderr
    assert password not in run.stdout + run.stderr
    report = json.loads(run.stdout)
    first, second = report["queries"]
    assert first["source"] == "shop.yaml: customer_orders" and first["params"] == 1
    [rec] = first["recommendations"]
    assert rec["columns"] == ["customer_id"] and rec["verification"]["speedup"] > 1
    assert second["status"] == "skipped" and "upstream" in second["verdict"]
    assert indexes_in(shop) == PLANTED and left_behind() == []


def test_cli_unreachable_database_exits_2_with_one_redacted_line():
    run = cli("--url", "postgresql://someone:hunter2-advise@127.0.0.1:1/nowhere", "--query", "SELECT 1", timeout=60)
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "cannot connect to postgresql://someone:***@127.0.0.1:1/nowhere" in lines[0]
    assert "hunter2-advise" not in run.stdout + run.stderr


def test_cli_bad_usage_exits_2(tmp_path):
    assert cli(timeout=60).returncode == 2
    assert cli("--url", "sqlite:///x.db", timeout=60).returncode == 2
    assert cli("--param", "1", timeout=60).returncode == 2
    bad = cli("--url", f"sqlite:///{tmp_path / 'x.db'}", "--query", "SELECT * FROM nosuch", timeout=60)
    assert bad.returncode == 2 and "nosuch" in bad.stderr


def test_postgres_store_reads(postgres_url):
    from rayflow.store.urls import open_store

    open_store(postgres_url).close()     # creates the store's tables in the test's schema
    run = cli("--store", with_params(postgres_url, max_size=2), "--json", timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert len(report["queries"]) >= 6 and all(q["status"] in ("ok", "advice") for q in report["queries"])
    assert all(q["generic"] for q in report["queries"])


# -- SQLite --------------------------------------------------------------------------------------

SQLITE_ROWS = 200_000


@pytest.fixture
def events_db(tmp_path):
    path = tmp_path / "events.db"
    with Session(f"sqlite:///{path}") as s:
        s.rows("CREATE TABLE events (id INTEGER PRIMARY KEY, user_id INTEGER, kind TEXT, at REAL)")
        s.rows(f"""WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {SQLITE_ROWS})
                   INSERT INTO events SELECT x, (x * 7919) % 20000, 'k' || (x % 7), x * 0.5 FROM n""")
        s.rows("CREATE INDEX events_kind ON events (kind)")
        s.rows("CREATE INDEX events_kind_at ON events (kind, at)")
        s._conn.commit()
    return path


def sqlite_indexes(path) -> set[str]:
    with Session(f"sqlite:///{path}") as s:
        return {r[0] for r in s.rows("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_sqlite_full_scan_recommended_verified_rolled_back(events_db):
    url = f"sqlite:///{events_db}"
    report = advise([Job("test", url, url, "SELECT id, at FROM events WHERE user_id = ?", [42])]).to_dict()
    q = report["queries"][0]
    assert q["verdict"] == f"full scan of events ({SQLITE_ROWS:,} rows)" and q["plan"] == ["SCAN events"]
    [rec] = q["recommendations"]
    assert rec["ddl"] == 'CREATE INDEX "rayflow_advise_events_user_id" ON "events" ("user_id")'
    v = rec["verification"]
    assert v["plan_after"] == ["SEARCH events USING INDEX rayflow_advise_events_user_id (user_id=?)"]
    assert v["uses_index"] and v["helps"] and v["speedup"] > 1
    db = report["databases"][0]
    assert not db["unused_known"] and db["unused"] == [] and "cannot be known" in db["notes"][0]
    assert [(d["index"], d["covered_by"]) for d in db["duplicates"]] == [("events_kind", "events_kind_at")]
    assert sqlite_indexes(events_db) == {"events_kind", "events_kind_at"}


def test_sqlite_run_id_and_store_through_the_cli(events_db, tmp_path):
    from rayflow.store.port import RunRecord
    from rayflow.store.urls import open_store

    store_url = f"sqlite:///{tmp_path / 'runs.db'}"
    spec = {"name": "events", "inputs": {"user": 7}, "components": [
        {"id": "of_user", "type": "sql", "url": f"sqlite:///{events_db}",
         "query": "SELECT id FROM events WHERE user_id = ? ORDER BY at", "params": [{"$input": "user"}]}]}
    store = open_store(store_url)
    store.create_run(RunRecord(run_id="events-advise-1", name="events", spec=spec, inputs={"user": 9}), [])
    store.close()
    run = cli("events-advise-1", "--store", store_url, "--json", timeout=120)
    assert run.returncode == 0, run.stderr
    [q] = json.loads(run.stdout)["queries"]
    assert q["source"] == "run events-advise-1: of_user"
    assert [r["columns"] for r in q["recommendations"]] == [["user_id"]]
    own = cli("--store", store_url, "--json", timeout=120)
    assert own.returncode == 0, own.stderr
    assert all(q["verdict"] == "ok" for q in json.loads(own.stdout)["queries"])
    missing = cli("no-such-run", "--store", store_url, timeout=60)
    assert missing.returncode == 2 and "no-such-run" in missing.stderr
    assert sqlite_indexes(events_db) == {"events_kind", "events_kind_at"}
