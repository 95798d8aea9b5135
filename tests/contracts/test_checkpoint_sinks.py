"""The checkpoint-sink contract (rayflow.core.records.CheckpointSink, and the location
around it: write_inline, write_one, index, load, delete_run), run against the real
``CheckpointStore`` on a temporary folder and the in-memory ``MemoryCheckpoints``:
both keep, list, read back and forget outputs the same way. No Ray."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from rayflow.core.records import Checkpoint, CheckpointSink
from rayflow.data import codec
from rayflow.execute.port import CheckpointTarget
from rayflow.store.checkpoints import CheckpointStore, MemoryCheckpoints


@pytest.fixture(params=["store", "memory"])
def sink(request, tmp_path):
    if request.param == "store":
        return CheckpointStore(str(tmp_path / "ck"))
    return MemoryCheckpoints()


def test_both_are_checkpoint_sinks(sink):
    assert isinstance(sink, CheckpointSink)


def test_an_unknown_run_has_no_checkpoints(sink):
    assert sink.index("nosuch") == {}
    sink.delete_run("nosuch")   # deleting what is not there is no error


def test_write_one_then_load_round_trips(sink):
    sink.write_one("run/1", "big/one", np.arange(5))
    sink.write_one("run/1", "obj", {"k": [1, 2]})
    found = sink.index("run/1")
    assert sorted(found) == ["big/one", "obj"]
    assert all(isinstance(c, Checkpoint) and c.component_id == cid for cid, c in found.items())
    assert found["obj"].blob is None and found["obj"].path   # kept in a file of its own
    assert sink.load(found["big/one"]).tolist() == [0, 1, 2, 3, 4]
    assert sink.load(found["obj"]) == {"k": [1, 2]}


def test_inline_entries_are_indexed_with_their_blobs(sink):
    sink.write_inline("r", {"a": codec.encode(1).blob(), "b c": codec.encode("x").blob()})
    sink.write_inline("r", {})   # nothing to write: no file, nothing changes
    found = sink.index("r")
    assert sorted(found) == ["a", "b c"]
    assert found["a"].blob is not None and found["a"].path is None
    assert sink.load(found["a"]) == 1 and sink.load(found["b c"]) == "x"


def test_a_later_write_wins(sink):
    sink.write_inline("r", {"a": codec.encode("old").blob()})
    sink.write_inline("r", {"a": codec.encode("new").blob()})
    sink.write_one("r", "b", "old")
    sink.write_one("r", "b", "new")
    found = sink.index("r")
    assert sink.load(found["a"]) == "new" and sink.load(found["b"]) == "new"


def test_runs_are_separate_and_a_deleted_run_is_gone(sink):
    sink.write_one("r1", "a", 1)
    sink.write_one("r2", "a", 2)
    sink.write_inline("r1", {"b": codec.encode(3).blob()})
    gone = sink.index("r1")["a"]
    sink.delete_run("r1")
    assert sink.index("r1") == {}
    assert sink.load(sink.index("r2")["a"]) == 2
    with pytest.raises(FileNotFoundError):
        sink.load(gone)


def test_the_index_is_a_copy(sink):
    sink.write_one("r", "a", 1)
    found = sink.index("r")
    found.clear()
    assert sorted(sink.index("r")) == ["a"]


def test_a_checkpoint_target_saves_and_loads_through_its_sink(sink):
    target = CheckpointTarget(sink, "run-7")
    target.save("c", [1, 2, 3])
    assert target.load(sink.index("run-7")["c"]) == [1, 2, 3]


def test_the_real_store_pickles_as_its_location(tmp_path):
    store = CheckpointStore(str(tmp_path))
    store.write_one("r", "a", 5)
    again = pickle.loads(pickle.dumps(CheckpointTarget(store, "r")))
    assert again.load(again.store.index("r")["a"]) == 5
