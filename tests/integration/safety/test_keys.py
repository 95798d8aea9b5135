"""One signing key per cluster, and checkpoints that do not verify (issue 15 item 3).

A resumed run whose checkpoint was signed with another key, tampered with or cut short
treats it as missing: a warning names the component and it runs again; the run never
fails for it. On one node nothing about the key changes (no keyring actor; each process
reads the key file). On a real two-node Ray cluster whose nodes have different
``RAYFLOW_HOME`` folders (so different key files), a run whose components return
pickled objects on both nodes succeeds, its results are cached, and its checkpoints
verify on resume, with no key set by hand (the keyring actor on the driver's node).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pytest

import rayflow as rf
from rayflow.data import codec
from tests.fns.durability import ledger_counts
from tests.helpers import REPO, free_port, wait_until

BIG = 100_000          # bytes: a pickled output this large is checkpointed in a file of its own


def _note(folder: str, name: str) -> None:
    with open(Path(folder) / "ledger", "a") as f:
        f.write(f"{name} {os.getpid()}\n")


@rf.component
def big_pair(folder: str) -> tuple:
    _note(folder, "big_pair")
    return (1, b"x" * BIG)          # a tuple: pickled, signed, in a file (.rfc)


@rf.component
def small_pair(folder: str) -> tuple:
    _note(folder, "small_pair")
    return (2, "small")             # a tuple: pickled, signed, inline


@rf.component
def arange(folder: str) -> object:
    import numpy as np

    _note(folder, "arange")
    return np.arange(20_000, dtype=np.int64)   # .npy in a file of its own


@rf.component
def join(folder: str, big: tuple, small: tuple, arr: object) -> int:
    _note(folder, "join")
    while (Path(folder) / "hold-join").exists():   # held: the test kills the cluster meanwhile
        time.sleep(0.05)
    if (Path(folder) / "fail-join").exists():
        raise RuntimeError("join told to fail")
    return big[0] + small[0] + int(arr[-1])


def _on_b(component, on_b: bool):
    """``component`` pinned to the second node of the two-node cluster (its ``node_b``)."""
    return component.options(resources={"node_b": 0.5}, cache=True) if on_b else component


@rf.workflow(name="signed_resume")
def signed_resume(folder: str, on_b: bool = False):
    return join(folder, _on_b(big_pair, on_b)(folder), _on_b(small_pair, on_b)(folder), arange(folder))


EXPECTED = 1 + 2 + 19_999


@pytest.fixture
def svc(service, tmp_path):
    service.configure(checkpoints=str(tmp_path / "checkpoints"))
    yield service
    service.configure(checkpoints="")


def _failed_run(svc, folder: Path, executor: str) -> str:
    (folder / "fail-join").touch()
    h = svc.submit(signed_resume, {"folder": str(folder)}, executor=executor)
    assert h.wait(120) == "FAILED"
    (folder / "fail-join").unlink()
    svc.flush()
    return h.run_id


def _flip_file(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))


def _flip_inline(run_dir: Path, component: str) -> None:
    """Change one byte of ``component``'s blob in the inline checkpoint file holding it."""
    for path in run_dir.glob("inline-*.arrow"):
        table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        ids, blobs = table.column("component_id").to_pylist(), table.column("blob").to_pylist()
        if component in ids:
            i = ids.index(component)
            blob = bytearray(blobs[i])
            blob[-1] ^= 0xFF
            blobs[i] = bytes(blob)
            fixed = pa.table({"component_id": ids, "blob": blobs}, schema=table.schema)
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(fixed)
            return
    raise AssertionError(f"no inline checkpoint holds {component!r}")


EXECUTORS = ["local", pytest.param("ray", marks=pytest.mark.slow)]   # on Ray: about 10 s


@pytest.fixture
def executor(request):
    if request.param == "ray":
        request.getfixturevalue("ray_session")
    return request.param


