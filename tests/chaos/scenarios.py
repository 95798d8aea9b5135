"""The chaos scenarios: one function per kind of fault, each given a ``Ctx`` (the scenario's
seed, folders, store, the in-process service and the cluster's address).

A scenario starts one or more runs of generated DAGs (``Ctx.case``), kills something at a
random instant (after a random number of components ended, plus a random delay), notes
which components had a checkpoint at that instant (``Case.kept``), and leaves the rest to
``Ctx.finish``: resume every run that is not SUCCEEDED, in this process or with ``rayflow
resume`` in a fresh one, then check the invariants (tests/support/chaos.py).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import rayflow as rf
from rayflow.core.errors import RayflowError
from tests.chaos.flows import chaos_dag, chaos_spec
from tests.helpers import wait_until
from tests.support import chaos
from tests.support.chaos import TALLY, Driver, Ledger, make_dag

RUN_S = 240.0          # the longest any run of a scenario is waited for
PAUSE_LEASE_S = 2.0    # the lease of the drivers a scenario pauses, and of their resumers


@dataclass
class Case:
    """One run of a scenario, and what the checks need to know about it."""

    run_id: str
    dag: dict
    ledger: Ledger
    builder: str
    kept: set[str] = field(default_factory=set)   # had a checkpoint at a kill instant
    fail: str | None = None    # the component told to fail (until the resume)
    result: Any = None
    once: bool = False         # nothing was killed that reruns a component: each ran exactly once
    status: str | None = None  # as the scenario left it (before the resume)


@dataclass
class Ctx:
    index: int
    kind: str
    seed: int
    tmp: Path
    svc: Any                   # the process's Service, configured for this scenario
    ckpt_root: Path
    address: str               # the test's Ray cluster (GCS address), for subprocess drivers
    rng: random.Random = field(init=False)
    cases: list[Case] = field(default_factory=list)
    procs: list[Any] = field(default_factory=list)   # processes to stop at the end, whatever happens
    problems: list[str] = field(default_factory=list)   # what a scenario saw itself
    phases: list[str] = field(default_factory=list)     # "<what> <at s>" for the report
    t0: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    # -- runs ----------------------------------------------------------------------------

    @property
    def store(self) -> Any:
        return self.svc.store

    @property
    def store_url(self) -> str:
        return self.svc.store_url_for_others()

    def case(self, *, fail_share: float = 0.2, **dag_args: Any) -> Case:
        dag = make_dag(self.rng, **dag_args)
        n = len(self.cases)
        case = Case(f"chaos-{self.seed}-{n}", dag, Ledger(self.tmp / f"run{n}"), self.rng.choice(("dsl", "spec")))
        if self.rng.random() < fail_share:   # a component fails on purpose until the resume (a late
            case.fail = self.rng.choice(dag["nodes"][len(dag["nodes"]) // 2:])["id"]   # one: a kill comes first)
            case.ledger.gate("fail", case.fail)
        self.cases.append(case)
        TALLY.runs += 1
        TALLY.components += len(dag["nodes"])
        return case

    def submit(self, case: Case) -> Any:
        """Start ``case`` driven by this process."""
        if case.builder == "spec":
            return rf.submit(chaos_spec(case.dag), run_id=case.run_id, folder=str(case.ledger.folder))
        return rf.submit(chaos_dag, run_id=case.run_id, folder=str(case.ledger.folder), dag=case.dag)

    def driver(self, case: Case, **kw: Any) -> Driver:
        """Start ``case`` driven by a subprocess."""
        d = Driver(address=self.address, store=self.store_url, checkpoints=str(self.ckpt_root),
                   folder=case.ledger.folder, dag=case.dag, builder=case.builder, run_id=case.run_id,
                   log=self.tmp / f"driver-{case.run_id}.log", **kw)
        self.procs.append(d)
        return d

    def instant(self, case: Case, *, going: Any = lambda: True) -> None:
        """Wait for a random instant of ``case``: after 1..n-1 more components ended (or the
        run stopped going on), then a random delay."""
        ended = lambda: sum(case.ledger.counts("end").values())   # noqa: E731
        k = ended() + self.rng.randint(1, max(1, len(case.dag["nodes"]) - 1))
        wait_until(lambda: ended() >= k or not going(), RUN_S, poll_s=0.01, what=f"{k} components of {case.run_id}")
        time.sleep(self.rng.uniform(0.0, 0.3))

    def keep_now(self, case: Case) -> None:
        """Note what had a checkpoint at this (kill) instant."""
        case.kept |= set(self.svc.checkpoint_store().index(case.run_id))

    def killed(self, what: str) -> None:
        TALLY.kills[what] += 1
        self.phase(what)

    def phase(self, what: str) -> None:
        self.phases.append(f"{what} {time.monotonic() - self.t0:.1f}s")

    # -- the end -------------------------------------------------------------------------

    def resume(self, case: Case, *, fresh_process: bool | None = None) -> None:
        """Resume ``case`` unless it SUCCEEDED (its failing component told to succeed now)."""
        self.svc.flush()
        run = self.store.get_run(case.run_id)
        case.status = case.status or (run.status if run else None)
        if case.fail:
            case.ledger.gate("fail", case.fail, on=False)
        if run is None or run.status == "SUCCEEDED":
            return
        self.phase(f"resume of {run.status}")
        if fresh_process if fresh_process is not None else self.rng.random() < 0.3:
            self.phase("(in a fresh process)")
            proc = chaos.cli_resume(case.run_id, store=self.store_url, address=self.address,
                                    checkpoints=str(self.ckpt_root), log=self.tmp / f"resume-{case.run_id}.log")
            self.procs.append(proc)
            if proc.wait(RUN_S) != 0:
                log = (self.tmp / f"resume-{case.run_id}.log").read_text(errors="replace").strip().splitlines()
                self.problems.append(f"{case.run_id}: rayflow resume exited {proc.returncode}: {log[-3:]}")
            return
        handle = rf.resume(case.run_id)
        self.phase("claimed")
        handle.wait(RUN_S)
        self.phase(f"resumed run {handle.status()}")
        self.take_result(case, handle)

    def take_result(self, case: Case, handle: Any) -> None:
        try:
            case.result = handle.result(timeout=RUN_S) if handle.status() == "SUCCEEDED" else None
        except (RayflowError, TimeoutError):
            case.result = None   # a large value is not kept in the store: the checkpoints are checked instead

    def finish(self, actors_before: set[str]) -> list[str]:
        for case in self.cases:
            self.resume(case)
        self.svc.flush()
        self.phase("checks")
        problems = list(self.problems)
        for case in self.cases:
            found = chaos.check_run(store=self.store, checkpoints=self.svc.checkpoint_store(), root=self.ckpt_root,
                                    run_id=case.run_id, dag=case.dag, ledger=case.ledger, kept=case.kept,
                                    result=case.result)
            if case.once:
                again = {k: v for k, v in case.ledger.counts().items() if v != 1}
                found += [f"components ran more than once though nothing rerunnable was killed: {again}"] if again else []
            problems += [f"{case.run_id} ({case.builder}, {case.dag['shape']}, {len(case.dag['nodes'])} components"
                         f"{', ' + case.fail + ' failing' if case.fail else ''}): {p}" for p in found]
        problems += chaos.check_leftovers(store=self.store, root=self.ckpt_root, actors_before=actors_before)
        return problems

    def stop_all(self) -> None:
        for proc in self.procs:
            if isinstance(proc, Driver):
                proc.kill()
            elif isinstance(proc, subprocess.Popen):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
            else:   # a server: SIGTERM, then SIGKILL
                proc.stop()


# -- the kinds ----------------------------------------------------------------------------


def worker(ctx: Ctx) -> None:
    """SIGKILL the Ray workers of running components (Ray retries them) 1-3 times."""
    case = ctx.case(n_min=8)
    handle = ctx.submit(case)
    for _ in range(ctx.rng.randint(1, 3)):
        ctx.instant(case, going=lambda: handle.status() == "RUNNING")
        running = case.ledger.running()
        if running and chaos.kill_worker(ctx.rng.choice(sorted(running.items()))[1]):
            ctx.killed("ray worker")
    handle.wait(RUN_S)
    ctx.take_result(case, handle)


def driver(ctx: Ctx) -> None:
    """SIGKILL a subprocess driver at a random instant; half the time SIGKILL its resumer
    (``rayflow resume`` in a fresh process) too. The last resume is ``Ctx.finish``'s."""
    case = ctx.case(big_share=0.2)
    d = ctx.driver(case)
    ctx.instant(case, going=lambda: d.proc.poll() is None)
    if d.kill():
        ctx.killed("driver")
    ctx.keep_now(case)
    if ctx.rng.random() < 0.5 and ctx.store.get_run(case.run_id).status != "SUCCEEDED":
        if case.fail:
            case.ledger.gate("fail", case.fail, on=False)
        second = chaos.cli_resume(case.run_id, store=ctx.store_url, address=ctx.address,
                                  checkpoints=str(ctx.ckpt_root), log=ctx.tmp / f"resume-{case.run_id}.log")
        ctx.procs.append(second)
        ctx.instant(case, going=lambda: second.poll() is None)
        if second.poll() is None:
            second.kill()
            second.wait(30)
            ctx.killed("resuming driver")
        ctx.keep_now(case)


