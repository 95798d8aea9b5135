"""Runs a ``rayflow server`` drives after their submitting script exited, against the same
runs while the script waits for them; and the same two cases on the tracker (no server).

The issue's requirement: 1,000 concurrent small workflows driven by the server after their
submitting script exited take at most 1.2x the time they take while it is alive.

One Ray cluster (``ray start --head --num-cpus 2``, its own ports 6395-6399 and temp dir
``/tmp/ray-bench-handoff``), one ``rayflow server`` on it (``--auth none``, port 8472 or
8473) with a fresh run store: SQLite in a temporary folder, then (``--stores``) PostgreSQL
in a throwaway schema ``rayflow_bench_handoff_<pid>``, dropped at the end. A separate
script process (this file with ``--child``) connects to the cluster with ``rf.init(address,
store)`` and calls ``rf.submit`` ``--workflows`` times on ``handoff_wf:small_wf`` (a ->
(b, c, d) -> e, five no-op components, ``fuse=False``). With a server live on the store,
``rf.submit`` records each run queued and returns at once; the server claims and drives
them (``--max-runs`` 64 at once). The cases:

- ``server_alive``:   the script submits all, then waits for every handle in the same process;
- ``server_exited``:  the script submits all and exits at once;
- ``tracker_alive``, ``tracker_exited``: the same with the server stopped, so ``rf.submit``
  hands each run to the cluster's detached tracker actor (what it does without a server).
  Each tracker case starts from a fresh tracker (the script kills the one left before it
  starts its clock), so the tracker belongs to that script's Ray job, as for a user whose
  script is the first to submit.

Every case is timed the same way, by the store: from the script's first submit (it prints
the timestamp) to the latest ``ended_at`` of its runs, read through a separate connection
by this process, which then exits non-zero unless every run and all five components of
each are SUCCEEDED. Warm-up first (``WARM_UP`` workflows, after every server start too);
``--reps`` repetitions alternating the order of the cases; medians. Reported per case:
wall seconds, runs/s, components/s; and exited/alive for the server (target <= 1.2) and
for the tracker. A case that has not ended in ``--case-timeout`` seconds is recorded as
timed out (its runs cancelled) rather than waited for. Run from the repository root::

    python benchmarks/server_handoff.py            # 1,000 workflows, 3 reps, writes results/server_handoff.json
    python benchmarks/server_handoff.py --quick    # 100 workflows, 1 rep, writes results/server_handoff-quick.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results" / "server_handoff.json"
QUICK_RESULTS = RESULTS.with_name("server_handoff-quick.json")   # a smoke run never replaces the real figures
TARGET = 1.2              # server: exited / alive at most this
CASES = ("server_alive", "server_exited", "tracker_alive", "tracker_exited")
WARM_UP = 50              # workflows of each warm-up pass
SETTLE_S = 3.0            # quiet time before each timed case
POLL_S = 0.5              # how often this process reads the store while it waits
RAY_PORTS = {"port": 6395, "ray-client-server-port": 6396, "node-manager-port": 6397,
             "object-manager-port": 6398, "dashboard-agent-listen-port": 6399}
SERVER_PORTS = (8472, 8473)
TEMP_DIR = "/tmp/ray-bench-handoff"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
NOTABLE = re.compile(r"WARNING|ERROR|CRITICAL|Traceback|Exception|could not|refused")
# rf.submit may hand back a handle whose run_id is "" (seen once, on PostgreSQL): when
# record_new_run finds the generated id taken, Service.start catches RunExists and returns a
# handle of `run_id or ""`. Generated ids (name-YYYYmmdd-HHMMSS-<6 hex digits>, 24 random
# bits) made 1,000 within a second collide with ~3% chance; a store write retried after its
# first attempt committed would look the same. The script submits such a run again and the
# benchmark reports how often it did (`lost_submits`).
LOST_SUBMITS = "lost_submits"
UVICORN_NOISE = re.compile(r"^INFO: +(Started server process|Waiting for application|Application startup|"
                           r"Uvicorn running|Shutting down|Application shutdown|Finished server process)")


# -- the submitting script (this file with --child) ----------------------------------------


def child(args: argparse.Namespace) -> int:
    """Submit ``args.workflows`` runs from this process; wait for them or exit at once.
    Prints one ``RESULT {json}`` line; writes the run ids to ``args.ids``."""
    import handoff_wf

    import rayflow as rf

    rf.init(address=args.address, store=args.store)
    if args.fresh_tracker:   # the tracker left by an earlier case belongs to that script's job
        import ray  # after rf.init, which settles Ray's auth mode before ray loads

        from rayflow.server.tracker import NAME, NAMESPACE

        try:
            ray.kill(ray.get_actor(NAME, namespace=NAMESPACE), no_restart=True)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    ray.get_actor(NAME, namespace=NAMESPACE)
                except ValueError:
                    break
                time.sleep(0.1)
        except ValueError:
            pass
    start = time.time()
    handles, lost = [], 0
    for i in range(args.workflows):
        h = rf.submit(handoff_wf.small_wf, i=i)
        while not h.run_id and lost < 100:   # see LOST_SUBMITS: submit it again
            lost += 1
            h = rf.submit(handoff_wf.small_wf, i=i)
        handles.append(h)
    submitted = time.time()
    if len({h.run_id for h in handles}) != len(handles) or not all(h.run_id for h in handles):
        sys.exit(f"rf.submit gave {len(handles) - len({h.run_id for h in handles})} duplicate or empty run ids")
    Path(args.ids).write_text("\n".join(h.run_id for h in handles) + "\n")
    out = {"start": start, "submitted": submitted, "submit_s": submitted - start, "pid": os.getpid(), "lost": lost,
           "view": type(handles[0].view).__name__ if handles else None, "waited": args.wait}
    if args.wait:
        deadline = start + args.timeout
        statuses: dict[str, int] = {}
        try:
            for h in handles:
                status = h.wait(timeout=max(0.1, deadline - time.time()))
                statuses[status] = statuses.get(status, 0) + 1
            out["done"] = time.time()
            out["script_wall_s"] = out["done"] - start
        except TimeoutError:
            out["timed_out"] = True
        out["statuses"] = statuses
    print("RESULT " + json.dumps(out), flush=True)
    return 0


# -- processes ---------------------------------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def child_env(home: Path) -> dict[str, str]:
    """What every process started here gets: the repository and benchmarks/ importable (the
    server plans ``handoff_wf:small_wf``; Ray workers, started by the raylet, load it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYFLOW_SERVER", "RAYFLOW_TOKEN",
                                                            "RAYFLOW_STORE", "RAYFLOW_TRACKER")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(BENCH), os.environ.get("PYTHONPATH")]))
    env["RAYFLOW_HOME"] = str(home)                       # checkpoints and keys: temporary
    env["RAYFLOW_CHECKPOINTS"] = str(home / "checkpoints")
    env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"     # `ray start --block` stops at once on SIGTERM
    env.setdefault("RAY_AUTH_MODE", "token")   # `ray start` clusters require the token (~/.ray/auth_token)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


