"""``rayflow gc``: retention over a real SQLite store and a real checkpoint folder.

What goes: the checkpoints of finished runs that ended before the cutoff, temporary files
untouched for an hour, the folders of runs the store does not know (once old). What stays:
anything of an unfinished run, newer finished runs, folders rayflow did not make."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rayflow.core.errors import ConfigError
from rayflow.data import codec
from rayflow.service.retention import collect, parse_age
from rayflow.store.checkpoints import CheckpointStore
from rayflow.store.port import RunRecord
from rayflow.store.urls import open_store
from tests.fns.durability import expected_total, ledgered
from tests.helpers import REPO

DAY = 86400.0


@pytest.fixture
def world(tmp_path):
    """A store and a checkpoint folder holding one run of each kind gc must tell apart."""
    now = time.time()
    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    ckpt = CheckpointStore(str(tmp_path / "ck"))
    runs = {
        "old-ok": ("SUCCEEDED", now - 9 * DAY),
        "old-failed": ("FAILED", now - 8 * DAY),
        "old-cancelled": ("CANCELLED", now - 30 * DAY),
        "new-ok": ("SUCCEEDED", now - 1 * DAY),
        "old-running": ("RUNNING", None),   # started 20 days ago and still driven (or to be resumed)
        "old-pending": ("PENDING", None),
    }
    for rid, (status, ended) in runs.items():
        store.insert_run(RunRecord(rid, "wf", status=status, created_at=now - 20 * DAY, started_at=now - 20 * DAY,
                                   ended_at=ended))
        ckpt.write_inline(rid, {"a": codec.encode(list(range(100))).blob()})
        ckpt.write_one(rid, "big", b"x" * 10_000)
    ckpt.write_inline("gone-long-ago", {"a": codec.encode(1).blob()})   # a run this store does not know
    ckpt.write_inline("gone-just-now", {"a": codec.encode(1).blob()})
    _age(tmp_path / "ck" / "gone-long-ago", 10 * DAY)
    (tmp_path / "ck" / "not a run").mkdir()                              # no run id makes that name
    for rid, age in (("new-ok", 2 * 3600), ("old-running", 2 * 3600), ("old-pending", 60)):
        (tmp_path / "ck" / rid / "one" / f"x.rfc.tmp-{rid[:4]}").write_bytes(b"partial")
        _age(tmp_path / "ck" / rid / "one" / f"x.rfc.tmp-{rid[:4]}", age)
    yield store, ckpt, tmp_path / "ck", now
    store.close()


def _age(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (when, when))


def _folders(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()}


def _temporary(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*.tmp-*")}


def test_gc_removes_only_what_retention_allows(world):
    store, ckpt, root, now = world
    before = {rid: sum(f.stat().st_size for f in (root / rid).rglob("*") if f.is_file()) for rid in _folders(root)}
    done = collect(store, ckpt, older_than_s=7 * DAY, now=now)
    assert _folders(root) == {"new-ok", "old-running", "old-pending", "gone-just-now", "not a run"}
    assert _temporary(root) == {"x.rfc.tmp-old-"}   # the pending run's write of a minute ago stays
    totals = done.totals()
    assert totals["checkpoints"] == (3, before["old-ok"] + before["old-failed"] + before["old-cancelled"])
    assert totals["orphan"] == (1, before["gone-long-ago"])
    assert totals["temporary"] == (2, 2 * len(b"partial"))
    assert done.not_rayflow == [str(root / "not a run")]
    assert ckpt.index("old-running") and ckpt.index("old-pending") and ckpt.index("new-ok")
    assert {r.run_id for r in store.list_runs(limit=100)} >= {"old-ok", "old-failed"}   # rows stay without --rows


def test_a_dry_run_lists_the_same_and_removes_nothing(world):
    store, ckpt, root, now = world
    folders, temporary = _folders(root), _temporary(root)
    listed = collect(store, ckpt, older_than_s=7 * DAY, now=now, dry_run=True)
    assert _folders(root) == folders and _temporary(root) == temporary
    done = collect(store, ckpt, older_than_s=7 * DAY, now=now)
    assert [(r.kind, r.what, r.bytes) for r in listed.removed] == [(r.kind, r.what, r.bytes) for r in done.removed]


def test_a_run_resumed_since_it_was_listed_is_kept(world):
    store, ckpt, root, now = world
    assert store.claim_run("old-failed", "elsewhere:1", 30.0)   # resumed: RUNNING again
    collect(store, ckpt, older_than_s=7 * DAY, now=now)
    assert "old-failed" in _folders(root) and ckpt.index("old-failed")


class _CannotDelete:
    """A run store of another kind: everything but ``delete_runs``."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        if name == "delete_runs":
            raise AttributeError(name)
        return getattr(self._store, name)