def driver_after_done(ctx: Ctx) -> None:
    """SIGKILL the driver right after a component finished (its ledger ``end`` line is
    there), before the driver could record or checkpoint it."""
    case = ctx.case(fail_share=0.0, n_min=6, n_max=25)
    victim = ctx.rng.choice(case.dag["nodes"][1:])["id"]
    d = ctx.driver(case)
    wait_until(lambda: case.ledger.counts("end")[victim] or d.proc.poll() is not None, RUN_S, poll_s=0.002,
               what=f"{victim} to end")
    if d.kill():
        ctx.killed("driver after a component ended")
    ctx.keep_now(case)


def driver_checkpoint(ctx: Ctx) -> None:
    """SIGKILL the driver while a large output is being written to its checkpoint file (a
    ``.tmp-`` file is there); half the time the worker writing it too."""
    case = ctx.case(fail_share=0.0, n_min=6, n_max=20, big_share=0.5, big=2_000_000)
    d = ctx.driver(case)
    run_dir = ctx.ckpt_root / case.run_id
    writing = wait_until(lambda: chaos.temp_file_in(run_dir) or d.proc.poll() is not None, RUN_S, poll_s=0.001,
                         what="a checkpoint write")
    writer = chaos.pid_writing(writing) if isinstance(writing, Path) and ctx.rng.random() < 0.5 else None
    if d.kill():
        ctx.killed("driver during a checkpoint write" if isinstance(writing, Path) else "driver")
    if writer is not None and chaos.kill_worker(writer):
        ctx.killed("checkpoint-writing worker")
    ctx.keep_now(case)


