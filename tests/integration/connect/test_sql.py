"""SQL components against the real PostgreSQL, MariaDB and SQLite of this machine: reads as
Arrow, a stream from a SQL source through two batch stages into a SQL sink, upserts and
bulk loads, and injection attempts through every parameter path staying data."""

from __future__ import annotations

import pyarrow as pa
import pytest

import rayflow as rf
from rayflow.connect.sql import pool
from tests.support.databases import database

DIALECTS = ["postgresql", "sqlite", "mysql"]
EVIL = "x'); DROP TABLE victims; --"


@pytest.fixture(params=DIALECTS)
def db(request, tmp_path):
    d = database(request.param, tmp_path)
    yield d
    pool.close_all()
    d.drop_all()


def spec(components, connections=(), inputs=None, name="sqlflow"):
    return rf.WorkflowSpec.model_validate({"name": name, "inputs": inputs or {}, "components": components,
                                           "connections": [{"from": a, "to": b, **({"port": p} if p else {})}
                                                           for a, b, p in connections]})


def test_read_binds_params_from_config_and_inputs(db, service):
    t = db.name("orders")
    db.fill(t, 50)
    s = spec([{"id": "orders", "type": "sql", "url": db.url,
               "query": f"SELECT id, amount FROM {t} WHERE customer = {db.ph} ORDER BY id",
               "params": [{"$input": "customer"}]}], inputs={"customer": 7})
    out = rf.run(s, executor="local", customer=7)
    assert isinstance(out, pa.Table)
    assert out.column("id").to_pylist() == [7]   # customer = id % 1000 over ids 1..50
    assert out.column("amount").to_pylist() == [3.5]


def put_secret(name: str, value: str) -> None:
    """``name`` in the secrets file of this test session ($RAYFLOW_HOME/secrets, which the Ray
    workers read too: they started before any test could set an environment variable)."""
    from rayflow.connect.secrets import secrets_file

    path = secrets_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [ln for ln in (path.read_text().splitlines() if path.exists() else []) if not ln.startswith(name + "=")]
    path.write_text("\n".join([*lines, f"{name}={value}"]) + "\n")
    path.chmod(0o600)


def test_stream_from_sql_through_two_batch_stages_into_sql(db, ray_session, service):
    src, dst = db.name("src"), db.name("dst")
    db.fill(src, 5000)
    db.run(f"CREATE TABLE {dst} (id BIGINT PRIMARY KEY, customer INTEGER, amount DOUBLE PRECISION, "
           f"note VARCHAR(40), label VARCHAR(40))".replace("DOUBLE PRECISION", "DOUBLE" if db.dialect == "mysql"
                                                           else "DOUBLE PRECISION"))
    put_secret("CONNECT_TEST_DB", db.url)
    s = spec([
        {"id": "src", "type": "sql", "url": {"$secret": "CONNECT_TEST_DB"},
         "query": f"SELECT id, customer, amount, note FROM {src} ORDER BY id", "batch_size": 700},
        {"id": "double", "type": "batch", "function": "tests.fns.connect:double"},
        {"id": "tag", "type": "batch", "function": "tests.fns.connect:tag", "config": {"label": EVIL}},
        {"id": "sink", "type": "sql", "url": {"$secret": "CONNECT_TEST_DB"}, "table": dst, "mode": "upsert",
         "key": ["id"], "batch_size": 700},
    ], [("src", "double", None), ("double", "tag", None), ("tag", "sink", None)])
    plan = rf.explain(s)
    assert plan.streams == (("src", "double", "tag", "sink"),)
    h = rf.submit(s, executor="ray")
    written = h.result(timeout=240)
    assert sum(written.column("rows").to_pylist()) == 5000
    assert db.run(f"SELECT count(*), sum(amount), min(label), max(label) FROM {dst}", fetch=True)[0] == \
        (5000, sum(i * 1.0 for i in range(1, 5001)), EVIL, EVIL)
    states = {cid: c["state"] for cid, c in h.metrics()["components"].items()}
    assert states == dict.fromkeys(["src", "double", "tag", "sink"], "SUCCEEDED")
    # the upsert again: the same rows, updated in place, nothing duplicated
    rf.run(s, executor="ray")
    assert db.run(f"SELECT count(*) FROM {dst}", fetch=True)[0][0] == 5000