def test_rows_go_with_their_checkpoints(world):
    store, ckpt, root, now = world
    collect(store, ckpt, older_than_s=7 * DAY, now=now, rows=True)
    assert store.get_run("old-ok") is None and store.get_run("old-running") is not None
    assert store.get_components("old-ok") == [] and "old-ok" not in _folders(root)


def test_rows_a_store_cannot_delete_are_refused_before_anything_is_removed(world):
    store, ckpt, root, now = world
    with pytest.raises(ConfigError, match="cannot delete runs"):
        collect(_CannotDelete(store), ckpt, older_than_s=7 * DAY, now=now, rows=True)
    assert "old-ok" in _folders(root) and store.get_run("old-ok") is not None


@pytest.mark.parametrize("text,seconds", [("90", 90), ("30m", 1800), ("12h", 43200), ("7d", 7 * DAY),
                                          ("2w", 14 * DAY), ("1.5h", 5400)])
def test_ages(text, seconds):
    assert parse_age(text, field_name="--older-than") == seconds


def test_a_bad_age_is_one_line_naming_the_field():
    with pytest.raises(ConfigError, match=r"^--older-than: expected an age such as 30m, 12h, 7d or 2w, got '7 days'$"):
        parse_age("7 days", field_name="--older-than")


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rayflow.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=REPO)


@pytest.mark.slow
def test_the_command_lists_then_removes_a_real_run_and_says_how_much(service, ledger, tmp_path):
    ck = tmp_path / "real-ck"
    service.configure(checkpoints=str(ck))
    try:
        h = service.submit(ledgered, {"folder": str(ledger.folder), "n": 2}, executor="local", background=False)
        assert h.result() == expected_total(2)
        service.flush()
    finally:
        service.configure(checkpoints="")
    size = sum(f.stat().st_size for f in (ck / h.run_id).rglob("*") if f.is_file())
    assert size > 0
    env = {**os.environ, "RAYFLOW_STORE": service.store.url, "RAYFLOW_CHECKPOINTS": str(ck)}
    kept = _cli("gc", env=env)      # the default retention (7 days) keeps a run that just ended
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.strip() == "removed 0 finished runs' checkpoints (0 B)" and (ck / h.run_id).exists()
    service.store.update_run(h.run_id, ended_at=time.time() - 2 * 3600)
    listed = _cli("gc", "--older-than", "1h", "--dry-run", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        f"would remove checkpoints {_shown(size):>9}  {ck / h.run_id}",
        f"would remove 1 finished runs' checkpoints ({_shown(size)})"]
    assert (ck / h.run_id).exists()
    done = _cli("gc", "--older-than", "1h", "--json", env={**env, "RAYFLOW_RETENTION": "nonsense"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["totals"]["checkpoints"] == {"count": 1, "bytes": size}
    assert not (ck / h.run_id).exists()
    assert service.store.get_run(h.run_id).status == "SUCCEEDED"   # the row stays without --rows
    bad = _cli("gc", env={**env, "RAYFLOW_RETENTION": "a week"})
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: RAYFLOW_RETENTION: expected an age such as 30m, 12h, 7d or 2w, got 'a week'")


def _shown(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB"


def test_nothing_outside_the_location_is_removed(world, tmp_path):
    _, ckpt, root, _ = world
    outside = tmp_path / "keep.txt"
    outside.write_text("mine")
    for path in (str(outside), f"{root}/../keep.txt", str(root)):
        with pytest.raises(ConfigError, match="is not inside the checkpoint location"):
            ckpt.remove(path)
    assert outside.read_text() == "mine" and root.exists()