@pytest.mark.parametrize("executor", EXECUTORS, indirect=True)
def test_checkpoints_that_do_not_verify_or_decode_run_again(svc, tmp_path, executor, caplog):
    folder = tmp_path / "ledger"
    folder.mkdir()
    run_id = _failed_run(svc, folder, executor)
    run_dir = tmp_path / "checkpoints" / run_id
    files = {p.stem: p for p in (run_dir / "one").glob("*.rfc")}
    assert {"big_pair", "arange"} <= set(files), files
    _flip_file(files["big_pair"])                              # a signed pickle, tampered
    files["arange"].write_bytes(files["arange"].read_bytes()[:-8])   # an array, cut short
    _flip_inline(run_dir, "small_pair")                         # a small signed pickle, tampered
    with caplog.at_level(logging.WARNING, logger="rayflow"):
        again = rf.resume(run_id, executor=executor)
        assert again.result(timeout=120) == EXPECTED
    counts = ledger_counts(folder)
    assert counts == {"big_pair": 2, "small_pair": 2, "arange": 2, "join": 2}, counts
    warned = " ".join(r.getMessage() for r in caplog.records)
    for component in ("big_pair", "small_pair", "arange"):
        assert f"component {component!r} runs again: its checkpoint cannot be used" in warned, warned


@pytest.mark.parametrize("executor", EXECUTORS, indirect=True)
def test_checkpoints_that_verify_are_restored(svc, tmp_path, executor):
    folder = tmp_path / "ledger"
    folder.mkdir()
    run_id = _failed_run(svc, folder, executor)
    assert rf.resume(run_id, executor=executor).result(timeout=120) == EXPECTED
    assert ledger_counts(folder) == {"big_pair": 1, "small_pair": 1, "arange": 1, "join": 2}


def test_one_node_has_no_keyring_and_every_process_reads_its_key_file(ray_session, svc, tmp_path):
    from rayflow.execute.ray import keyring

    folder = tmp_path / "ledger"
    folder.mkdir()
    h = svc.submit(signed_resume, {"folder": str(folder)}, executor="ray")
    assert h.result(timeout=120) == EXPECTED
    with pytest.raises(ValueError):
        ray_session.get_actor(keyring.NAME, namespace=keyring.NAMESPACE)
    assert keyring.cluster_key() is None and codec.signing_key() == codec.own_key()

    @ray_session.remote
    def worker_key() -> bytes:
        return codec.signing_key()

    assert ray_session.get(worker_key.remote()) == codec.own_key()


def test_the_keyring_hands_out_its_nodes_key_and_says_what_to_set_when_it_cannot(ray_session):
    from rayflow.core.errors import ConfigError
    from rayflow.execute.ray import keyring

    good = ray_session.remote(keyring.Keyring).options(num_cpus=0).remote()
    bad = ray_session.remote(keyring.Keyring).options(
        num_cpus=0, runtime_env={"env_vars": {codec.KEY_ENV_VAR: "too-short"}}).remote()
    try:
        assert keyring._fetch(ray_session, good) == codec.own_key()    # the same node: the same key file
        with pytest.raises(ConfigError) as err:
            keyring._fetch(ray_session, bad)
        message = str(err.value)
        assert "\n" not in message and f"{codec.KEY_ENV_VAR} is 9 characters long" in message, message
        assert "too-short" not in message
    finally:
        ray_session.kill(good)
        ray_session.kill(bad)


def test_a_keyring_that_cannot_be_reached_is_one_line_saying_what_to_set():
    from rayflow.execute.ray import keyring

    message = str(keyring._unavailable(TimeoutError("Get timed out:\nsome ObjectRefs are not ready")))
    assert "\n" not in message and codec.KEY_ENV_VAR in message and "every node" in message


# -- a real two-node cluster ---------------------------------------------------------------

DRIVER = """
import json, sys
import rayflow as rf
from tests.integration.safety.test_keys import signed_resume
folder, step = sys.argv[1], sys.argv[2]
if step == "resume":
    h = rf.resume(sys.argv[3], executor="ray")
else:          # the same run twice in this process: the second is answered by the cache
    h = rf.submit(signed_resume, executor="ray", folder=folder, on_b=True)
    if step == "twice" and h.wait(180) == "SUCCEEDED":
        h = rf.submit(signed_resume, executor="ray", folder=folder, on_b=True)
status = h.wait(180)
record = h.record()
rf.shutdown()
print(json.dumps({"run_id": h.run_id, "status": status, "error": record.error}))
"""


