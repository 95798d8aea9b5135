"""Servers die and others take over: what ran is kept, nothing completed runs twice, and
no run is driven by two servers at once. Servers are real processes (``python -m
tests.support.serve``) on one store, with a 2 s lease; they drive components in their
own process (executor "local"), so a SIGKILL leaves no cluster behind. What ran is
counted outside the store: every component appends "<name> <pid>" to its run's ledger
file (tests/fns/durability.py), so the pid says which server ran it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rayflow.store import open_store
from tests.fns.durability import expected_total, ledger_counts
from tests.helpers import REPO, free_port, wait_until

pytestmark = pytest.mark.slow

LEASE_S = 2.0
WORKFLOW = "tests.fns.durability:ledgered"


class ServerProc:
    """One server process on a free port, its log in the test's folder."""

    def __init__(self, store: str, folder: Path, name: str, *, max_runs: int = 64, lease_s: float = LEASE_S) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"server-{name}.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.serve", "--store", store, "--port", str(self.port),
                 "--lease-s", str(lease_s), "--max-runs", str(max_runs)],
                stdout=out, stderr=out, cwd=REPO, env=env)
        wait_until(self._up, timeout=60, poll_s=0.1)

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited early:\n{self.log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def get(self, path: str) -> dict:
        response = httpx.get(f"{self.url}{path}", timeout=10)
        response.raise_for_status()
        return response.json()


@pytest.fixture
def servers():
    started: list[ServerProc] = []
    yield started
    for server in started:
        server.stop()


def _submit_from_a_script(url: str, folder: Path, n: int = 4) -> str:
    """A separate process submits the run and exits (it does not wait for it)."""
    body = json.dumps({"workflow": WORKFLOW, "inputs": {"folder": str(folder), "n": n}})
    code = ("import httpx, sys; r = httpx.post(sys.argv[1] + '/v1/runs', content=sys.argv[2], "
            "headers={'content-type': 'application/json'}, timeout=30); r.raise_for_status(); "
            "print(r.json()['run_id'])")
    out = subprocess.run([sys.executable, "-c", code, url, body], capture_output=True, text=True, timeout=60,
                         check=True)
    return out.stdout.strip()


def _ledger_pids(folder: Path) -> list[tuple[str, int]]:
    path = folder / "ledger"
    if not path.exists():
        return []
    return [(line.split()[0], int(line.split()[1])) for line in path.read_text().splitlines()]


def _done(server: ServerProc, run_id: str) -> bool:
    return server.get(f"/v1/runs/{run_id}")["status"] in ("SUCCEEDED", "FAILED", "CANCELLED")


def _store_url(kind: str, tmp_path: Path, request) -> str:
    if kind == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_new_server_resumes_a_run_whose_server_was_killed(kind, tmp_path, request, servers):
    store = _store_url(kind, tmp_path, request)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "hold-total").touch()   # the run stops at its last component
    first = ServerProc(store, tmp_path, "first")
    servers.append(first)
    run_id = _submit_from_a_script(first.url, folder)

    reader = open_store(store)   # what the store holds: what survives the server

    def squares_kept() -> bool:   # every square and source recorded (and checkpointed), total started
        comps = reader.get_components(run_id)
        return ledger_counts(folder).get("total") == 1 and len(comps) == 9 and all(
            c.state == "SUCCEEDED" for c in comps if c.component_id != "total")

    wait_until(squares_kept, timeout=60, poll_s=0.1)
    reader.close()
    first.kill()
    second = ServerProc(store, tmp_path, "second")
    servers.append(second)
    (folder / "hold-total").unlink()
    wait_until(lambda: _done(second, run_id), timeout=60, poll_s=0.2)

    run = second.get(f"/v1/runs/{run_id}")
    assert run["status"] == "SUCCEEDED", run
    assert run["result"] == expected_total(4)
    counts = ledger_counts(folder)
    assert {k: v for k, v in counts.items() if k != "total"} == {
        **{f"source_{i}": 1 for i in range(4)}, **{f"square_{i}": 1 for i in range(4)}}   # nothing completed ran again
    assert counts["total"] == 2   # the one that was running when its server died ran again
    pids = [pid for name, pid in _ledger_pids(folder)]
    assert pids[:-1] == [first.pid] * 9 and pids[-1] == second.pid


