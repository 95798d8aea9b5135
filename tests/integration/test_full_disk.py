"""Checkpoints on a full disk: a real 256 KiB tmpfs (mounting needs root; the test is
skipped, saying why, where it is not allowed). A write that does not fit raises one line
naming the component, the run and the path, and leaves no temporary file; a run whose
checkpoints do not fit still succeeds, each lost checkpoint told in one warning line."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rayflow.data import codec
from rayflow.store.checkpoints import CheckpointStore, CheckpointWriteError
from tests.fns.durability import expected_total, ledgered

DISK_BYTES = 256 * 1024
BIG_N = 60_000            # an int64 array of 480 KB: it cannot fit


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 256 KiB filesystem of its own, unmounted after the test."""
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a tmpfs mount, which needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _leftovers(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if ".tmp-" in p.name]


def test_a_write_that_does_not_fit_says_so_in_one_line_and_leaves_nothing(small_disk):
    store = CheckpointStore(str(small_disk))
    with pytest.raises(CheckpointWriteError) as caught:
        store.write_one("r1", "big", np.arange(BIG_N, dtype=np.int64))
    message = str(caught.value)
    assert "\n" not in message
    assert message == (f"checkpoint of component 'big' of run r1 could not be written to "
                       f"{small_disk}/r1/one/big.rfc: No space left on device")
    many = {f"c{i}": codec.encode(np.full(BIG_N // 4, i)).blob() for i in range(5)}
    with pytest.raises(CheckpointWriteError, match=r"^checkpoint of components 'c0', 'c1', 'c2' and 2 more of "
                                                   r"run r1 could not be written to .*: No space left on device$"):
        store.write_inline("r1", many)
    assert _leftovers(small_disk) == []
    store.write_one("r1", "small", 7)   # the space came back: writes work again
    assert store.load(store.index("r1")["small"]) == 7


@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_a_run_whose_checkpoints_do_not_fit_succeeds_and_warns(small_disk, service, ledger, caplog, executor,
                                                              request):
    if executor == "ray":
        request.getfixturevalue("ray_session")
    service.configure(checkpoints=str(small_disk))
    try:
        with caplog.at_level(logging.WARNING, logger="rayflow"):
            h = service.submit(ledgered, {"folder": str(ledger.folder), "n": 3, "big_n": BIG_N}, executor=executor,
                               background=executor != "local")
            assert h.result(timeout=120) == expected_total(3, BIG_N)
            service.flush()
    finally:
        service.configure(checkpoints="")
    lines = [r.getMessage() for r in caplog.records if "No space left on device" in r.getMessage()]
    assert lines, [r.getMessage() for r in caplog.records]
    assert any(f"checkpoint of component 'big' of run {h.run_id} could not be written to {small_disk}" in line
               for line in lines), lines
    assert _leftovers(small_disk) == []
    kept = CheckpointStore(str(small_disk)).index(h.run_id)
    assert "big" not in kept    # lost: a resume computes it again