def test_upsert_updates_and_copy_bulk_loads(db, service):
    t = db.name("items")
    db.run(f"CREATE TABLE {t} (id BIGINT PRIMARY KEY, name VARCHAR(60), qty INTEGER)")
    first = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"], "qty": [1, 2, 3]})
    assert rf.sql(db.url, table=t, mode="insert", data=first).column("rows").to_pylist() == [3]
    change = pa.table({"id": [2, 3, 4], "name": ["B", EVIL, "d"], "qty": [20, 30, 40]})
    rf.sql(db.url, table=t, mode="upsert", key=["id"], data=change)
    bulk = pa.table({"id": pa.array(range(100, 20_100), pa.int64()), "name": [f"n{i}" for i in range(20_000)],
                     "qty": pa.array(range(20_000), pa.int32())})
    assert sum(rf.sql(db.url, table=t, mode="copy", data=bulk, batch_size=8000).column("rows").to_pylist()) == 20_000
    rows = db.run(f"SELECT id, name, qty FROM {t} WHERE id < 100 ORDER BY id", fetch=True)
    assert rows == [(1, "a", 1), (2, "B", 20), (3, EVIL, 30), (4, "d", 40)]
    assert db.run(f"SELECT count(*), sum(qty) FROM {t} WHERE id >= 100", fetch=True)[0] == (20_000, sum(range(20_000)))


def test_injection_attempts_stay_data(db, service):
    victims, t = db.name("victims"), db.name("people")
    db.run(f"CREATE TABLE {victims} (id INTEGER)")
    db.run(f"CREATE TABLE {t} (id BIGINT PRIMARY KEY, name VARCHAR(80))")
    hostile = [f"x'); DROP TABLE {victims}; --", "' OR '1'='1", f"1; DELETE FROM {t}", "\\'; --"]
    rf.sql(db.url, table=t, mode="insert", data=pa.table({"id": list(range(len(hostile))), "name": hostile}))
    for i, value in enumerate(hostile):   # a literal param, an input, an upstream value: all bound
        got = rf.sql(db.url, f"SELECT id FROM {t} WHERE name = {db.ph}", params=[value])
        assert got.column("id").to_pylist() == [i]
    s = spec([{"id": "pick", "type": "python", "function": "tests.fns.connect:params_of", "config": {"value": hostile[1]}},
              {"id": "q", "type": "sql", "url": db.url, "query": f"SELECT count(*) AS n FROM {t} WHERE name = {db.ph}"},
              {"id": "q2", "type": "sql", "url": db.url, "query": f"SELECT count(*) AS n FROM {t} WHERE name = {db.ph}",
               "params": [{"$input": "who"}]}],
             [("pick", "q", "params")], inputs={"who": hostile[0]})
    out = rf.run(s, executor="local")
    assert out["q"].column(0).to_pylist() == [1] and out["q2"].column(0).to_pylist() == [1]
    # a table name that varies comes from the allow-list only
    ok = rf.sql(db.url, "SELECT count(*) AS n FROM {table}", table=t, tables=[t])
    assert ok.column(0).to_pylist() == [len(hostile)]
    with pytest.raises(rf.SpecError, match="not one of the allowed tables"):
        rf.sql(db.url, "SELECT * FROM {table}", table=f"{t}; DROP TABLE {victims}", tables=[t])
    from rayflow.connect.sql.errors import SqlConfigError
    with pytest.raises(SqlConfigError, match="not a plain"):
        rf.sql(db.url, table=f"{t} --", mode="insert", data=pa.table({"id": [9]}))
    with pytest.raises(SqlConfigError, match="is not in table"):   # a hostile column name never reaches SQL
        rf.sql(db.url, table=t, mode="insert", data=pa.table({"id": [9], 'name") VALUES (1); --': ["z"]}))
    assert db.run(f"SELECT count(*) FROM {victims}", fetch=True) == [(0,)]
    assert db.run(f"SELECT count(*) FROM {t}", fetch=True) == [(len(hostile),)]