def test_two_servers_split_runs_and_one_takes_over_when_the_other_dies(tmp_path, request, servers):
    store = request.getfixturevalue("postgres_url")
    n_runs = 100
    folders = []
    for i in range(n_runs):
        folder = tmp_path / f"run{i}"
        folder.mkdir()
        (folder / "hold-total").touch()
        folders.append(folder)
    # a longer lease: 100 runs held in two processes on 2 cores starve a 2 s lease's renewals
    a = ServerProc(store, tmp_path, "a", max_runs=n_runs, lease_s=6.0)
    b = ServerProc(store, tmp_path, "b", max_runs=n_runs, lease_s=6.0)
    servers.extend([a, b])
    client = httpx.Client(timeout=30)
    run_ids = []
    for i, folder in enumerate(folders):
        target = (a if i % 2 else b).url
        r = client.post(f"{target}/v1/runs", json={"workflow": WORKFLOW, "inputs": {"folder": str(folder), "n": 2}})
        assert r.status_code == 201, r.text
        run_ids.append(r.json()["run_id"])
    # every run is in flight: its total is running (held), everything before it done
    reader = open_store(store)

    def in_flight(rid: str, folder: Path) -> bool:
        comps = reader.get_components(rid)
        return ledger_counts(folder).get("total") == 1 and len(comps) == 5 and all(
            c.state == "SUCCEEDED" for c in comps if c.component_id != "total")

    wait_until(lambda: all(in_flight(r, f) for r, f in zip(run_ids, folders, strict=True)), timeout=120, poll_s=0.5)
    reader.close()
    owners = {a.get(f"/v1/runs/{rid}")["owner"] for rid in run_ids}
    assert len(owners) == 2, f"both servers should drive some runs; owners: {owners}"
    assert {pid for f in folders for _, pid in _ledger_pids(f)} == {a.pid, b.pid}
    a.kill()
    for folder in folders:
        (folder / "hold-total").unlink()
    wait_until(lambda: all(_done(b, rid) for rid in run_ids), timeout=120, poll_s=0.5)

    for rid, folder in zip(run_ids, folders, strict=True):
        run = b.get(f"/v1/runs/{rid}")
        assert run["status"] == "SUCCEEDED", run
        assert run["result"] == expected_total(2)
        counts = ledger_counts(folder)
        assert all(counts[f"{kind}_{i}"] == 1 for kind in ("source", "square") for i in range(2)), counts
        pids = [pid for _, pid in _ledger_pids(folder)]
        # one owner per segment: a's lines (if any) all come before b's, never interleaved
        first_b = pids.index(b.pid)
        assert set(pids[:first_b]) <= {a.pid} and set(pids[first_b:]) == {b.pid}, (rid, pids)
        assert counts["total"] == (2 if pids[0] == a.pid else 1)


def test_sigterm_hands_the_runs_back_and_the_next_server_finishes_them(tmp_path, servers):
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "hold-total").touch()
    first = ServerProc(store, tmp_path, "first")
    servers.append(first)
    run_id = _submit_from_a_script(first.url, folder, n=2)
    reader = open_store(store)
    wait_until(lambda: ledger_counts(folder).get("total") == 1 and sum(
        c.state == "SUCCEEDED" for c in reader.get_components(run_id)) == 4, timeout=60, poll_s=0.1)
    first.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)   # the local executor cannot interrupt a running component: let it end
    (folder / "hold-total").unlink()
    assert first.proc.wait(30) == 0
    run = reader.get_run(run_id)
    assert (run.status, run.owner, run.heartbeat_at) == ("RUNNING", "", None)   # handed back, not lapsed
    assert "run_handed_back" in [e.kind for e in reader.get_events(run_id)]
    assert reader.list_servers() == []   # it removed itself
    second = ServerProc(store, tmp_path, "second")
    servers.append(second)
    wait_until(lambda: _done(second, run_id), timeout=30, poll_s=0.2)
    assert second.get(f"/v1/runs/{run_id}")["result"] == expected_total(2)
    counts = ledger_counts(folder)
    assert counts["source_0"] == counts["square_1"] == 1
    reader.close()