def _ray_start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """``ray start --block`` in a process group of its own (stopped by signalling that group)."""
    with open(log, "wb") as out:
        return subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--block", *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _nodes(address: str, env: dict) -> int:
    code = (f"import ray; ray.init(address={address!r}, logging_level='ERROR', log_to_driver=False); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0


def _start_two(root: Path, port: int, base: dict, homes: dict) -> list[subprocess.Popen]:
    """Start the head (RAYFLOW_HOME a) and the node offering ``node_b`` (RAYFLOW_HOME b);
    their ``ray start`` processes, once both nodes are alive."""
    address = f"127.0.0.1:{port}"
    head = _ray_start(["--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                       "--include-dashboard=false", f"--temp-dir={root / 'ray-a'}",
                       f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}",
                       f"--min-worker-port={20000 + port % 10 * 200}", f"--max-worker-port={20099 + port % 10 * 200}"],
                      {**base, "RAYFLOW_HOME": str(homes["a"])}, root / "head.log")
    procs = [head]
    try:
        _wait_nodes(address, base, 1, root)
        procs.append(_ray_start([f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                                 '--resources={"node_b": 1}', f"--dashboard-agent-listen-port={free_port()}",
                                 f"--min-worker-port={20100 + port % 10 * 200}",
                                 f"--max-worker-port={20199 + port % 10 * 200}"],
                                {**base, "RAYFLOW_HOME": str(homes["b"])}, root / "node_b.log"))
        _wait_nodes(address, base, 2, root)
    except BaseException:
        for proc in reversed(procs):
            _stop(proc)
        raise
    return procs


@pytest.fixture(scope="module")
def two_nodes():
    """A head (RAYFLOW_HOME a) and a second node offering ``node_b`` (RAYFLOW_HOME b), on
    ports 6390-6399, with temp folders of their own; stopped by process group."""
    if shutil.which("bash") is None:
        pytest.skip("needs a POSIX shell")
    root = Path(tempfile.mkdtemp(prefix="rf-keys-", dir="/tmp"))   # short: Ray's socket paths must fit
    port = next((p for p in range(6390, 6400) if _free(p)), None)
    if port is None:
        pytest.skip("no free port in 6390-6399 for a Ray head")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAYFLOW_SIGNING_KEY"))}
    base.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}",
                PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), base.get("PYTHONPATH")])),
                RAY_AUTH_MODE="token", RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")
    homes = {"a": root / "home-a", "b": root / "home-b"}
    address = f"127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    try:
        procs += _start_two(root, port, base, homes)
        yield {"address": address, "env": base, "homes": homes, "root": root, "port": port, "procs": procs}
    finally:
        for proc in reversed(procs):
            _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def _wait_nodes(address: str, env: dict, count: int, root: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if _nodes(address, env) >= count:
            return
        time.sleep(1)
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in root.glob("*.log"))
    pytest.fail(f"the two-node cluster did not come up ({count} nodes expected):\n{logs}")


