"""The chaos suite's tools: DAG generators, the ledger the components write, killers, and
the invariant checks that run after every scenario (tests/chaos/).

- ``make_dag``: a random DAG (chain, fan-out/fan-in, diamonds, or a random DAG) of 5-40
  ``tests.chaos.flows.step`` nodes, some with large outputs.
- ``Ledger``: what the components wrote (``start``/``end`` lines with pid and time), and
  the gate files they obey.
- ``Driver``: a subprocess that drives one run (``python -m tests.chaos.driver``) and can be
  SIGKILLed, SIGSTOPped and SIGCONTed; ``kill_worker`` SIGKILLs a Ray worker by the pid a
  component wrote; ``small_disk`` mounts a tmpfs that fills.
- ``check_run`` / ``check_leftovers``: every run terminal, one row per component,
  checkpoints equal to the expected values, nothing completed ran again (the ledger, not
  the store, says what ran), an event log without gaps nor replays, no lease, temp file,
  actor or CPU left behind. Each returns the violations it found, as one-line strings.
- ``TALLY``: scenarios, kills by kind, runs and components of this pytest run (printed at
  the end by tests/chaos/conftest.py).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tests.chaos.flows import LEDGER, MOD, expected_values, sinks
from tests.helpers import REPO, wait_until
from tests.support import ledger

BIG = 500_000            # int64s in a large output: 4 MB, checkpointed in a .rfc file of its own
SHAPES = ("chain", "fan", "diamond", "random")


@dataclass
class Tally:
    scenarios: int = 0
    kills: collections.Counter = field(default_factory=collections.Counter)
    runs: int = 0
    components: int = 0
    lines: list[str] = field(default_factory=list)   # one per scenario

    def line(self) -> str:
        kills = ", ".join(f"{k} {v}" for k, v in sorted(self.kills.items())) or "none"
        return (f"chaos: {self.scenarios} scenarios, {sum(self.kills.values())} kills ({kills}), "
                f"{self.runs} runs, {self.components} components")


TALLY = Tally()


# -- generated DAGs ----------------------------------------------------------------------


def make_dag(rng: random.Random, *, n_min: int = 5, n_max: int = 40, shape: str | None = None,
             big_share: float = 0.0, big: int = BIG, sleep_s: tuple[float, float] = (0.02, 0.25)) -> dict:
    """A DAG of ``step`` nodes (ids ``n00``, ``n01``, ... in topological order)."""
    shape = shape or rng.choice(SHAPES)
    n = rng.randint(n_min, n_max)
    ups: list[list[int]] = [[] for _ in range(n)]
    if shape == "chain":
        for i in range(1, n):
            ups[i] = [i - 1]
    elif shape == "fan":   # one source, n-2 in parallel, one sink reading them all
        ups = [[]] + [[0] for _ in range(n - 2)] + [list(range(1, n - 1))]
    elif shape == "diamond":   # diamonds in a chain: top, two sides, bottom (the next top)
        for i in range(1, n):
            top = (i - 1) // 3 * 3
            ups[i] = [top] if i % 3 in (1, 2) else [i - 2, i - 1]
    else:
        for i in range(1, n):
            k = rng.choice((0, 1, 1, 2, 2, 3)) if i > 1 else 1
            ups[i] = sorted(rng.sample(range(i), min(k, i)))
    nodes = [{"id": f"n{i:02d}", "base": rng.randrange(MOD), "ups": [f"n{u:02d}" for u in ups[i]],
              "sleep_s": round(rng.uniform(*sleep_s), 3), "big": big if rng.random() < big_share else 0}
             for i in range(n)]
    return {"shape": shape, "nodes": nodes}


def check_value(node: dict, value: Any, expected: int) -> str | None:
    """None when ``value`` is what ``node`` returns, else what differs."""
    if node["big"]:
        ok = isinstance(value, np.ndarray) and value.shape == (node["big"],) and bool((value == expected).all())
        shown = f"array{getattr(value, 'shape', '')}" if isinstance(value, np.ndarray) else repr(value)[:60]
    else:
        ok = value == expected and not isinstance(value, np.ndarray)
        shown = repr(value)[:60]
    return None if ok else f"{node['id']}: expected {expected}{' x' + str(node['big']) if node['big'] else ''}, got {shown}"


def check_result(dag: dict, result: Any) -> str | None:
    """The workflow's value: the sinks' values (a list from the DSL, a dict from a spec)."""
    want = expected_values(dag)
    by_id = {n["id"]: n for n in dag["nodes"]}
    ids = sinks(dag)
    got = result if isinstance(result, dict) else dict(zip(ids, result or [], strict=False))
    if sorted(got) != sorted(ids):
        return f"result: expected the sinks {ids}, got {sorted(got)}"
    for cid in ids:
        problem = check_value(by_id[cid], got[cid], want[cid])
        if problem:
            return f"result {problem}"
    return None


# -- the ledger --------------------------------------------------------------------------


class Ledger(ledger.Ledger):
    """The scenario's folder: what the components wrote, and the gates they obey (``gate``)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        folder.mkdir(parents=True, exist_ok=True)

    def lines(self) -> list[tuple[str, str, int, float]]:
        path = self.folder / LEDGER
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4:   # (a line being appended right now is read whole next time)
                out.append((parts[0], parts[1], int(parts[2]), float(parts[3])))
        return out

    def counts(self, what: str = "start") -> collections.Counter:   # type: ignore[override]
        return collections.Counter(tag for w, tag, _, _ in self.lines() if w == what)

    def running(self) -> dict[str, int]:
        """Components started and not ended: id -> the pid of its latest start."""
        starts, ends, pid = collections.Counter(), collections.Counter(), {}
        for what, tag, p, _ in self.lines():
            if what == "start":
                starts[tag] += 1
                pid[tag] = p
            else:
                ends[tag] += 1
        return {tag: pid[tag] for tag in starts if starts[tag] > ends[tag]}


