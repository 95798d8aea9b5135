"""The checkpoint location: inline batches and single files, a later file wins, partial
writes are ignored, tampered pickles are refused. No Ray."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from rayflow.core.errors import ConfigError
from rayflow.data import codec
from rayflow.data.codec import UntrustedData
from rayflow.store.checkpoints import CheckpointStore, checkpoint_url, default_url


class Thing:
    def __init__(self, v):
        self.v = v


def test_inline_and_single_checkpoints_round_trip(tmp_path):
    store = CheckpointStore(str(tmp_path / "ck"))
    store.write_inline("run/1", {"a": codec.encode(1).blob(), "b c": codec.encode({"k": [1]}).blob()})
    store.write_one("run/1", "big/one", np.arange(5))
    store.write_one("run/1", "table", pa.table({"x": [1, 2]}))
    found = store.index("run/1")
    assert sorted(found) == ["a", "b c", "big/one", "table"]
    assert store.load(found["a"]) == 1 and store.load(found["b c"]) == {"k": [1]}
    assert store.load(found["big/one"]).tolist() == [0, 1, 2, 3, 4]
    assert store.load(found["table"]).column("x").to_pylist() == [1, 2]
    assert store.index("other") == {}


def test_a_later_file_wins_and_partial_files_are_ignored(tmp_path):
    store = CheckpointStore(f"file://{tmp_path / 'ck'}")
    store.write_inline("r", {"a": codec.encode("old").blob()})
    store.write_inline("r", {"a": codec.encode("new").blob()})
    assert store.load(store.index("r")["a"]) == "new"
    run_dir = tmp_path / "ck" / "r" / "one"
    run_dir.mkdir(parents=True)
    (run_dir / "x.rfc.tmp-1234").write_bytes(b"partial")
    (tmp_path / "ck" / "r" / "inline-9.arrow").write_bytes(b"not arrow")   # unreadable: as if absent
    assert sorted(store.index("r")) == ["a"]


def test_a_tampered_pickle_checkpoint_is_refused(tmp_path):
    store = CheckpointStore(str(tmp_path))
    store.write_one("r", "obj", Thing(3))
    path = tmp_path / "r" / "one" / "obj.rfc"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(UntrustedData):
        store.load(store.index("r")["obj"])


def test_locations_from_configuration(monkeypatch, tmp_path):
    monkeypatch.delenv("RAYFLOW_CHECKPOINTS", raising=False)
    assert checkpoint_url(None) == default_url()
    assert checkpoint_url("off") is None
    monkeypatch.setenv("RAYFLOW_CHECKPOINTS", str(tmp_path))
    assert checkpoint_url(None) == str(tmp_path)
    assert checkpoint_url("s3://bucket/x") == "s3://bucket/x"
    with pytest.raises(ConfigError, match="checkpoint location 'nosuch://x' cannot be opened"):
        CheckpointStore("nosuch://x")