@dataclass
class Proc:
    """A process group this benchmark started (``start_new_session``), its output in a file."""

    name: str
    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 60.0) -> float:
        """SIGTERM the leader, wait; then SIGKILL the whole group. Seconds to exit."""
        t0 = time.monotonic()
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"{self.name} ignored SIGTERM for {timeout:.0f} s: killed", flush=True)
        took = time.monotonic() - t0
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)   # whatever of the group is left
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass
        return took


def spawn(name: str, argv: list[str], log: Path, env: dict[str, str]) -> Proc:
    out = open(log, "ab")   # noqa: SIM115 - the child writes it for its whole life
    popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
                             env=env, start_new_session=True)
    out.close()
    return Proc(name, popen, log)


def start_cluster(folder: Path, env: dict[str, str]) -> tuple[Proc, str]:
    ports = [f"--{k}={v}" for k, v in RAY_PORTS.items()]
    argv = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--num-cpus=2",
            "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={TEMP_DIR}", *ports]
    head = spawn("ray head", argv, folder / "head.log", env)
    deadline = time.monotonic() + 180
    while "Ray runtime started" not in tail(head.log, 100_000):
        if not head.alive() or time.monotonic() > deadline:
            head.stop(5)
            sys.exit(f"the Ray head did not start:\n{tail(head.log)}")
        time.sleep(0.5)
    return head, f"127.0.0.1:{RAY_PORTS['port']}"