# -- processes ---------------------------------------------------------------------------


def subprocess_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "RAYFLOW_TRACKER": "0", **extra}


class Driver:
    """``python -m tests.chaos.driver``: drives one run of ``dag`` in a process of its own,
    joined to the test's Ray cluster; its output goes to ``log``."""

    def __init__(self, *, address: str, store: str, checkpoints: str, folder: Path, dag: dict, builder: str,
                 run_id: str, log: Path, lease_s: float | None = None) -> None:
        dag_file = folder / f"dag-{run_id}.json"
        dag_file.write_text(json.dumps(dag))
        extra = {"RAYFLOW_LEASE_S": str(lease_s)} if lease_s else {}
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.chaos.driver", "--address", address, "--store", store,
                 "--checkpoints", checkpoints, "--folder", str(folder), "--dag", str(dag_file),
                 "--builder", builder, "--run-id", run_id],
                cwd=REPO, env=subprocess_env(**extra), stdout=out, stderr=out)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> bool:
        """SIGKILL it; whether it was still running."""
        alive = self.proc.poll() is None
        self.signal(signal.SIGKILL)
        self.signal(signal.SIGCONT)   # (a stopped process dies of SIGKILL as well)
        self.proc.wait(30)
        return alive

    def exited(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def cli_resume(run_id: str, *, store: str, address: str, checkpoints: str, lease_s: float | None = None,
               log: Path) -> subprocess.Popen:
    """``rayflow resume RUN_ID`` in a fresh process (it exits 0 once the run succeeded)."""
    extra = {"RAYFLOW_CHECKPOINTS": checkpoints, **({"RAYFLOW_LEASE_S": str(lease_s)} if lease_s else {})}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "rayflow.cli.main", "resume", run_id, "--store", store,
                                 "--address", address, "-q"], cwd=REPO, env=subprocess_env(**extra),
                                stdout=out, stderr=out)


def is_ray_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"default_worker.py" in cmdline or cmdline.startswith(b"ray::")