@pytest.mark.slow
def test_a_million_rows_read_as_arrow(db, ray_session, service):
    t = db.name("big")
    db.fill(t, 1_000_000)
    out = rf.run(spec([{"id": "big", "type": "sql", "url": db.url,
                        "query": f"SELECT id, customer, amount, note FROM {t}"}]), executor="ray")
    assert isinstance(out, pa.Table) and out.num_rows == 1_000_000
    assert out.schema.names == ["id", "customer", "amount", "note"]
    assert pa.compute.sum(out.column("id")).as_py() == 1_000_000 * 1_000_001 // 2
    assert pa.types.is_floating(out.schema.field("amount").type)


def test_a_password_in_a_spec_is_refused_in_one_line():
    with pytest.raises(rf.SpecError) as err:
        rf.explain(spec([{"id": "orders", "type": "sql", "url": "postgresql://u:hunter2@db/x", "query": "SELECT 1"}]))
    message = str(err.value)
    assert "component 'orders' field 'url'" in message and "{$secret: NAME}" in message
    assert "hunter2" not in message and "\n" not in message


def test_bad_fields_name_the_component_and_field():
    with pytest.raises(rf.SpecError, match=r"component 'w' field 'key'.*upsert"):
        rf.explain(spec([{"id": "w", "type": "sql", "url": "sqlite:///x.db", "table": "t", "mode": "upsert"},
                         {"id": "a", "function": "tests.fns.connect:params_of"}], [("a", "w", None)]))
    with pytest.raises(rf.SpecError, match=r"component 'q' field 'querry': unknown field"):
        rf.explain(spec([{"id": "q", "type": "sql", "url": "sqlite:///x.db", "querry": "SELECT 1"}]))
    with pytest.raises(rf.SpecError, match=r"component 'p' field 'query': unknown field"):
        rf.explain(spec([{"id": "p", "function": "tests.fns.connect:params_of", "query": "SELECT 1"}]))
    with pytest.raises(rf.SpecError, match=r"component 'q' field 'statement_timeout_s'"):
        rf.explain(spec([{"id": "q", "type": "sql", "url": "sqlite:///x.db", "query": "SELECT 1",
                          "statement_timeout_s": -1}]))


def test_a_database_error_fails_the_component_with_its_message_redacted(service, postgres_server):
    url = postgres_server.replace("postgres@", "postgres:s3cr3t-pw@")   # trust auth: the password is unused
    put_secret("CONNECT_TEST_SECRET_DB", url)
    s = spec([{"id": "bad", "type": "sql", "url": {"$secret": "CONNECT_TEST_SECRET_DB"},
               "query": "SELECT * FROM no_such_table_here"}])
    with pytest.raises(rf.WorkflowFailed) as err:
        rf.run(s, executor="local")
    text = str(err.value) + repr(err.value.errors)
    assert "no_such_table_here" in text and "component 'bad'" in text
    assert "s3cr3t-pw" not in text
    record = rf.get_run(err.value.run_id)
    assert "s3cr3t-pw" not in repr(record.status()) + str(record.metrics()) + record.logs("bad")


def test_a_column_added_after_a_write_is_written_next_time(db, service):
    t = db.name("grows")
    db.run(f"CREATE TABLE {t} (id BIGINT PRIMARY KEY, name VARCHAR(20))")
    rf.sql(db.url, table=t, mode="insert", data=pa.table({"id": [1], "name": ["a"]}))
    db.run(f"ALTER TABLE {t} ADD COLUMN qty INTEGER")   # this process read the columns before
    rf.sql(db.url, table=t, mode="insert", data=pa.table({"id": [2], "name": ["b"], "qty": pa.array([5], pa.int32())}))
    assert db.run(f"SELECT id, name, qty FROM {t} ORDER BY id", fetch=True) == [(1, "a", None), (2, "b", 5)]
