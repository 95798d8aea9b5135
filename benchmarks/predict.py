"""Learned sizing and ordering against static declarations, on this machine (2 CPUs).

Case 1, ``sizing``: three workload shapes, every component declared ``num_cpus=1`` as
users do, each run with the declared resources and with ``sizing="auto"`` after a few
training runs (history -> the model trained into the run store):

- ``mixed``: 8 I/O-bound components (wait 3 s on a service, a few percent of a core),
  2 CPU-bound ones (1 s of arithmetic), and 2 memory-heavy ones whose peak grows with
  their input size (target: auto >= 30% lower makespan);
- ``short_cpu``: 24 CPU-bound components of 40 ms each, all at once;
- ``fanout16``: a fan-out of 16 short components, 8 waiting 40 ms and 8 computing 40 ms.

Every shape runs on local Ray (``ray.init`` in this process) and through a cluster this
script starts with ``ray start --head --port 6398 --num-cpus 2 --temp-dir
/tmp/rf-predict-ray`` (runs then go to the cluster's run tracker) and stops at the end
by killing the processes under that temp dir, by pid. Reported per shape and mode: the
makespan ratio auto / declared (target: never above 1, within noise), the requests
auto made, and for ``mixed`` OOM kills (target 0) and memory requested over the p95
actually used (target <= 1.5). An auto run's time includes Ray starting the workers its
fractional requests let run at once (about a second each, two at a time here).

Case 2, ``ordering`` (local Ray): a DAG whose branches have uneven durations (one 2 s
step beside a chain of three 0.3 s steps and four more) under ``max_concurrency=2``,
ordered by upward rank with every component weighing the same (the FIFO-like default
without history: the chain looks longest) or with the model's predicted durations
(HEFT: the long step goes first). Reported: the makespan ratio, predicted over unit weights.

Each side is measured ``--reps`` times, alternating which goes first; medians. Writes
``benchmarks/results/predict.json``. Run from the repository root::

    python benchmarks/predict.py                      # both modes, every shape
    python benchmarks/predict.py --modes local --shapes mixed --reps 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import rayflow as rf

RESULTS = Path(__file__).resolve().parent / "results" / "predict.json"
TARGETS = {"makespan_reduction": 0.30, "oom_kills": 0, "memory_requested_over_p95_used": 1.5}


# -- the workloads (defined here: Ray ships them to the workers by value) ---------------------


@rf.component
def io_wait(i: int, seconds: float = 3.0) -> int:
    time.sleep(seconds)             # waiting on a service: a few percent of a core
    return i


@rf.component
def crunch(i: int, seconds: float = 1.0) -> float:
    x, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        x += sum(k * k for k in range(200))
    return x


@rf.component
def memhog(mib: int) -> int:
    block = np.ones(mib * 2**20 // 8)   # peak memory grows with the input
    time.sleep(0.3)
    return int(block.size)


@rf.workflow(name="mixed")
def mixed():
    return [io_wait(i) for i in range(8)] + [crunch(i) for i in range(2)] + [memhog(300), memhog(600)]


@rf.workflow(name="mixed", sizing="auto")
def mixed_auto():
    return [io_wait(i) for i in range(8)] + [crunch(i) for i in range(2)] + [memhog(300), memhog(600)]


@rf.component
def quick_io(i: int) -> int:
    time.sleep(0.04)                # a short call to a service
    return i


@rf.component
def quick_crunch(i: int) -> float:
    x, end = 0.0, time.perf_counter() + 0.04
    while time.perf_counter() < end:
        x += sum(k * k for k in range(200))
    return x


@rf.workflow(name="short_cpu")
def short_cpu():
    return [quick_crunch(i) for i in range(24)]


@rf.workflow(name="short_cpu", sizing="auto")
def short_cpu_auto():
    return [quick_crunch(i) for i in range(24)]


@rf.workflow(name="fanout16")
def fanout16():
    return [quick_io(i) for i in range(8)] + [quick_crunch(i) for i in range(8)]


@rf.workflow(name="fanout16", sizing="auto")
def fanout16_auto():
    return [quick_io(i) for i in range(8)] + [quick_crunch(i) for i in range(8)]


SHAPES = {"mixed": (mixed, mixed_auto), "short_cpu": (short_cpu, short_cpu_auto),
          "fanout16": (fanout16, fanout16_auto)}


@rf.component
def long_step(x: int) -> int:
    time.sleep(2.0)
    return x


@rf.component
def short_step(x: int) -> int:
    time.sleep(0.3)
    return x + 1


@rf.component
def gather(parts: list[int]) -> int:
    return sum(parts)


@rf.workflow(name="uneven", max_concurrency=2)
def uneven():
    """Declared short work first: a chain of 3 short steps and 4 more short ones, then one
    long step. By component count the chain looks longest; by time the long step is."""
    chain = short_step(short_step(short_step(0)))
    singles = [short_step(i) for i in range(4)]
    return gather([chain, *singles, long_step(1)])


CLUSTER_PORT = 6398
CLUSTER_TEMP = "/tmp/rf-predict-ray"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--train-runs", type=int, default=4, help="runs of history before training")
    p.add_argument("--modes", default="local,cluster", help="local (ray.init here), cluster (ray start)")
    p.add_argument("--shapes", default=",".join(SHAPES))
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    home = tempfile.mkdtemp(prefix="rayflow-predict-")
    os.environ["RAYFLOW_HOME"] = home           # a signing key of this benchmark's own
    shapes = [s for s in args.shapes.split(",") if s]
    from reporting import write_report

    modes = [m for m in args.modes.split(",") if m]
    if len(modes) > 1 or modes == ["cluster"] and os.environ.get("RAY_AUTH_MODE") != "token":
        # one process per mode: Ray reads RAY_AUTH_MODE once, when it is imported
        parts = {m: _child(m, argv or sys.argv[1:], home) for m in modes}
        results = {m: r["results"][m] for m, r in parts.items()}
        ordering = next((r["ordering"] for r in parts.values() if r.get("ordering")), None)
    else:
        mode = modes[0]
        print(f"== {mode} Ray", flush=True)
        results = {mode: run_mode(mode, home, shapes, args)}
        ordering = results[mode].pop("ordering", None)
    figures = summarize(results, ordering)
    write_report(args.out, {"benchmark": "predict", "reps": args.reps, "train_runs": args.train_runs,
                            "targets": TARGETS, "figures": figures, "results": results,
                            "ordering": ordering})
    return 0


def _child(mode: str, argv: list[str], home: str) -> dict:
    """This script for one mode in a process of its own; its report."""
    import json
    import subprocess

    out = Path(home) / f"{mode}.json"
    rest = [a for i, a in enumerate(argv) if a != "--modes" and (i == 0 or argv[i - 1] != "--modes")
            and not a.startswith("--modes=") and a != "--out" and (i == 0 or argv[i - 1] != "--out")]
    env = dict(os.environ)
    if mode == "cluster":
        env["RAY_AUTH_MODE"] = "token"   # `ray start` clusters ask for the token it wrote
    try:
        subprocess.run([sys.executable, __file__, *rest, "--modes", mode, "--out", str(out)], env=env, check=True)
    finally:
        if mode == "cluster":
            stop_cluster([])   # whatever the child left behind
    return json.loads(out.read_text())


def run_mode(mode: str, home: str, shapes: list[str], args: argparse.Namespace) -> dict:
    import ray

    pids: list[int] = []
    if mode == "cluster":
        pids = start_cluster(home)
        ray.init(address=f"127.0.0.1:{CLUSTER_PORT}", logging_level="WARNING")
    else:
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        return measure(mode, home, shapes, args)
    finally:
        ray.shutdown()
        if mode == "cluster":
            stop_cluster(pids)


def measure(mode: str, home: str, shapes: list[str], args: argparse.Namespace) -> dict:
    from rayflow.service import get_service

    rf.init(store=f"sqlite:///{home}/{mode}.db", checkpoints="off")   # a store (and model) per mode
    service = get_service()
    print(f"training: {args.train_runs} runs of each shape", flush=True)
    for _ in range(args.train_runs):
        for shape in shapes:
            rf.run(SHAPES[shape][0])
        if mode == "local":
            rf.run(uneven)
    service.flush()
    model = service.train_model()
    print(f"model: {model.n_samples} samples, families {model.components()}", flush=True)
    out: dict = {}
    for shape in shapes:
        out[shape] = compare(service, shape, args.reps)
        o = out[shape]
        print(f"{mode} {shape}: declared {o['declared_s']:.2f} s, auto {o['auto_s']:.2f} s, "
              f"median ratio auto/declared {o['ratio']:.3f}; auto requests {o['auto_requests']}", flush=True)
    if mode == "local":
        out["ordering"] = order(service, args.reps)
    return out


def compare(service, shape: str, reps: int) -> dict:
    """Declared against auto, alternating which goes first; the ratio of each pair and the medians."""
    times: dict[str, list[float]] = {"declared": [], "auto": []}
    ooms = {"declared": 0, "auto": 0}
    ratios, requests, memory = [], {}, []
    for rep in range(reps):
        for side in (["declared", "auto"] if rep % 2 == 0 else ["auto", "declared"]):
            declared, auto = SHAPES[shape]
            t0 = time.perf_counter()
            handle = rf.submit(auto if side == "auto" else declared)
            handle.wait(600)
            times[side].append(time.perf_counter() - t0)
            comps = handle.metrics()["components"]
            ooms[side] += sum(1 for c in comps.values() if "OutOfMemory" in (c.get("error") or ""))
            if side == "auto":
                requests = _requests(comps)
                if shape == "mixed":
                    memory.append(_memory_ratio(comps, _p95_peaks(service.store)))
        ratios.append(times["auto"][-1] / times["declared"][-1])
        print(f"  {shape} rep {rep + 1}/{reps}: declared {times['declared'][-1]:.2f} s, "
              f"auto {times['auto'][-1]:.2f} s", flush=True)
    memory = [m for m in memory if m is not None]
    return {"declared_s": statistics.median(times["declared"]), "auto_s": statistics.median(times["auto"]),
            "ratio": round(statistics.median(ratios), 3), "ratios": [round(r, 3) for r in ratios],
            "samples_s": times, "oom_kills": ooms, "auto_requests": requests,
            "memory_requested_over_p95_used": max(memory) if memory else None}


def order(service, reps: int) -> dict:
    times: dict[str, list[float]] = {"fifo": [], "ranked": []}
    for rep in range(reps):
        for side in (["fifo", "ranked"] if rep % 2 == 0 else ["ranked", "fifo"]):
            service.settings.predicted_order = side == "ranked"
            t0 = time.perf_counter()
            rf.run(uneven)
            times[side].append(time.perf_counter() - t0)
        print(f"ordering rep {rep + 1}/{reps}: FIFO {times['fifo'][-1]:.2f} s, "
              f"ranked {times['ranked'][-1]:.2f} s", flush=True)
    service.settings.predicted_order = True
    fifo_s, ranked_s = statistics.median(times["fifo"]), statistics.median(times["ranked"])
    return {"fifo_s": fifo_s, "ranked_s": ranked_s, "ratio": round(ranked_s / fifo_s, 3), "samples_s": times}


def summarize(results: dict, ordering: dict | None) -> dict:
    figures: dict = {}
    for mode, shapes in results.items():
        for shape, r in shapes.items():
            figures[f"{mode}.{shape}.makespan_ratio_auto_over_declared"] = r["ratio"]
            if shape == "mixed":
                figures[f"{mode}.mixed.makespan_reduction"] = round(1 - r["ratio"], 3)
                figures[f"{mode}.mixed.oom_kills_auto"] = r["oom_kills"]["auto"]
                figures[f"{mode}.mixed.memory_requested_over_p95_used"] = r["memory_requested_over_p95_used"]
    if ordering:
        figures["ordering_makespan_ratio_ranked_over_fifo"] = ordering["ratio"]
    print("\nsizing, median of auto/declared per repetition (target: mixed <= 0.70, every shape <= 1.0):")
    for key, value in figures.items():
        print(f"  {key}: {value}")
    return figures


def _requests(components: dict) -> dict[str, list[float]]:
    """The distinct num_cpus each component family asked for in one run."""
    out: dict[str, set[float]] = {}
    for cid, c in components.items():
        family = cid.rsplit("_", 1)[0] if cid.rsplit("_", 1)[-1].isdigit() else cid
        out.setdefault(family, set()).add(float(c["resources"].get("num_cpus", 1.0)))
    return {k: sorted(v) for k, v in sorted(out.items())}


def start_cluster(home: str) -> list[int]:
    """``ray start`` a head of 2 CPUs on CLUSTER_PORT (this venv on its PATH, this run's
    RAYFLOW_HOME: the run tracker it hosts shares the signing key); the pids under its temp dir."""
    import subprocess

    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "RAYFLOW_HOME": home, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    subprocess.run([f"{bin_dir}/ray", "start", "--head", "--port", str(CLUSTER_PORT), "--num-cpus", "2",
                    "--temp-dir", CLUSTER_TEMP, "--include-dashboard=false"],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    return cluster_pids()


def cluster_pids() -> list[int]:
    """The processes whose command line names the cluster's temp dir (its GCS, raylet,
    monitors and workers) or whose environment has this benchmark's RAYFLOW_HOME (the run
    tracker's host that rayflow started), this process left out."""
    out = []
    home = f"RAYFLOW_HOME={os.environ['RAYFLOW_HOME']}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if CLUSTER_TEMP.encode() in cmd or home in env:
            out.append(int(entry.name))
    return out


def stop_cluster(started: list[int]) -> None:
    """Kill the cluster's processes by pid (what it started since too), never ``ray stop``:
    another cluster on this machine is not ours to stop."""
    import signal

    for pid in sorted(set(started) | set(cluster_pids())):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _p95_peaks(store) -> dict[str, float]:
    """Per component family, the p95 of the peak memory its attempts used (run history)."""
    from rayflow.predict.history import samples_from_store

    peaks: dict[str, list[float]] = {}
    for s in samples_from_store(store):
        if s.peak_rss_bytes:
            peaks.setdefault(s.component, []).append(float(s.peak_rss_bytes))
    return {k: float(np.percentile(v, 95)) for k, v in peaks.items()}


def _memory_ratio(components: dict, p95: dict[str, float]) -> float | None:
    """Memory requested over the family's p95 peak, worst over the components that requested some."""
    worst = None
    for cid, c in components.items():
        family = f"__main__:{cid.rsplit('_', 1)[0] if cid.rsplit('_', 1)[-1].isdigit() else cid}"
        req, used = c["resources"].get("memory"), p95.get(family)
        if req and used:
            worst = max(worst or 0.0, req / used)
    return None if worst is None else round(worst, 2)


if __name__ == "__main__":
    sys.exit(main())