def kill_worker(pid: int) -> bool:
    """SIGKILL the Ray worker ``pid`` (a pid a component wrote); False when it is gone or
    is not a Ray worker (never kill anything else)."""
    if not is_ray_worker(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
        return True
    return False


def temp_file_in(run_dir: Path) -> Path | None:
    """A checkpoint file being written in a run's folder (``*.tmp-<hex>``), if any."""
    for sub in (run_dir / "one", run_dir):
        try:
            for entry in os.scandir(sub):
                if ".tmp-" in entry.name:
                    return Path(entry.path)
        except FileNotFoundError:
            pass
    return None


def pid_writing(path: Path) -> int | None:
    """The Ray worker that holds ``path`` open (writing it), if one still does."""
    target = str(path)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        if target in links and is_ray_worker(int(pid)):
            return int(pid)
    return None


@contextlib.contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path`` (root only), unmounted at the end, even on failure."""
    import pytest

    path.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a {size} tmpfs for a full disk: {out.stderr.strip() or out.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


# -- invariants --------------------------------------------------------------------------


def checkpoint_files(root: Path, run_id: str) -> dict[str, list[float]]:
    """Each component with a checkpoint file of ``run_id`` -> when each file naming it
    appeared (their mtimes, sorted: a write finished there, before the rename published it)."""
    from rayflow.core.paths import from_path_name, path_name

    found: dict[str, list[float]] = collections.defaultdict(list)
    run_dir = root / path_name(run_id)
    for path in run_dir.rglob("*") if run_dir.exists() else []:
        name = path.name
        if name.startswith("inline-") and name.endswith(".arrow"):
            with pa.memory_map(str(path)) as source:
                ids = pa.ipc.open_file(source).read_all().column("component_id").to_pylist()
        elif name.endswith(".rfc"):
            ids = [from_path_name(name[: -len(".rfc")])]
        else:
            continue
        for cid in ids:
            found[cid].append(path.stat().st_mtime)
    return {cid: sorted(times) for cid, times in found.items()}


def temp_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".tmp-" in p.name) if root.exists() else []


def check_run(*, store: Any, checkpoints: Any, root: Path, run_id: str, dag: dict, ledger: Ledger,
              kept: set[str], expect: str = "SUCCEEDED", result: Any = None) -> list[str]:
    """The invariants of one run after the scenario's last resume (see the module docstring).
    ``kept``: the components that had a checkpoint at a kill instant."""
    problems: list[str] = []
    ids = [n["id"] for n in dag["nodes"]]
    by_id = {n["id"]: n for n in dag["nodes"]}
    run = store.get_run(run_id)
    if run is None:
        return [f"run {run_id} is not in the store"]
    if run.status != expect:
        problems.append(f"run is {run.status}, expected {expect} (error: {run.error})")
    if run.status in ("SUCCEEDED", "FAILED", "CANCELLED") and run.heartbeat_at is not None:
        problems.append(f"run is {run.status} but its lease was not released (owner {run.owner})")
    if result is not None and run.status == "SUCCEEDED":
        problems += filter(None, [check_result(dag, result)])
    rows = [c.component_id for c in store.get_components(run_id)]
    dups = sorted(k for k, v in collections.Counter(rows).items() if v > 1)
    if dups or sorted(rows) != sorted(ids):
        problems.append(f"component rows: duplicates {dups}, missing {sorted(set(ids) - set(rows))}, "
                        f"unknown {sorted(set(rows) - set(ids))}")
    if run.status == "SUCCEEDED":
        states = {c.component_id: c.state for c in store.get_components(run_id)}
        bad = {k: v for k, v in states.items() if v not in ("SUCCEEDED", "CACHED")}
        if bad:
            problems.append(f"run SUCCEEDED with components not succeeded: {bad}")
    want = expected_values(dag)
    index = checkpoints.index(run_id)
    for cid, ckpt in sorted(index.items()):
        if cid not in by_id:
            problems.append(f"checkpoint of unknown component {cid!r}")
            continue
        problem = check_value(by_id[cid], checkpoints.load(ckpt), want[cid])
        if problem:
            problems.append(f"checkpoint {problem}")
    problems += _check_ledger(ledger, ids, kept, checkpoint_files(root, run_id), run.status)
    problems += check_events(store, run)
    return problems


def _check_ledger(ledger: Ledger, ids: list[str], kept: set[str], committed: dict[str, list[float]],
                  status: str) -> list[str]:
    problems = []
    starts = ledger.counts("start")
    ran_again = {cid: starts[cid] for cid in sorted(kept) if starts[cid] != 1}
    if ran_again:
        problems.append(f"components with a checkpoint at a kill instant ran again (ledger starts): {ran_again}")
    twice = {cid: len(times) for cid, times in sorted(committed.items()) if len(times) > 1}
    if twice:
        problems.append(f"components with more than one committed result (checkpoint files): {twice}")
    late = sorted({tag for what, tag, _, t in ledger.lines() if what == "start" and tag in committed
                   and t > committed[tag][0]})
    if late:
        problems.append(f"components started again after their checkpoint was written: {late}")
    if status == "SUCCEEDED":
        never = [cid for cid in ids if starts[cid] == 0]
        if never:
            problems.append(f"run SUCCEEDED but these components never ran: {never}")
    return problems


def check_events(store: Any, run: Any) -> list[str]:
    """The event log of ``run``: seq 1, 2, ... with no gap; no record written twice; driving
    segments that each open with run_state RUNNING and end at most once; nothing after a
    SUCCEEDED; no more segments than claims (lease epochs)."""
    events = store.get_events(run.run_id, after_seq=0, limit=1_000_000)
    seqs = [e.seq for e in events]
    problems = []
    if seqs != list(range(1, len(seqs) + 1)):
        problems.append(f"event seqs not 1..{len(seqs)} without gaps: {_runs_of(seqs)}")
    seen = collections.Counter((e.ts, e.kind, e.component_id, json.dumps(e.data, sort_keys=True)) for e in events)
    replayed = [k for k, v in seen.items() if v > 1]
    if replayed:
        problems.append(f"{len(replayed)} event(s) written twice under different seqs, e.g. {replayed[0][1:]}")
    open_segment, segments = False, 0
    for e in events:
        state = e.data.get("state") if e.kind == "run_state" else None
        if state == "RUNNING":
            open_segment, segments = True, segments + 1
        elif not open_segment:
            problems.append(f"event {e.seq} ({e.kind} {e.component_id or ''} {e.data}) outside a driving segment")
            break
        elif state in ("SUCCEEDED", "FAILED", "CANCELLED") or e.kind == "run_handed_back":
            open_segment = False
        if state == "SUCCEEDED" and e is not events[-1]:
            problems.append(f"events after the run's SUCCEEDED (seq {e.seq}): {[x.kind for x in events[seqs.index(e.seq) + 1:]]}")
    if segments > max(run.lease_epoch, 1):
        problems.append(f"{segments} driving segments (run_state RUNNING) but only {run.lease_epoch} claims")
    final = [e.data.get("state") for e in events if e.kind == "run_state"]
    if run.status in ("SUCCEEDED", "FAILED", "CANCELLED") and (not final or final[-1] != run.status):
        problems.append(f"run is {run.status} but its last run_state event says {final[-1] if final else None}")
    return problems


def _runs_of(seqs: list[int]) -> str:
    """``1-7, 9-12``: the seqs as ranges (a gap or a repeat shows)."""
    out, start = [], None
    for i, s in enumerate(seqs):
        if start is None:
            start = s
        if i + 1 == len(seqs) or seqs[i + 1] != s + 1:
            out.append(f"{start}-{s}" if s != start else str(s))
            start = None
    return ", ".join(out)[:300]


def check_leftovers(*, store: Any, root: Path, actors_before: set[str]) -> list[str]:
    """After the scenario's last resume: no run of its store left unfinished (RUNNING or
    PENDING: a lease whose driver is gone), no ``.tmp-`` file under the checkpoints, no new
    live actor but the cluster's services, and every CPU of the cluster free again."""
    from rayflow.runs.owners import owner_gone

    problems = []
    now = store.db_now()
    for r in store.list_runs(limit=10_000):
        if r.status in ("RUNNING", "PENDING"):
            beat = "never" if r.heartbeat_at is None else f"{now - r.heartbeat_at:.0f} s ago"
            gone = " (its process is gone)" if owner_gone(r.owner) else ""
            problems.append(f"run {r.run_id} still {r.status} after the last resume: owner {r.owner!r}{gone}, "
                            f"heartbeat {beat}")
    tmp = temp_files(root)
    if tmp:
        problems.append(f"{len(tmp)} temp file(s) left under the checkpoints: {tmp[:4]}")
    live = live_actors()
    extra = sorted(f"{live[a]} {a[:12]}" for a in set(live) - actors_before)
    if extra:
        problems.append(f"actors left alive: {extra}")
    problems += _check_cpus()
    return problems