def server(ctx: Ctx, server_proc: Any) -> None:
    """Two ``rayflow server`` processes on one store: SIGKILL the one driving the run; the
    other takes it over once its lease lapses."""
    case = ctx.case(n_min=5, n_max=14, sleep_s=(0.02, 0.1))
    case.fail = None   # (a server resumes a FAILED run only when asked; keep it simple)
    for f in case.ledger.folder.glob("fail-*"):
        f.unlink()
    servers = [server_proc(ctx.store_url, ctx.tmp, name) for name in ("a", "b")]
    ctx.procs.extend(servers)
    body: dict[str, Any] = {"inputs": {"folder": str(case.ledger.folder)}, "run_id": case.run_id}
    if case.builder == "spec":
        body["spec"] = chaos_spec(case.dag)
    else:
        body |= {"workflow": "tests.chaos.flows:chaos_dag", "inputs": {**body["inputs"], "dag": case.dag}}
    r = httpx.post(f"{ctx.rng.choice(servers).url}/v1/runs", json=body, timeout=30)
    assert r.status_code == 201, r.text
    ctx.instant(case, going=lambda: ctx.store.get_run(case.run_id).status in ("PENDING", "RUNNING"))
    owner = ctx.store.get_run(case.run_id).owner
    pids = {f"server:{s.server_id}": s.pid for s in ctx.store.list_servers()}
    victim = next((s for s in servers if s.pid == pids.get(owner)), None)
    if victim is not None:
        victim.kill()
        ctx.killed("server")
        ctx.keep_now(case)
    chaos.wait_status(ctx.store, case.run_id, ("SUCCEEDED", "FAILED", "CANCELLED"), RUN_S)


def tracker(ctx: Ctx) -> None:
    """Runs driven by the cluster's tracker actor; kill it (restartable or not) at a random
    instant: the waiting client takes the run over."""
    import ray

    case = ctx.case()
    handle = ctx.submit(case)
    ctx.instant(case, going=lambda: handle.status() in ("PENDING", "RUNNING"))
    restart = ctx.rng.random() < 0.5
    ray.kill(ray.get_actor("tracker", namespace="rayflow"), no_restart=not restart)
    ctx.killed("tracker" + (" (restarted)" if restart else ""))
    ctx.keep_now(case)
    handle.wait(RUN_S)
    ctx.take_result(case, handle)


def redis(ctx: Ctx, redis_server: Any) -> None:
    """Cached components (memory, then a throwaway Redis): SIGKILL Redis mid-run, start it
    again (empty) a moment later; the run goes on."""
    case = ctx.case(fail_share=0.0)
    for node in case.dag["nodes"]:
        node["cache"] = True
    case.once = True
    handle = ctx.submit(case)
    ctx.instant(case, going=lambda: handle.status() == "RUNNING")
    redis_server.kill()
    ctx.killed("redis")
    time.sleep(ctx.rng.uniform(0.1, 1.5))
    redis_server.start()
    handle.wait(RUN_S)
    ctx.take_result(case, handle)


