"""PostgreSQL-specific behaviour: URL settings, migrations, the managed pool, open_store.

The RunStore semantics themselves are in test_store_contract.py; the restart of a real
server is in test_postgres_recovery.py, the query plans in test_postgres_plans.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import pickle
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from rayflow.core.errors import ConfigError, StoreError, StoreUnavailable
from rayflow.store import pgschema
from rayflow.store.pgurl import PoolSettings, parse_postgres_url
from rayflow.store.port import RunRecord
from rayflow.store.urls import open_store
from tests.support.postgres import pg_run, with_params
from tests.support.tcpproxy import TcpProxy

# -- URL settings (no server) -----------------------------------------------------------


def test_url_defaults_and_password_removed() -> None:
    parsed = parse_postgres_url("postgresql://ann:s3cret@db.example:6543/runs")
    assert parsed.settings == PoolSettings()
    assert parsed.public == "postgresql://ann@db.example:6543/runs"
    assert parsed.dsn == "postgresql://ann:s3cret@db.example:6543/runs"
    assert parsed.where == "db.example:6543/runs"
    assert parsed.server_settings() == {"statement_timeout": "30000", "application_name": "rayflow"}


def test_url_settings_are_read_and_stripped_from_the_dsn() -> None:
    parsed = parse_postgres_url(
        "postgres://ann@h/db?schema=team_a&min_size=0&max_size=4&acquire_timeout=1.5&connect_timeout=2"
        "&statement_timeout=0&max_idle_lifetime=60&max_lifetime=600&health_check_idle=inf"
        "&sslmode=disable&application_name=mine&password=pw"
    )
    assert parsed.settings == PoolSettings(
        schema="team_a", min_size=0, max_size=4, acquire_timeout=1.5, connect_timeout=2.0,
        statement_timeout=0.0, max_idle_lifetime=60.0, max_lifetime=600.0, health_check_idle=float("inf"),
    )
    assert parsed.dsn == "postgres://ann@h/db?sslmode=disable&application_name=mine&password=pw"
    assert "pw" not in parsed.public and "schema=team_a" in parsed.public
    assert parsed.where == "h:5432/db"
    assert parsed.settings.command_timeout is None   # no statement limit: no client limit
    assert parsed.server_settings() == {"statement_timeout": "0", "search_path": "team_a"}


def test_socket_url_keeps_its_form_and_encoding() -> None:
    parsed = parse_postgres_url("postgresql://ann@/runs?host=/var/run/postgresql&password=a%26b&max_size=3")
    assert parsed.public == "postgresql://ann@/runs?host=/var/run/postgresql&max_size=3"
    assert parsed.dsn == "postgresql://ann@/runs?host=/var/run/postgresql&password=a%26b"
    assert parsed.where == "/var/run/postgresql:5432/runs"


@pytest.mark.parametrize(("query", "named"), [
    ("max_size=0", "max_size='0'"),
    ("min_size=5&max_size=2", "min_size=5 is above max_size=2"),
    ("acquire_timeout=0", "acquire_timeout='0'"),
    ("statement_timeout=-1", "statement_timeout='-1'"),
    ("max_lifetime=inf", "max_lifetime='inf'"),
    ("min_size=two", "min_size='two'"),
    ("schema=Team-A", "schema='Team-A'"),
])
def test_bad_url_setting_is_a_config_error_naming_it(query: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named) as info:
        parse_postgres_url(f"postgresql://ann:s3cret@h/db?{query}")
    assert "s3cret" not in str(info.value)


# -- open_store --------------------------------------------------------------------------


def test_open_store_postgres_url(postgres_url: str) -> None:
    store = open_store(postgres_url)
    try:
        assert type(store).__name__ == "PostgresStore" and store.url == postgres_url
        assert repr(store) == f"PostgresStore({postgres_url!r})"
    finally:
        store.close()


def test_password_never_shown(postgres_server: str, postgres_schema: str) -> None:
    url = with_params(postgres_server.replace("postgres@", "postgres:s3cret@"), schema=postgres_schema)
    store = open_store(url)   # the shared server trusts local connections: any password works
    try:
        assert "s3cret" not in store.url and "s3cret" not in repr(store)
        assert store.url == with_params(postgres_server, schema=postgres_schema)
    finally:
        store.close()


def test_open_store_unreachable_server_is_one_line_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        open_store("postgresql://postgres:s3cret@127.0.0.1:1/test?connect_timeout=2")
    message = str(info.value)
    assert message.startswith("cannot connect to PostgreSQL at 127.0.0.1:1/test: ")
    assert "\n" not in message and "s3cret" not in message


def test_open_store_missing_database_names_it(postgres_server: str) -> None:
    url = postgres_server.rsplit("/", 1)[0] + "/no_such_db_rayflow"
    with pytest.raises(ConfigError, match='cannot connect to PostgreSQL at .*/no_such_db_rayflow: .*does not exist'):
        open_store(url)


def test_open_store_without_asyncpg_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)   # import asyncpg now fails
    monkeypatch.delitem(sys.modules, "rayflow.store.postgres", raising=False)
    with pytest.raises(ConfigError, match=r"needs the asyncpg package.*pip install 'asyncpg>=0.29'"):
        open_store("postgresql://postgres@127.0.0.1:5432/test")


# -- schema and migrations ---------------------------------------------------------------


def columns(url: str, schema: str, table: str) -> dict[str, str]:
    rows = pg_run(url, "SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_schema = $1 AND table_name = $2", schema, table, fetch=True)
    return {r["column_name"]: r["data_type"] for r in rows}


def test_schema_created_with_the_codec_types(postgres_server: str, postgres_schema: str, postgres_url: str) -> None:
    store = open_store(postgres_url)
    try:
        assert store.schema_version() == pgschema.MIGRATIONS[-1][0]
    finally:
        store.close()
    names = {"text": "text", "float8": "double precision", "int8": "bigint", "bool": "boolean", "jsonb": "jsonb"}
    for table in (pgschema.RUNS, pgschema.COMPONENTS, pgschema.EVENTS):
        expected = {c: names[t] for c, t in zip(table.columns, table.types, strict=True)}
        assert columns(postgres_server, postgres_schema, table.name) == expected
    indexes = {r["indexname"] for r in pg_run(
        postgres_server, "SELECT indexname FROM pg_indexes WHERE schemaname = $1", postgres_schema, fetch=True)}
    assert {"runs_status_created", "runs_created", "components_pkey", "events_pkey"} <= indexes
    assert not any("ended" in name for name in indexes)   # see pgschema: no history index


def versions(url: str, schema: str) -> list[tuple[int, float]]:
    rows = pg_run(url, f"SELECT version, applied_at FROM {schema}.schema_version ORDER BY version", fetch=True)
    return [(r["version"], r["applied_at"]) for r in rows]


def test_reopen_keeps_data_and_does_not_rerun_migrations(postgres_server: str, postgres_schema: str,
                                                         postgres_url: str) -> None:
    first = open_store(postgres_url)
    first.create_run(RunRecord(run_id="r1", name="flow", inputs={"k": [1, 2]}), [])
    first.close()
    before = versions(postgres_server, postgres_schema)
    again = open_store(postgres_url)
    try:
        assert again.get_run("r1").inputs == {"k": [1, 2]}
    finally:
        again.close()
    assert versions(postgres_server, postgres_schema) == before


def test_new_migration_step_applies_once(postgres_server: str, postgres_schema: str, postgres_url: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(postgres_url).close()
    known = [v for v, _ in pgschema.MIGRATIONS]
    step = (known[-1] + 1, ("CREATE TABLE extra (x BIGINT)",))
    monkeypatch.setattr(pgschema, "MIGRATIONS", [*pgschema.MIGRATIONS, step])
    open_store(postgres_url).close()
    open_store(postgres_url).close()   # a third open must not create "extra" again
    assert [v for v, _ in versions(postgres_server, postgres_schema)] == [*known, step[0]]


def test_stores_opening_one_new_schema_at_once_migrate_it_once(postgres_server: str, postgres_schema: str,
                                                               postgres_url: str) -> None:
    n = 6
    start, stores, errors = threading.Barrier(n), [], []

    def open_one() -> None:
        try:
            start.wait()
            stores.append(open_store(postgres_url))
        except BaseException as exc:   # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert errors == [] and len(stores) == n
    assert [v for v, _ in versions(postgres_server, postgres_schema)] == [v for v, _ in pgschema.MIGRATIONS]


def test_closed_store_raises_and_refuses_pickling(postgres_url: str) -> None:
    store = open_store(postgres_url)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(store)
    store.close()
    store.close()   # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        store.get_run("r1")


def loop_threads() -> int:
    return sum(t.name == "rayflow-postgres" for t in threading.enumerate())


def test_store_dropped_without_close_ends_its_thread(postgres_url: str) -> None:
    before = loop_threads()
    store = open_store(postgres_url)
    store.get_run("r1")
    assert loop_threads() == before + 1
    del store
    gc.collect()
    deadline = time.monotonic() + 5
    while loop_threads() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert loop_threads() == before


def test_close_lets_a_call_in_flight_finish(postgres_server: str, postgres_url: str, postgres_schema: str) -> None:
    store = open_store(postgres_url)
    store.create_run(RunRecord(run_id="r1", name="flow"), [])
    got: list[object] = []
    with table_locked(postgres_server, f"{postgres_schema}.runs"):
        reader = threading.Thread(target=lambda: got.append(store.get_run("r1")))
        reader.start()
        time.sleep(0.2)   # the read now waits on the lock
        closer = threading.Thread(target=store.close)
        closer.start()
        time.sleep(0.2)
        assert closer.is_alive()   # close() waits for the call in flight
    reader.join(10)
    closer.join(10)
    assert [r.name for r in got] == ["flow"]
    with pytest.raises(RuntimeError, match="closed"):
        store.get_run("r1")


def test_bad_value_is_an_error_of_the_call_not_of_the_connection(postgres_url: str) -> None:
    store = open_store(postgres_url)
    try:
        store.create_run(RunRecord(run_id="r1", name="flow"), [])
        with pytest.raises(Exception) as info:
            store.update_run("r1", n_components="many")
        assert not isinstance(info.value, StoreUnavailable)   # the writer would retry it forever
        assert store.pool_stats()["rebuilds"] == 0
    finally:
        store.close()


def test_values_postgres_cannot_hold_do_not_fail_the_write(postgres_url: str) -> None:
    store = open_store(postgres_url)   # a failed batch would be retried by the writer forever
    try:
        store.create_run(RunRecord(run_id="r1", name="flow", inputs={"path": "C:\\u0000"}), [])
        assert store.get_run("r1").inputs == {"path": "C:\\u0000"}   # a backslash, not a NUL: kept
        store.update_run("r1", summary={"p50_s": float("nan"), "worst": [float("inf"), 2.0]},
                         error="bad bytes: a\x00b", inputs={"k\x00": "v\x00"})
        run = store.get_run("r1")
        assert run.summary == {"p50_s": None, "worst": [None, 2.0]}   # JSONB has no NaN
        assert run.error == "bad bytes: a\ufffdb"                     # nor TEXT a NUL
        assert run.inputs == {"k\ufffd": "v\ufffd"}
    finally:
        store.close()


# -- the pool ----------------------------------------------------------------------------


@contextlib.contextmanager
def table_locked(url: str, table: str) -> Iterator[None]:
    """Hold an ACCESS EXCLUSIVE lock on ``table`` from another connection while inside."""
    import asyncpg

    locked, release = threading.Event(), threading.Event()

    async def hold() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            async with conn.transaction():
                await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                locked.set()
                while not release.is_set():
                    await asyncio.sleep(0.01)
        finally:
            await conn.close()

    thread = threading.Thread(target=asyncio.run, args=(hold(),), daemon=True)
    thread.start()
    assert locked.wait(10), "could not lock the table"
    try:
        yield
    finally:
        release.set()
        thread.join(10)


def test_pool_counts_and_recycles_old_connections(postgres_url: str) -> None:
    store = open_store(with_params(postgres_url, max_lifetime=0.3, min_size=1, max_size=2))
    try:
        store.get_run("x")
        time.sleep(0.4)
        store.get_run("x")   # its connection is now older than max_lifetime: closed on release
        store.get_run("x")
        stats = store.pool_stats()
        assert stats["expired"] >= 1
        assert stats["acquired"] == stats["released"] and stats["in_use"] == 0
        assert set(stats) >= {"acquired", "released", "waits", "exhaustions", "failed_health_checks", "rebuilds"}
    finally:
        store.close()


def test_waits_then_exhaustion_when_every_connection_is_busy(postgres_server: str, postgres_url: str,
                                                             postgres_schema: str) -> None:
    store = open_store(with_params(postgres_url, max_size=1, acquire_timeout=0.3))
    try:
        store.create_run(RunRecord(run_id="r1", name="flow"), [])
        with table_locked(postgres_server, f"{postgres_schema}.runs"):
            blocked = threading.Thread(target=store.get_run, args=("r1",))
            blocked.start()   # takes the only connection and waits on the lock
            time.sleep(0.2)
            with pytest.raises(StoreUnavailable, match=r"no free connection .*max_size=1 all in use"):
                store.get_run("r1")
        blocked.join(10)
        stats = store.pool_stats()
        assert stats["waits"] >= 1 and stats["exhaustions"] == 1 and stats["rebuilds"] == 0
        assert store.get_run("r1").name == "flow"
    finally:
        store.close()


def test_statement_timeout_is_a_store_error(postgres_server: str, postgres_url: str, postgres_schema: str) -> None:
    store = open_store(with_params(postgres_url, statement_timeout=0.2))
    try:
        with table_locked(postgres_server, f"{postgres_schema}.runs"):
            with pytest.raises(StoreError, match="statement timeout") as info:
                store.get_run("r1")
        assert not isinstance(info.value, StoreUnavailable)
        assert store.get_run("r1") is None
    finally:
        store.close()


def test_silently_dropped_connection_fails_its_health_check_and_is_replaced(postgres_server: str,
                                                                           postgres_url: str) -> None:
    host_port = postgres_server.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    url = postgres_url.replace(host_port, f"127.0.0.1:{proxy.port}")
    store = open_store(with_params(url, max_size=1, health_check_idle=0.05, connect_timeout=0.5))
    try:
        store.create_run(RunRecord(run_id="r1", name="flow"), [])
        proxy.freeze()   # the pooled connection now gets no answer, and no error either
        time.sleep(0.1)
        assert store.get_run("r1").name == "flow"
        stats = store.pool_stats()
        assert stats["failed_health_checks"] == 1 and stats["rebuilds"] == 0
    finally:
        store.close()
        proxy.close()


def test_killed_backend_does_not_fail_the_next_calls(postgres_server: str, postgres_url: str,
                                                     postgres_schema: str) -> None:
    store = open_store(with_params(postgres_url, application_name=postgres_schema, max_size=2))
    try:
        store.create_run(RunRecord(run_id="r1", name="flow"), [])
        killed = pg_run(postgres_server, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = $1", postgres_schema, fetch=True)
        assert killed and all(r[0] for r in killed)
        store.update_run("r1", status="RUNNING")
        assert store.get_run("r1").status == "RUNNING"
    finally:
        store.close()