CLUSTER_SERVICES = {("tracker", "RunTracker"), ("progress", "ProgressBoard")}   # one per cluster, detached, by design


def live_actors() -> dict[str, str]:
    """Live actors of the cluster other than its services (the tracker, the progress
    board): actor id -> class name."""
    import ray

    out = {}
    for actor_id, a in ray._private.state.actors().items():   # the GCS's table: no dashboard needed
        service = any(a.get("Name") == name and cls in a.get("ActorClassName", "") for name, cls in CLUSTER_SERVICES)
        if a.get("State") in ("ALIVE", "PENDING_CREATION", "RESTARTING", "DEPENDENCIES_UNREADY") and not service:
            out[actor_id] = f"{a.get('ActorClassName', '?')} (name {a.get('Name')!r}, {a.get('State')})"
    return out


def _check_cpus(timeout: float = 60.0) -> list[str]:
    import ray

    def free() -> bool:
        total, available = ray.cluster_resources(), ray.available_resources()
        return all(available.get(k, 0) == v for k, v in total.items() if k != "object_store_memory")

    try:
        wait_until(free, timeout, poll_s=0.2, what="every CPU of the cluster to be free")
    except AssertionError:
        return [f"resources still held {timeout:g} s after the scenario: {ray.available_resources()} of "
                f"{ray.cluster_resources()}"]
    return []


def wait_status(store: Any, run_id: str, statuses: tuple[str, ...], timeout: float) -> Any:
    return wait_until(lambda: (r := store.get_run(run_id)) is not None and r.status in statuses and r, timeout,
                      poll_s=0.1, what=f"run {run_id} to be {'/'.join(statuses)}")
