"""The log location contract (rayflow/store/logs.py), on a local folder and on an object
store's semantics (pyarrow's mock filesystem: no rename, objects appear whole)."""

from __future__ import annotations

import time

import pytest

from rayflow.store.checkpoints import CheckpointStore
from rayflow.store.logs import AttemptLog, LogStore, log_url


@pytest.fixture(params=["local", "mock"])
def logs(request, tmp_path):
    if request.param == "local":
        return LogStore(str(tmp_path / "loc"))
    return LogStore(f"mock:///{tmp_path.name}/loc")


def test_small_logs_in_batches_and_large_ones_alone_read_back(logs):
    logs.write_batch("r1", [AttemptLog("a", 1, "a says hi\n"), AttemptLog("b", 1, "b\n"), AttemptLog("a", 2, "again\n")])
    logs.write_attempt("r1", AttemptLog("c", 1, "big " * 1000))
    assert logs.attempts("r1", "a") == {1: "a says hi\n", 2: "again\n"}
    assert logs.read("r1", "a") == "again\n" and logs.read("r1", "a", 1) == "a says hi\n"
    assert logs.read("r1", "c") == "big " * 1000
    assert logs.read("r1", "nope") is None and logs.read("r2", "a") is None
    assert logs.read("r1", "a", 7) is None
    assert set(logs.all("r1")) == {"a", "b", "c"}


def test_a_later_file_of_the_same_attempt_wins(logs):
    logs.write_attempt("r1", AttemptLog("a", 1, "as it ran\n"))
    time.sleep(0.01)
    logs.write_attempt("r1", AttemptLog("a", 1, "as it ran\nand its end\n"))
    assert logs.read("r1", "a") == "as it ran\nand its end\n"


@pytest.mark.parametrize("cid", ["../../etc/passwd", "a/b", ".hidden", "", "x" * 500, "名前"])
def test_any_component_id_stays_inside_the_runs_folder(logs, cid):
    logs.write_attempt("r1", AttemptLog(cid, 1, f"log of {cid!r}\n"))
    logs.write_batch("r1", [AttemptLog(cid, 2, "two\n")])
    assert logs.attempts("r1", cid) == {1: f"log of {cid!r}\n", 2: "two\n"}


def test_text_that_is_not_utf8_clean_is_kept_readable(logs):
    logs.write_attempt("r1", AttemptLog("a", 1, "bad \udcff byte\n"))
    assert logs.read("r1", "a") == "bad ? byte\n"


def test_logs_live_in_the_runs_checkpoint_folder_and_leave_its_index_alone(tmp_path):
    url = str(tmp_path / "ckpt")
    checkpoints, logs = CheckpointStore(url), LogStore(url)
    checkpoints.write_inline("r1", {"a": b"blob"})
    logs.write_batch("r1", [AttemptLog("a", 1, "hi\n")])
    logs.write_attempt("r1", AttemptLog("b", 1, "hi\n"))
    assert set(checkpoints.index("r1")) == {"a"}   # a log is never taken for a checkpoint
    folder = next(f for f in checkpoints.folders() if f.run_id == "r1")
    assert folder.files == 3   # gc sizes and removes them with the run
    checkpoints.delete_run("r1")
    assert logs.all("r1") == {}


def test_the_location_defaults_to_the_checkpoints_and_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.delenv("RAYFLOW_LOGS", raising=False)
    assert log_url(None, str(tmp_path / "c")) == str(tmp_path / "c")
    assert log_url(None, "off") is not None   # checkpoints off: logs still kept (in the default place)
    monkeypatch.setenv("RAYFLOW_LOGS", "off")
    assert log_url(None, str(tmp_path / "c")) is None
    assert log_url("s3://bucket/logs") == "s3://bucket/logs"