def stop_cluster(head: Proc) -> None:
    """The head's process group, then anything left that names this cluster's temp dir (never
    a bare `ray stop`: other clusters share the machine)."""
    head.stop(30)
    for _ in range(20):
        left = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if TEMP_DIR in cmd and int(entry.name) != os.getpid():
                    left.append(int(entry.name))
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.5)


@dataclass
class Server:
    proc: Proc
    port: int
    started_s: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_server(folder: Path, env: dict[str, str], address: str, store_url: str, port: int, n: int) -> Server:
    import httpx

    log = folder / f"server-{n}.log"
    argv = [str(Path(sys.executable).parent / "rayflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--address", address, "--store", store_url, "--auth", "none"]
    t0 = time.monotonic()
    proc = spawn("rayflow server", argv, log, env)
    deadline = t0 + 180
    while True:
        if not proc.alive():
            sys.exit(f"the rayflow server exited ({proc.popen.returncode}) before answering:\n{tail(log)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.stop(10)
            sys.exit(f"the rayflow server did not get ready in 180 s:\n{tail(log)}")
        time.sleep(0.25)
    return Server(proc, port, time.monotonic() - t0)


def notable_lines(log: Path, limit: int = 40) -> list[str]:
    """The server's log lines worth reading: warnings, errors, tracebacks (not uvicorn's own)."""
    lines = [ln for ln in tail(log, 10_000_000).splitlines() if NOTABLE.search(ln) and not UVICORN_NOISE.match(ln)]
    return lines[:limit] + ([f"... {len(lines) - limit} more"] if len(lines) > limit else [])


def log_summary(log: Path) -> dict:
    """What the server's log holds: its lines, how many are rayflow's INFO lines (one per
    claimed run: "driven here under lease"), and the first of rayflow's own lines."""
    lines = tail(log, 10_000_000).splitlines()
    ours = [ln for ln in lines if " rayflow" in ln and not UVICORN_NOISE.match(ln)]
    return {"lines": len(lines), "rayflow_lines": len(ours),
            "driven_here_lines": sum("driven here under lease" in ln for ln in ours),
            "first_rayflow_lines": [ln for ln in ours if "driven here" not in ln][:3]}


# -- stores ---------------------------------------------------------------------------------------


def pg_execute(url: str, statement: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(go())


@dataclass
class StoreCase:
    kind: str
    url: str
    cases: list[str]
    cleanup: list = field(default_factory=list)


def make_store(kind: str, tmp: Path, args: argparse.Namespace) -> StoreCase | None:
    if kind == "sqlite":
        return StoreCase(kind, f"sqlite:///{tmp / 'handoff.db'}", list(args.cases))
    schema = f"rayflow_bench_handoff_{os.getpid()}"
    try:
        pg_execute(args.pg_url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    except Exception as exc:  # noqa: BLE001 - the store is skipped with the reason
        print(f"skipping the PostgreSQL store: {type(exc).__name__}: {exc}", flush=True)
        return None
    cases = [c for c in args.cases if args.pg_tracker or c.startswith("server")]
    case = StoreCase(kind, f"{args.pg_url}?schema={schema}", cases)
    case.cleanup.append(lambda: pg_execute(args.pg_url, f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    return case


# -- one case ---------------------------------------------------------------------------------------


@dataclass
class Sample:
    case: str
    workflows: int
    wall_s: float | None = None           # first submit -> the last run's ended_at (from the store)
    submit_s: float | None = None         # first submit -> last submit returned
    script_exit_s: float | None = None    # first submit -> the script process gone
    script_wall_s: float | None = None    # alive: first submit -> every handle final, as the script saw it
    first_started_s: float | None = None  # first submit -> the first run started
    ended_before_exit: int | None = None  # runs that had ended when the script process was gone
    lost_submits: int = 0                 # rf.submit calls that gave a handle with no run id (submitted again)
    view: str | None = None
    timed_out: bool = False
    finished: int = 0
    load_avg_1m: float = 0.0

    def as_json(self) -> dict:
        out = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}
        if self.wall_s:
            out["runs_per_s"] = round(self.workflows / self.wall_s, 2)
            out["components_per_s"] = round(self.workflows * 5 / self.wall_s, 1)
        return out


def wait_final(store, run_ids: list[str], deadline: float) -> int:
    """Poll the store until every run is final (or ``deadline``); how many are final. Only
    the first run not seen final is read each turn, so a turn costs one query."""
    i = 0
    while i < len(run_ids):
        run = store.get_run(run_ids[i])
        if run is not None and run.status in FINAL:
            i += 1
            continue
        if time.time() > deadline:
            return i + sum(1 for r in run_ids[i + 1:] if (x := store.get_run(r)) is not None and x.status in FINAL)
        time.sleep(POLL_S)
    return len(run_ids)


def verify(store, run_ids: list[str], case: str) -> tuple[float, list[float]]:
    """Every run and all its components SUCCEEDED, else exit loudly. (first started_at, every ended_at)."""
    from handoff_wf import COMPONENTS

    firsts, lasts = [], []
    for run_id in run_ids:
        run = store.get_run(run_id)
        comps = store.get_components(run_id)
        bad = [f"{c.component_id}={c.state}" for c in comps if c.state != "SUCCEEDED"]
        if run is None or run.status != "SUCCEEDED" or len(comps) != COMPONENTS or bad or run.ended_at is None:
            status = run.status if run else "missing"
            error = (run.error or "")[:300] if run else ""
            sys.exit(f"STORE CHECK FAILED in {case} for run {run_id}: run {status} ({error}), {len(comps)}/"
                     f"{COMPONENTS} components recorded, not SUCCEEDED: {bad[:5]}")
        lasts.append(run.ended_at)
        firsts.append(run.started_at or run.ended_at)
    return min(firsts), lasts


def cancel_left(store, run_ids: list[str]) -> int:
    left = [r for r in run_ids if (x := store.get_run(r)) is not None and x.status not in FINAL]
    for run_id in left:
        store.request_cancel(run_id)
    return len(left)


def run_case(case: str, workflows: int, ctx: Ctx, *, label: str) -> Sample:
    """One case: the script submits ``workflows`` runs (and waits for them, or exits); the
    runs are waited for in the store, checked and timed."""
    from rayflow.store import open_store

    alive, tracker = case.endswith("alive"), case.startswith("tracker")
    time.sleep(SETTLE_S)
    ids = ctx.folder / f"{label}.ids"
    log = ctx.folder / f"{label}.log"
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", "--address", ctx.address, "--store",
            ctx.store.url, "--workflows", str(workflows), "--ids", str(ids), "--timeout", str(ctx.timeout)]
    argv += ["--wait"] if alive else []
    argv += ["--fresh-tracker"] if tracker else []
    sample = Sample(case, workflows, load_avg_1m=round(os.getloadavg()[0], 2))
    proc = spawn(f"script {label}", argv, log, ctx.env)
    try:
        proc.popen.wait(ctx.timeout + 120)   # the script bounds its own wait by --timeout from its first submit
    except subprocess.TimeoutExpired:
        print(f"{label}: the script did not exit: killed", flush=True)
        proc.stop(5)
    exited = time.time()
    found = re.findall(r"^RESULT (\{.*\})$", tail(log, 1_000_000), re.M)
    if proc.popen.returncode != 0 or not found:
        sys.exit(f"{label}: the submitting script failed ({proc.popen.returncode}):\n{tail(log)}")
    out = json.loads(found[-1])
    expected = "TrackerView" if tracker else "StoreView"
    if out["view"] != expected:
        sys.exit(f"{label}: rf.submit gave a {out['view']} handle, expected {expected} "
                 f"({'the tracker' if tracker else 'the server'} should drive it)")
    start = out["start"]
    sample.view, sample.submit_s, sample.lost_submits = out["view"], out["submit_s"], out.get("lost", 0)
    if sample.lost_submits:
        print(f"{label}: {sample.lost_submits} rf.submit call(s) gave a handle with no run id; submitted again",
              flush=True)
    sample.script_exit_s = exited - start
    sample.script_wall_s = out.get("script_wall_s")
    run_ids = ids.read_text().split()
    if len(run_ids) != workflows:
        sys.exit(f"{label}: the script recorded {len(run_ids)} runs, not {workflows}")
    store = open_store(ctx.store.url)   # a connection of our own: read what the server or tracker wrote
    try:
        sample.finished = wait_final(store, run_ids, start + ctx.timeout)
        if sample.finished < len(run_ids):
            sample.timed_out = True
            left = cancel_left(store, run_ids)
            print(f"{label}: TIMED OUT after {ctx.timeout:.0f} s with {sample.finished}/{workflows} runs final; "
                  f"cancelling the {left} left", flush=True)
            wait_final(store, run_ids, time.time() + 120)
            return sample
        first, ends = verify(store, run_ids, label)
    finally:
        store.close()
    sample.wall_s = max(ends) - start
    sample.first_started_s = first - start
    sample.ended_before_exit = sum(e <= exited for e in ends)
    return sample


# -- a store's pass ----------------------------------------------------------------------------------


@dataclass
class Ctx:
    args: argparse.Namespace
    folder: Path
    env: dict[str, str]
    address: str
    store: StoreCase
    server_port: int
    timeout: float
    server: Server | None = None
    server_starts: list[dict] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def ensure_server(self, want: bool) -> None:
        if want and self.server is None:
            n = len(self.server_starts) + 1
            self.server = start_server(self.folder, self.env, self.address, self.store.url, self.server_port, n)
            self.logs.append(self.server.proc.log)
            print(f"  server {n} up in {self.server.started_s:.1f} s (pid {self.server.proc.popen.pid}); "
                  f"warm-up of {WARM_UP}", flush=True)
            warm = run_case("server_alive", WARM_UP, self, label=f"warm-server-{n}")
            self.server_starts.append({"ready_s": round(self.server.started_s, 2),
                                       "warm_up_wall_s": round(warm.wall_s or -1, 2)})
        elif not want and self.server is not None:
            took = self.server.proc.stop(60)
            self.server_starts[-1]["stop_s"] = round(took, 2)
            self.server_starts[-1]["exit_code"] = self.server.proc.popen.returncode
            self.server = None


def schedule(cases: list[str], rep: int) -> list[str]:
    """The order of one repetition: the server's cases and the tracker's as two groups (so the
    server starts or stops once between them); which group, and which case in each, goes
    first alternates by repetition."""
    groups = [[c for c in cases if c.startswith("server")], [c for c in cases if c.startswith("tracker")]]
    groups = [g if rep % 2 == 0 else list(reversed(g)) for g in groups if g]
    if rep % 2:
        groups.reverse()
    return [c for g in groups for c in g]


def bench_store(ctx: Ctx) -> dict:
    args, cases = ctx.args, ctx.store.cases
    print(f"\n== {ctx.store.kind}: {args.workflows} workflows x {args.reps} reps, cases {', '.join(cases)}", flush=True)
    samples: dict[str, list[Sample]] = {c: [] for c in cases}
    try:
        if any(c.startswith("tracker") for c in cases):   # the tracker's warm-up, no server live
            ctx.ensure_server(False)
            run_case("tracker_alive", WARM_UP, ctx, label=f"{ctx.store.kind}-warm-tracker")
        for rep in range(args.reps):
            for case in schedule(cases, rep):
                ctx.ensure_server(case.startswith("server"))
                s = run_case(case, args.workflows, ctx, label=f"{ctx.store.kind}-{case}-{rep}")
                samples[case].append(s)
                wall = "TIMED OUT" if s.timed_out else f"{s.wall_s:7.2f} s  {args.workflows / s.wall_s:7.1f} runs/s"
                print(f"rep {rep + 1}/{args.reps} {case:<15} {wall}  submit {s.submit_s:6.2f} s  script gone "
                      f"{s.script_exit_s:6.2f} s ({s.ended_before_exit} runs ended by then)  load {s.load_avg_1m}",
                      flush=True)
    finally:
        ctx.ensure_server(False)
    return summarize(samples, args.workflows, ctx)


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def ratio(samples: dict[str, list[Sample]], side: str) -> dict | None:
    alive, exited = samples.get(f"{side}_alive"), samples.get(f"{side}_exited")
    if not alive or not exited:
        return None
    a = [s.wall_s for s in alive if s.wall_s]
    e = [s.wall_s for s in exited if s.wall_s]
    timed_out = any(s.timed_out for s in alive + exited)
    out: dict = {"timed_out": timed_out}
    if a and e:
        out["exited_over_alive"] = round(median(e) / median(a), 3)
        out["paired_median"] = round(median([x.wall_s / y.wall_s for x, y in zip(exited, alive, strict=True)
                                             if x.wall_s and y.wall_s]), 3)
    if timed_out:   # a timed-out exited case is at least this much slower
        out["note"] = "a case timed out: the ratio, where given, is over the cases that ended"
    return out


def summarize(samples: dict[str, list[Sample]], workflows: int, ctx: Ctx) -> dict:
    cases = {}
    for case, ss in samples.items():
        walls = [s.wall_s for s in ss if s.wall_s]
        med = median(walls)
        cases[case] = {
            "samples": [s.as_json() for s in ss],
            "timed_out": sum(s.timed_out for s in ss),
            "median_wall_s": round(med, 2) if med else None,
            "runs_per_s": round(workflows / med, 2) if med else None,
            "components_per_s": round(workflows * 5 / med, 1) if med else None,
            "median_submit_s": round(median([s.submit_s for s in ss if s.submit_s is not None]) or 0, 2),
            "median_script_exit_s": round(median([s.script_exit_s for s in ss if s.script_exit_s is not None]) or 0,
                                          2),
            "median_ended_before_exit": median([s.ended_before_exit for s in ss if s.ended_before_exit is not None]),
            LOST_SUBMITS: sum(s.lost_submits for s in ss),
        }
        if case.endswith("alive"):
            sw = [s.script_wall_s for s in ss if s.script_wall_s]
            cases[case]["median_script_wall_s"] = round(median(sw), 2) if sw else None
    server, tracker = ratio(samples, "server"), ratio(samples, "tracker")
    verdict = None
    if server is not None:
        value = server.get("exited_over_alive")
        met = value is not None and value <= TARGET and not any(s.timed_out for s in samples["server_exited"])
        verdict = {"value": value, "target": f"<= {TARGET}", "met": met}
    notable = {p.name: notable_lines(p) for p in ctx.logs}
    summaries = {p.name: log_summary(p) for p in ctx.logs}
    return {"store": ctx.store.kind, "cases": cases, "server_exited_over_alive": server,
            "tracker_exited_over_alive": tracker, "verdict": verdict, "server_starts": ctx.server_starts,
            "server_log_notable": {k: v for k, v in notable.items() if v}, "server_logs": summaries}


def print_table(results: dict[str, dict], args: argparse.Namespace) -> None:
    print(f"\nmedians of {args.reps} repetitions, {args.workflows} workflows x 5 components; wall: first submit "
          f"-> last run ended (store)")
    print(f"{'store':<10} {'case':<15} {'wall s':>8} {'runs/s':>8} {'comp/s':>8} {'submit s':>9} {'script gone':>12} "
          f"{'ended by then':>14}")
    for kind, res in results.items():
        for case, c in res["cases"].items():
            wall = "timed out" if c["median_wall_s"] is None else f"{c['median_wall_s']:8.2f}"
            rps = "-" if c["runs_per_s"] is None else f"{c['runs_per_s']:8.1f}"
            cps = "-" if c["components_per_s"] is None else f"{c['components_per_s']:8.1f}"
            print(f"{kind:<10} {case:<15} {wall:>8} {rps:>8} {cps:>8} {c['median_submit_s']:>9.2f} "
                  f"{c['median_script_exit_s']:>12.2f} {c['median_ended_before_exit'] or 0:>14.0f}")
        for side in ("server", "tracker"):
            r = res[f"{side}_exited_over_alive"]
            if r is not None:
                v = res["verdict"] if side == "server" else None
                mark = "" if v is None else f"  (target <= {TARGET}: {'met' if v['met'] else 'MISSED'})"
                print(f"{kind:<10} {side} exited/alive: {r.get('exited_over_alive')} (paired "
                      f"{r.get('paired_median')}){mark}")


def code_state() -> dict:
    """The commit, and the modification time of every rayflow/ source file: other work edits
    the tree while a long benchmark runs, and every process started here loads what is there."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return {"git_head": head.stdout.strip() or None,
            "mtimes": {str(p.relative_to(REPO)): p.stat().st_mtime for p in (REPO / "rayflow").rglob("*.py")}}


def code_changes(before: dict, after: dict) -> dict:
    changed = sorted(f for f in set(before["mtimes"]) | set(after["mtimes"])
                     if before["mtimes"].get(f) != after["mtimes"].get(f))
    return {"git_head_at_start": before["git_head"], "git_head_at_end": after["git_head"],
            "rayflow_files_changed_during_the_run": changed}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workflows", type=int, default=1000, help="small workflows per case (default 1000)")
    p.add_argument("--reps", type=int, default=3, help="repetitions of every case (default 3)")
    p.add_argument("--quick", action="store_true", help="smoke run: 100 workflows, 1 repetition")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    p.add_argument("--stores", default="sqlite,postgresql", help="comma-separated subset of sqlite,postgresql")
    p.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL database for the throwaway schema (default {PG_URL})")
    p.add_argument("--pg-tracker", action="store_true", help="also the tracker cases on PostgreSQL")
    p.add_argument("--case-timeout", type=float, default=600.0, help="seconds a case may take (default 600)")
    p.add_argument("--keep-logs", type=Path, help="copy the server, head and script logs to this folder")
    p.add_argument("--out", type=Path, help=f"JSON output (default {RESULTS}, with --quick {QUICK_RESULTS.name})")
    # the submitting script's own options (--child)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--address", help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    p.add_argument("--ids", help=argparse.SUPPRESS)
    p.add_argument("--wait", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--fresh-tracker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=600.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.workflows, args.reps = 100, 1
    args.cases = [c for c in CASES if c in args.cases.split(",")]
    args.out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    busy = [p for p in RAY_PORTS.values() if not port_free(p)]
    if busy:
        sys.exit(f"ports {busy} are taken: another run of this benchmark, or another cluster, uses them")
    server_port = next((p for p in SERVER_PORTS if port_free(p)), None)
    if server_port is None:
        sys.exit(f"ports {SERVER_PORTS} are both taken")
    results: dict[str, dict] = {}
    t_all = time.monotonic()
    code_before = code_state()
    with tempfile.TemporaryDirectory(prefix="rayflow-handoff-") as tmp_name:
        tmp = Path(tmp_name)
        env = child_env(tmp / "home")
        head, address = start_cluster(tmp, env)
        print(f"cluster up at {address} (temp dir {TEMP_DIR}); server port {server_port}", flush=True)
        try:
            for kind in [k.strip() for k in args.stores.split(",") if k.strip()]:
                store = make_store(kind, tmp, args)
                if store is None:
                    continue
                folder = tmp / kind
                folder.mkdir()
                ctx = Ctx(args, folder, env, address, store, server_port, args.case_timeout)
                try:
                    results[kind] = bench_store(ctx)
                finally:
                    for cleanup in store.cleanup:
                        try:
                            cleanup()
                        except Exception as exc:  # noqa: BLE001 - say so, and go on
                            print(f"cleanup of {kind} failed: {exc}", flush=True)
        finally:
            stop_cluster(head)
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for log in tmp.rglob("*.log"):
                    shutil.copy(log, args.keep_logs / f"{log.parent.name}-{log.name}")
    if not results:
        print("server_handoff: no store could be measured")
        return 1
    print_table(results, args)
    code = code_changes(code_before, code_state())
    if code["rayflow_files_changed_during_the_run"] or code["git_head_at_start"] != code["git_head_at_end"]:
        print(f"NOTE: the code changed during the run: {code}", flush=True)
    from reporting import write_report

    write_report(args.out, {
        "benchmark": "server_handoff", "quick": args.quick, "reps": args.reps, "workflows": args.workflows,
        "components_per_workflow": 5, "cases": args.cases, "target": f"server exited / alive <= {TARGET}",
        "settings": {"cluster": "ray start --head --num-cpus 2 (one node)",
                     "server": "rayflow server --auth none, --max-runs 64 (the default)",
                     "workflow": "handoff_wf:small_wf, a -> (b, c, d) -> e, fuse=False",
                     "wall": "first submit (the script's clock) -> the latest ended_at of the case's runs (store)",
                     "tracker": "a fresh tracker per tracker case, created by that case's script",
                     "warm_up": f"{WARM_UP} workflows after every server start, and once on the tracker",
                     "case_timeout_s": args.case_timeout},
        "cpu_model": cpu_model(), "cores": os.cpu_count(), "total_s": round(time.monotonic() - t_all, 1),
        "code": code, "stores": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
