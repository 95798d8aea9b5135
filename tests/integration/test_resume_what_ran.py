"""Resume runs exactly what ran (issue 15 items 6, 7, 9): the recorded spec, not the file as
it is now; a spec object or dict resumes from another process; a component whose code
changed runs again with everything downstream of it; a second submit under a run id gets
that run only when it asks for the same thing; a live owner in another container is never
declared gone. What ran is counted by the components themselves (the ledger file)."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rayflow as rf
from rayflow.core.errors import RunBusy, RunExists
from rayflow.runs.owners import owner_gone, owner_id
from tests.helpers import REPO


def _spec(folder: Path, i: int = 3, tag: str = "sq") -> dict:
    return {"name": "what_ran", "components": [
        {"id": "src", "function": "tests.fns.durability:source", "config": {"folder": str(folder), "i": i}},
        {"id": "sq", "function": "tests.fns.durability:square", "config": {"folder": str(folder), "tag": tag}},
    ], "connections": [{"from": "src", "to": "sq", "port": "x"}]}


def _resume_elsewhere(run_id: str, service, tmp_path: Path, *extra_path: Path) -> subprocess.CompletedProcess:
    """rf.resume in a fresh Python process (local executor), on the same store and checkpoints."""
    code = (f"import rayflow as rf; h = rf.resume({run_id!r}, executor='local'); h.wait(); "
            "print(h.status()); print(repr(h.result()))")
    env = {**os.environ, "RAYFLOW_STORE": service.store.url, "RAYFLOW_CHECKPOINTS": str(tmp_path / "checkpoints"),
           "PYTHONPATH": os.pathsep.join([str(REPO), *map(str, extra_path)])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)


@pytest.fixture
def svc(service, tmp_path):
    service.configure(checkpoints=str(tmp_path / "checkpoints"))
    return service


def _failed_run(target, ledger, gate: str, **inputs) -> str:
    ledger.gate("fail", gate)
    h = rf.submit(target, executor="local", **inputs)
    h.wait()
    assert h.status() == "FAILED"
    ledger.gate("fail", gate, on=False)
    return h.run_id


def test_a_dict_spec_resumes_from_another_process(svc, ledger, tmp_path) -> None:
    run_id = _failed_run(_spec(ledger.folder), ledger, "sq")
    svc.flush()
    out = _resume_elsewhere(run_id, svc, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[:2] == ["SUCCEEDED", "9"]
    assert ledger.counts() == {"source_3": 1, "sq": 2}


def test_a_spec_file_resumes_as_it_ran_not_as_it_reads_now(svc, ledger, tmp_path) -> None:
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(_spec(ledger.folder, i=3)))
    run_id = _failed_run(str(path), ledger, "sq")
    path.write_text(json.dumps(_spec(ledger.folder, i=5, tag="edited")))      # edited after the run
    h = rf.resume(run_id, executor="local")
    assert h.result() == 9
    assert ledger.counts() == {"source_3": 1, "sq": 2}


MODULE = '''
import rayflow as rf
from tests.fns.durability import _gate, _ledger

@rf.component
def a(folder, i):
    _ledger(folder, "a"); return i

@rf.component
def b(folder, x):
    _ledger(folder, "b"); return x + {B}

@rf.component
def c(folder, x, k):
    _ledger(folder, "c"); return x * k

@rf.component
def side(folder):
    _ledger(folder, "side"); return 1000

@rf.component
def d(folder, x, y):
    _ledger(folder, "d"); _gate(folder, "d"); return x + y

@rf.workflow(name="chain")
def chain(folder: str):
    return d(folder, c(folder, b(folder, a(folder, 1)), {K}), side(folder))
'''


def _module(*, b: int, k: int) -> str:
    return textwrap.dedent(MODULE).replace("{B}", str(b)).replace("{K}", str(k))


def _chain_failed_at_d(tmp_path: Path, ledger, name: str) -> tuple[Path, str]:
    """The chain workflow written as module ``name``, run until d fails; (its folder, run id)."""
    import importlib

    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / f"{name}.py").write_text(_module(b=1, k=10))
    sys.path.insert(0, str(mods))
    try:
        module = importlib.import_module(name)
        return mods, _failed_run(module.chain, ledger, "d", folder=str(ledger.folder))
    finally:
        sys.path.remove(str(mods))
        sys.modules.pop(name, None)


def test_changed_code_runs_again_with_everything_downstream(svc, ledger, tmp_path) -> None:
    mods, run_id = _chain_failed_at_d(tmp_path, ledger, "chainmod")
    assert ledger.counts() == {"a": 1, "b": 1, "c": 1, "side": 1, "d": 1}
    (mods / "chainmod.py").write_text(_module(b=2, k=10))   # b's code changes
    svc.flush()
    out = _resume_elsewhere(run_id, svc, tmp_path, mods)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[:2] == ["SUCCEEDED", str((1 + 2) * 10 + 1000)]
    assert ledger.counts() == {"a": 1, "b": 2, "c": 2, "side": 1, "d": 2}
    assert "component 'b' runs again: its code changed" in out.stderr


def test_changed_literal_arguments_run_again(svc, ledger, tmp_path) -> None:
    mods, run_id = _chain_failed_at_d(tmp_path, ledger, "chainmod2")
    (mods / "chainmod2.py").write_text(_module(b=1, k=7))   # c's literal argument changes
    svc.flush()
    out = _resume_elsewhere(run_id, svc, tmp_path, mods)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[:2] == ["SUCCEEDED", str((1 + 1) * 7 + 1000)]
    assert ledger.counts() == {"a": 1, "b": 1, "c": 2, "side": 1, "d": 2}


def test_a_second_submit_under_an_id_gets_that_run_only_for_the_same_request(svc, ledger) -> None:
    first = rf.submit(_spec(ledger.folder), executor="local", run_id="same-id")
    assert first.result() == 9
    again = rf.submit(_spec(ledger.folder), executor="local", run_id="same-id")
    assert again.run_id == "same-id" and again.status() == "SUCCEEDED"
    with pytest.raises(RunExists, match="already exists with another spec"):
        rf.submit(_spec(ledger.folder, i=4), executor="local", run_id="same-id")
    assert svc.store.get_run("same-id").status == "SUCCEEDED"
    assert ledger.counts() == {"source_3": 1, "sq": 1}


def test_a_second_submit_with_other_inputs_is_refused(svc, ledger) -> None:
    from tests.fns.durability import ledgered

    rf.submit(ledgered, executor="local", run_id="inputs-id", folder=str(ledger.folder), n=1).wait()
    assert rf.submit(ledgered, executor="local", run_id="inputs-id", folder=str(ledger.folder), n=1).run_id == "inputs-id"
    with pytest.raises(RunExists, match="other inputs .*n"):
        rf.submit(ledgered, executor="local", run_id="inputs-id", folder=str(ledger.folder), n=2)


def test_an_owner_in_another_container_with_the_same_hostname_is_not_declared_gone(svc, tmp_path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    host = socket.gethostname()
    assert not owner_gone(f"{host}:{dead_pid}")            # no token: another container's process
    assert not owner_gone(f"{host}:{dead_pid}:abcdef012345")  # no lock file here: not ours to judge
    assert not owner_gone(owner_id())                       # this process lives
    store = svc.store
    from rayflow.store.port import RunRecord

    store.insert_run(RunRecord("busy-run", "wf", "RUNNING", created_at=1.0, target="tests.fns.durability:ledgered", inputs={"folder": str(tmp_path)},
                               owner=f"{host}:{dead_pid}", heartbeat_at=store.db_now(), lease_epoch=1))
    with pytest.raises(RunBusy):
        rf.resume("busy-run", executor="local")


def test_a_dead_owner_of_this_machine_is_declared_gone(tmp_path) -> None:
    code = "from rayflow.runs.owners import owner_id; print(owner_id())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    owner = out.stdout.strip()
    assert owner.count(":") == 2
    assert owner_gone(owner)
    assert owner_gone(owner)   # asking leaves the answer for the next one (runs --status RESUMABLE, then resume)


def test_only_old_lock_files_of_dead_owners_are_swept(tmp_path) -> None:
    from rayflow.runs import owners

    folder = tmp_path / "owners"
    folder.mkdir()
    code = "from rayflow.runs.owners import owner_id; print(owner_id())"
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAYFLOW_HOME": str(tmp_path)}
    dead = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout.strip()
            for _ in range(2)]
    old, fresh = (folder / f"{o.split(':')[2]}.lock" for o in dead)
    live = folder / "live.lock"
    holder = os.open(live, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        now = old.stat().st_mtime + owners.STALE_S + 60
        os.utime(fresh, (now - 60, now - 60))
        os.utime(live, (now - owners.STALE_S - 60,) * 2)
        owners._sweep(folder, now)
        assert not old.exists()        # dead and older than STALE_S
        assert fresh.exists()          # dead but recent: still answers owner_gone
        assert live.exists()           # old, but its process holds the lock
    finally:
        os.close(holder)
