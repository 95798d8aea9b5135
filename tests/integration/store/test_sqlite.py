"""SQLite-specific behaviour: WAL, migrations, sharing one file, and open_store URLs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from rayflow.core.errors import ConfigError
from rayflow.store import sqlite as sqlite_mod
from rayflow.store.memory import MemoryStore
from rayflow.store.port import ComponentRecord, EventRecord, RunRecord
from rayflow.store.sqlite import SqliteStore
from rayflow.store.urls import DEFAULT_STORE_URL, open_store
from tests.helpers import REPO

REPO_ROOT = REPO


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "runs.db"  # parent dirs do not exist yet


def seed(store: SqliteStore) -> None:
    store.create_run(
        RunRecord(run_id="r1", name="flow", created_at=5.0, inputs={"k": [1, 2]}),
        [ComponentRecord(run_id="r1", component_id="a", resources={"num_cpus": 1})],
    )
    store.append_events([EventRecord(run_id="r1", seq=1, ts=6.0, kind="run_state")])


def raw(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_wal_mode_and_settings(db_path: Path) -> None:
    store = SqliteStore(db_path)
    try:
        assert db_path.parent.is_dir()
        assert store.url == f"sqlite:///{db_path}"
        conn = store._connection()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    finally:
        store.close()
    assert raw(db_path, "PRAGMA journal_mode") == [("wal",)]  # persistent in the file


def test_schema_version_recorded(db_path: Path) -> None:
    store = SqliteStore(db_path)
    assert store.schema_version() == sqlite_mod.MIGRATIONS[-1][0] >= 1
    store.close()
    assert raw(db_path, "SELECT version FROM schema_version ORDER BY version") == [
        (v,) for v, _ in sqlite_mod.MIGRATIONS
    ]
    tables = {r[0] for r in raw(db_path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "components", "events", "schema_version"} <= tables
    indexes = {r[0] for r in raw(db_path, "SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"runs_status_created", "runs_created_id"} <= indexes
    assert "runs_created" not in indexes   # a prefix of runs_created_id (rayflow db advise --store)


def test_reopen_keeps_data_and_does_not_rerun_migrations(db_path: Path) -> None:
    first = SqliteStore(db_path)
    seed(first)
    first.close()
    before = raw(db_path, "SELECT version, applied_at FROM schema_version")
    again = SqliteStore(db_path)  # would fail on CREATE TABLE if migration 1 reran
    try:
        assert again.get_run("r1").inputs == {"k": [1, 2]}
        assert [c.component_id for c in again.get_components("r1")] == ["a"]
        assert again.schema_version() == sqlite_mod.MIGRATIONS[-1][0]
    finally:
        again.close()
    assert raw(db_path, "SELECT version, applied_at FROM schema_version") == before


def test_new_migration_step_applies_once_on_reopen(db_path: Path, monkeypatch) -> None:
    SqliteStore(db_path).close()
    known = [v for v, _ in sqlite_mod.MIGRATIONS]
    step = (known[-1] + 1, ("CREATE TABLE extra (x INTEGER)",))
    monkeypatch.setattr(sqlite_mod, "MIGRATIONS", [*sqlite_mod.MIGRATIONS, step])
    SqliteStore(db_path).close()
    SqliteStore(db_path).close()  # a third open must not try to create "extra" again
    assert [v for (v,) in raw(db_path, "SELECT version FROM schema_version")] == [*known, step[0]]
    assert raw(db_path, "SELECT name FROM sqlite_master WHERE name = 'extra'") == [("extra",)]


def test_component_updates_do_not_maintain_an_unused_index(db_path: Path) -> None:
    SqliteStore(db_path).close()
    indexes = {name for (name,) in raw(db_path, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "components_component_ended" not in indexes


SUBPROCESS_READ = """
import json, sys
from rayflow.store.sqlite import SqliteStore
from rayflow.store.port import ComponentRecord
s = SqliteStore(sys.argv[1])
run = s.get_run("r1")
s.upsert_components([ComponentRecord(run_id="r1", component_id="from-child", state="SUCCEEDED")])
print(json.dumps({"run": run.to_dict(), "events": [e.seq for e in s.get_events("r1")]}))
s.close()
"""


def test_separate_process_reads_and_writes_same_file(db_path: Path) -> None:
    store = SqliteStore(db_path)
    try:
        seed(store)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        out = subprocess.run(
            [sys.executable, "-c", SUBPROCESS_READ, str(db_path)],
            capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        child = json.loads(out.stdout)
        assert child["run"]["inputs"] == {"k": [1, 2]} and child["events"] == [1]
        # while this store stays open, it sees what the child process wrote
        assert [c.component_id for c in store.get_components("r1")] == ["a", "from-child"]
    finally:
        store.close()


def test_closed_store_raises(db_path: Path) -> None:
    store = SqliteStore(db_path)
    store.close()
    store.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        store.get_run("r1")


# -- open_store URLs ------------------------------------------------------------------


def test_open_store_memory() -> None:
    store = open_store("memory://")
    assert isinstance(store, MemoryStore) and store.url == "memory://"


def test_open_store_sqlite_absolute_and_relative(tmp_path: Path, monkeypatch) -> None:
    absolute = open_store(f"sqlite:///{tmp_path}/abs.db")  # sqlite:////tmp/...
    assert isinstance(absolute, SqliteStore) and absolute.path == tmp_path / "abs.db"
    absolute.close()
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///rel/x.db")
    assert relative.path == tmp_path / "rel" / "x.db"
    assert relative.url == f"sqlite:///{tmp_path}/rel/x.db"
    relative.close()
    reopened = open_store(relative.url)  # a store's url opens the same file
    assert reopened.path == relative.path
    reopened.close()


def test_open_store_sqlite_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    store = open_store("sqlite:///~/.rayflow/x.db")
    assert store.path == tmp_path / ".rayflow" / "x.db" and store.path.exists()
    store.close()


def test_open_store_default_and_env(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAYFLOW_STORE", raising=False)
    assert DEFAULT_STORE_URL == "sqlite:///~/.rayflow/rayflow.db"
    default = open_store(None)
    assert default.path == tmp_path / ".rayflow" / "rayflow.db"
    default.close()
    monkeypatch.setenv("RAYFLOW_STORE", "memory://")
    assert isinstance(open_store(None), MemoryStore)


@pytest.mark.parametrize("url", ["mysql://h/db", "sqlite://", "sqlite:///", "runs.db", ""])
def test_open_store_rejects_unknown_urls(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_store(url)
    assert repr(url) in str(info.value) or "names no file" in str(info.value)


def test_a_version_1_database_upgrades_and_keeps_its_rows(db_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sqlite_mod, "MIGRATIONS", sqlite_mod.MIGRATIONS[:1])
    old = SqliteStore(db_path)
    assert old.schema_version() == 1
    old.close()
    monkeypatch.undo()
    with sqlite3.connect(db_path) as raw:  # rows written by a version-1 rayflow
        raw.execute("INSERT INTO runs (run_id, name, status, created_at) VALUES ('r1', 'wf', 'SUCCEEDED', 1.0)")
        raw.execute("INSERT INTO components (run_id, component_id, state) VALUES ('r1', 'a', 'SUCCEEDED')")
    new = SqliteStore(db_path)
    assert new.schema_version() == sqlite_mod.MIGRATIONS[-1][0]
    (comp,) = new.get_components("r1")
    assert comp.state == "SUCCEEDED" and comp.cpu_s is None and comp.peak_rss_bytes is None
    comp.cpu_s, comp.peak_rss_bytes = 0.5, 123
    new.upsert_components([comp])
    (again,) = new.get_components("r1")
    assert (again.cpu_s, again.peak_rss_bytes) == (0.5, 123)
    new.close()


def test_a_new_database_and_its_folders_are_the_owners_alone(tmp_path):
    import stat

    from rayflow.store.port import RunRecord

    db = tmp_path / "a" / "b" / "runs.db"
    store = sqlite_mod.SqliteStore(db)
    try:
        store.insert_run(RunRecord("r1", "wf", "PENDING", created_at=1.0))   # the -wal and -shm files appear
        for path in [db, *db.parent.glob("runs.db-*")]:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        for folder in (db.parent, db.parent.parent):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    finally:
        store.close()


def test_an_existing_database_keeps_its_mode(tmp_path):
    import stat

    db = tmp_path / "shared.db"
    db.touch(mode=0o640)
    db.chmod(0o640)
    sqlite_mod.SqliteStore(db).close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o640   # the owner chose it: left as it is