def postgres(ctx: Ctx, pg: Any) -> None:
    """The run store on a throwaway PostgreSQL: SIGKILL the server and its backends mid-run,
    start it again a moment later. Driven here (30 s lease: the writes wait and land), or
    by a subprocess with a 2 s lease, which the outage outlasts: it stops driving (it cannot
    renew) and the run is resumed."""
    case = ctx.case(fail_share=0.0)
    short = ctx.rng.random() < 0.5
    if short:
        d = ctx.driver(case, lease_s=PAUSE_LEASE_S)
        going = lambda: d.proc.poll() is None   # noqa: E731
    else:
        case.once = True
        handle = ctx.submit(case)
        going = lambda: handle.status() in ("PENDING", "RUNNING")   # noqa: E731
    ctx.instant(case, going=going)
    crash_postgres(pg)
    ctx.killed("postgresql" + (" (outlasting a 2 s lease)" if short else ""))
    time.sleep(ctx.rng.uniform(3.0, 5.0) if short else ctx.rng.uniform(0.5, 4.0))
    wait_until(lambda: _started(pg), 60, poll_s=0.5, what="the throwaway PostgreSQL to start again")
    if short:
        d.exited(RUN_S)   # it ends the run, or stops driving it; a resume finishes it
        ctx.keep_now(case)
    else:
        handle.wait(RUN_S)
        ctx.take_result(case, handle)


def pause(ctx: Ctx) -> None:
    """SIGSTOP a driver past its lease; ``rayflow resume`` in a fresh process takes the run
    over; SIGCONT the first driver while the second drives: the first must stop and commit
    nothing more. (What it had handed to Ray may still start as it wakes: components are
    submitted eagerly, waiting on their upstream's object, and its Ray core worker resolves
    that before any Python code runs; the driver cancels them once it learns, and the
    store refuses their rows.)"""
    case = ctx.case(fail_share=0.0)
    d = ctx.driver(case, lease_s=PAUSE_LEASE_S)
    ctx.instant(case, going=lambda: d.proc.poll() is None)
    d.signal(signal.SIGSTOP)
    ctx.killed("driver paused past its lease")
    ctx.keep_now(case)
    epoch = ctx.store.get_run(case.run_id).lease_epoch
    time.sleep(PAUSE_LEASE_S + ctx.rng.uniform(0.2, 1.0))
    if ctx.store.get_run(case.run_id).status == "SUCCEEDED":
        d.signal(signal.SIGCONT)
        return
    second = chaos.cli_resume(case.run_id, store=ctx.store_url, address=ctx.address, checkpoints=str(ctx.ckpt_root),
                              lease_s=PAUSE_LEASE_S, log=ctx.tmp / f"resume-{case.run_id}.log")
    ctx.procs.append(second)
    wait_until(lambda: ctx.store.get_run(case.run_id).lease_epoch > epoch or second.poll() is not None, RUN_S,
               poll_s=0.05, what="the second driver to claim the run")
    time.sleep(ctx.rng.uniform(0.0, 1.0))
    d.signal(signal.SIGCONT)
    second.wait(RUN_S)
    d.exited(30)
    # what the first driver does once woken is judged by what it commits (the run's checks:
    # one committed result per component, no row or event of it after the take-over), not
    # by what starts: see the docstring


def disk(ctx: Ctx) -> None:
    """Checkpoints on a 4 MB tmpfs that fills with 2 MB outputs; a subprocess driver killed
    at a random instant, resumed here on the same full disk."""
    case = ctx.case(big_share=0.5, big=250_000)
    d = ctx.driver(case)
    ctx.instant(case, going=lambda: d.proc.poll() is None)
    if d.kill():
        ctx.killed("driver (checkpoints on a full disk)")
    ctx.keep_now(case)


# -- helpers ----------------------------------------------------------------------------


def crash_postgres(pg: Any) -> None:
    """SIGKILL the postmaster of ``pg`` (a throwaway server) and every backend it forked."""
    pid = int((pg.data / "postmaster.pid").read_text().split()[0])
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for p in [pid, *map(int, children)]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: not any(Path(f"/proc/{p}").exists() for p in [pid, *map(int, children)]), 30,
               what="PostgreSQL's processes to exit")


def _started(pg: Any) -> bool:
    try:
        pg.start()
        return True
    except RuntimeError:
        return False


KINDS = {
    "worker": worker, "driver": driver, "driver_after_done": driver_after_done,
    "driver_checkpoint": driver_checkpoint, "server": server, "tracker": tracker, "redis": redis,
    "postgres": postgres, "pause": pause, "disk": disk,
}
SUBPROCESS_KINDS = {"driver", "driver_after_done", "driver_checkpoint", "pause", "disk"}

