"""The learned models a run store keeps (``save_model``/``load_model``), run against every
adapter (memory, SQLite, PostgreSQL in a schema of its own): the resource model lives with
the history it learned from, so a team's shared store shares one model."""

from __future__ import annotations

import threading

import pytest

from rayflow.store.port import RunStore
from tests.contracts.test_run_store import ADAPTERS


@pytest.fixture(params=sorted(ADAPTERS))
def store(request: pytest.FixtureRequest):
    s = ADAPTERS[request.param](request)
    yield s
    s.close()


def test_no_model_saved_is_none(store: RunStore) -> None:
    assert store.load_model("resources") is None


def test_saved_bytes_come_back_as_saved_with_the_store_clock(store: RunStore) -> None:
    blob = bytes(range(256)) * 40 + b"\0pickle\0"   # any bytes, NULs and all
    before = store.db_now()
    store.save_model("resources", blob)
    got = store.load_model("resources")
    assert got is not None
    data, saved_at = got
    assert data == blob and isinstance(data, bytes)
    assert before - 1.0 <= saved_at <= store.db_now() + 1.0


def test_a_later_save_replaces_and_has_a_later_saved_at(store: RunStore) -> None:
    store.save_model("resources", b"first")
    first = store.load_model("resources")
    store.save_model("resources", b"second")   # at once: saved_at must still move on
    second = store.load_model("resources")
    assert first is not None and second is not None
    assert second[0] == b"second" and second[1] > first[1]


def test_models_are_kept_by_name(store: RunStore) -> None:
    store.save_model("resources", b"a")
    store.save_model("other", b"b")
    assert store.load_model("resources")[0] == b"a"
    assert store.load_model("other")[0] == b"b"
    assert store.load_model("missing") is None


def test_concurrent_saves_leave_one_whole_model(store: RunStore) -> None:
    blobs = [bytes([i]) * 50_000 for i in range(6)]
    threads = [threading.Thread(target=store.save_model, args=("resources", b)) for b in blobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.load_model("resources")[0] in blobs


def test_a_model_survives_reopening_a_durable_store(request: pytest.FixtureRequest, tmp_path) -> None:
    from rayflow.store.sqlite import SqliteStore

    path = tmp_path / "runs.db"
    s = SqliteStore(path)
    s.save_model("resources", b"kept")
    s.close()
    again = SqliteStore(path)
    try:
        assert again.load_model("resources")[0] == b"kept"
        assert again.schema_version() >= 9
    finally:
        again.close()