def _driver(cluster: dict, tmp_path: Path, *args: str, **extra_env: str) -> dict:
    env = {**cluster["env"], "RAY_ADDRESS": cluster["address"], "RAYFLOW_HOME": str(cluster["homes"]["a"]),
           "RAYFLOW_STORE": f"sqlite:///{tmp_path / 'runs.db'}", "RAYFLOW_CHECKPOINTS": str(tmp_path / "ckpt"),
           "RAYFLOW_CACHE": "memory://", "RAYFLOW_TRACKER": "0", "RAYFLOW_SERVER": "local", **extra_env}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(DRIVER), *args], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    if extra_env:
        return {"returncode": out.returncode, "last": (out.stderr.strip().splitlines() or [""])[-1]}
    assert out.returncode == 0, f"driver failed: {out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_nodes_share_one_key_with_nothing_set_by_hand(two_nodes, tmp_path):
    folder = tmp_path / "ledger"
    folder.mkdir()
    (folder / "fail-join").touch()
    first = _driver(two_nodes, tmp_path, str(folder), "once")
    assert first["status"] == "FAILED" and "join told to fail" in (first["error"] or ""), first
    homes = two_nodes["homes"]
    assert (homes["a"] / "signing.key").exists(), "the driver's node has no key"
    assert not (homes["b"] / "signing.key").exists(), "the second node made a key of its own"
    (folder / "fail-join").unlink()
    second = _driver(two_nodes, tmp_path, str(folder), "resume", first["run_id"])
    assert second["status"] == "SUCCEEDED", second
    counts = ledger_counts(folder)
    assert counts == {"big_pair": 1, "small_pair": 1, "arange": 1, "join": 2}, counts   # restored, not rerun
    again = tmp_path / "again"
    again.mkdir()
    third = _driver(two_nodes, tmp_path, str(again), "twice")
    assert third["status"] == "SUCCEEDED", third
    counts = ledger_counts(again)
    assert counts["small_pair"] == 1 and counts["big_pair"] == 1, counts   # the second run's came from the cache
    # a key set in the driver only (the nodes sign with theirs): stopped before running, in one line
    alone = _driver(two_nodes, tmp_path, str(again), "once", RAYFLOW_SIGNING_KEY="d" * 64)
    assert alone["returncode"] != 0 and "is set in this process but the cluster's nodes sign with another key" \
        in alone["last"], alone
    assert "d" * 64 not in alone["last"]


def _driver_in_background(cluster: dict, tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**cluster["env"], "RAY_ADDRESS": cluster["address"], "RAYFLOW_HOME": str(cluster["homes"]["a"]),
           "RAYFLOW_STORE": f"sqlite:///{tmp_path / 'runs.db'}", "RAYFLOW_CHECKPOINTS": str(tmp_path / "ckpt"),
           "RAYFLOW_CACHE": "memory://", "RAYFLOW_TRACKER": "0", "RAYFLOW_SERVER": "local"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(DRIVER), *args], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


@pytest.mark.slow
def test_a_two_node_run_killed_with_its_whole_cluster_resumes_on_a_new_one(two_nodes, tmp_path):
    """Last in the module: it stops the module's cluster and starts a new one on the same
    port and folders (what a restart after a power cut gives)."""
    from rayflow.store.checkpoints import CheckpointStore
    from rayflow.store.sqlite import SqliteStore

    folder = tmp_path / "ledger"
    folder.mkdir()
    (folder / "hold-join").touch()
    driver = _driver_in_background(two_nodes, tmp_path, str(folder), "once")
    store = SqliteStore(tmp_path / "runs.db")
    try:
        def upstreams_kept():
            runs = store.list_runs(limit=5)
            if not runs or "join" not in ledger_counts(folder):
                return None
            kept = set(CheckpointStore(str(tmp_path / "ckpt")).index(runs[0].run_id))
            return runs[0].run_id if {"big_pair", "small_pair", "arange"} <= kept else None

        run_id = wait_until(upstreams_kept, 180, what="join held, its upstreams checkpointed")
        for proc in reversed(two_nodes["procs"]):    # the whole cluster, then its driver
            _stop(proc)
        two_nodes["procs"].clear()
        driver.kill()
        driver.wait(30)
        two_nodes["procs"] += _start_two(two_nodes["root"], two_nodes["port"], two_nodes["env"], two_nodes["homes"])
    finally:
        if driver.poll() is None:
            driver.kill()
        store.close()
    (folder / "hold-join").unlink()
    resumed = _driver(two_nodes, tmp_path, str(folder), "resume", run_id)
    assert resumed["status"] == "SUCCEEDED", resumed
    counts = ledger_counts(folder)
    assert counts == {"big_pair": 1, "small_pair": 1, "arange": 1, "join": 2}, counts   # nothing completed ran again
