"""Real scientific workflow shapes (WfCommons recipes) on raw Ray, Dask distributed and rayflow.

The shapes come from the ``wfcommons`` package's recipes (Montage, Epigenomics, Cycles,
Blast, Seismology, SRASearch, 1000Genome), generated with a fixed seed at several hundred
tasks each and turned into plain DAGs ``{task_id: (parents, seconds)}`` in topological
order. Each recipe's task runtimes are scaled so its total work is ``--work-per-core``
seconds per core (4 s x 2 cores by default). A task burns CPU for its seconds (a busy loop
on ``time.thread_time``, so a task on a busy machine still does its full share of work),
takes its parents' outputs as arguments and returns a small int (its depth), so every side
must give the same sum of the sinks' values.

Sides, all in one process and one run, their order alternating per repetition:

- ``ray``:     raw Ray, one ``.remote()`` per task (``num_cpus=1``) in topological order,
  parents' ObjectRefs passed eagerly, ``ray.get`` on the sinks;
- ``dask``:    Dask distributed, ``LocalCluster(n_workers=cores, threads_per_worker=1,
  processes=True)``, one ``client.submit`` per task with its parents' futures;
- ``rayflow``: an ``@rf.workflow`` calling a ``@rf.component(num_cpus=1, fuse=False)`` once
  per task (``.options(id=task_id)``, the parents' nodes as arguments), run with
  ``rf.submit(...).result()`` on a SQLite run store;
- ``rayflow_fused``: the same with ``fuse=True``: after ``TRAIN_RUNS`` runs per recipe
  (reported, the first with no history) the resource model knows the tasks' durations and
  fusion packs them into calls by those, spread over the cores.

Reported per recipe and side: the median makespan, the lower bound
``max(critical path seconds, total work / cores)`` and makespan / lower bound. The target
(reported, not asserted): rayflow within 1.10x of the lower bound on every recipe.
Writes ``benchmarks/results/dagshapes.json`` (``dagshapes-quick.json`` with ``--quick``).

    python benchmarks/dagshapes.py                # 7 recipes, 300 tasks, 3 repetitions
    python benchmarks/dagshapes.py --quick        # smoke run: 3 recipes, small, 1 repetition

``recipe_dags`` and the runners ``run_ray``, ``run_dask`` and ``run_rayflow`` are reused
by ``benchmarks/peers.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import logging
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
from reporting import write_report

import rayflow as rf

RESULTS = Path(__file__).resolve().parent / "results" / "dagshapes.json"
QUICK_RESULTS = RESULTS.with_name("dagshapes-quick.json")   # a smoke run never replaces the real figures
TARGET = 1.10              # rayflow's makespan / lower bound, on every recipe (reported, not asserted)
SIDES = ("ray", "dask", "rayflow", "rayflow_fused")
TRAIN_RUNS = 2             # rayflow_fused: runs per recipe before the timed ones (the model learns the durations)
SETTLE_S = 0.3             # quiet time before each timed run

# our name -> the wfcommons recipe class
RECIPES = {
    "montage": "MontageRecipe",
    "epigenomics": "EpigenomicsRecipe",
    "cycles": "CyclesRecipe",
    "blast": "BlastRecipe",
    "seismology": "SeismologyRecipe",
    "srasearch": "SrasearchRecipe",
    "1000genome": "GenomeRecipe",
}

Dag = dict[str, tuple[tuple[str, ...], float]]


# -- the shapes --------------------------------------------------------------------------------


def _generate(recipe: str, n_tasks: int, seed: int) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """One wfcommons workflow: task id -> runtime (its recipe's seconds), and the edges."""
    from wfcommons import WorkflowGenerator
    from wfcommons.wfchef import recipes

    cls = getattr(recipes, RECIPES[recipe])
    random.seed(seed)          # wfcommons draws from random (the graph) and numpy (the runtimes)
    np.random.seed(seed)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.getLogger("wfcommons").setLevel(logging.ERROR)
        workflow = WorkflowGenerator(cls.from_num_tasks(n_tasks)).build_workflow()
    runtimes = {node: float(workflow.nodes[node]["task"].runtime) for node in workflow.nodes}
    return runtimes, list(workflow.edges)


def _topological(runtimes: dict[str, float], edges: list[tuple[str, str]]) -> Dag:
    """Kahn's algorithm, ties broken by the generator's order: a deterministic topological order."""
    parents: dict[str, list[str]] = {t: [] for t in runtimes}
    children: dict[str, list[str]] = {t: [] for t in runtimes}
    for src, dst in edges:
        parents[dst].append(src)
        children[src].append(dst)
    position = {t: i for i, t in enumerate(runtimes)}
    missing = {t: len(p) for t, p in parents.items()}
    ready = [t for t in runtimes if missing[t] == 0]
    order: list[str] = []
    while ready:
        ready.sort(key=position.__getitem__, reverse=True)
        task = ready.pop()
        order.append(task)
        for child in children[task]:
            missing[child] -= 1
            if missing[child] == 0:
                ready.append(child)
    if len(order) != len(runtimes):
        raise ValueError("the generated workflow has a cycle")
    return {t: (tuple(sorted(parents[t], key=position.__getitem__)), runtimes[t]) for t in order}


def recipe_dags(recipes: list[str] | None = None, n_tasks: int = 300, seed: int = 0,
                work_per_core_s: float = 4.0, cores: int = 2) -> dict[str, Dag]:
    """Per recipe (default: all of ``RECIPES``), a DAG ``{task_id: (parents, seconds)}`` in
    topological order, its runtimes scaled so the total work is ``work_per_core_s * cores``."""
    out: dict[str, Dag] = {}
    for recipe in recipes or list(RECIPES):
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}: expected one of {', '.join(RECIPES)}")
        try:
            runtimes, edges = _generate(recipe, n_tasks, seed)
        except ValueError as exc:   # wfcommons: fewer tasks than the recipe's smallest base graph
            raise ValueError(f"{recipe}: {exc}") from None
        scale = work_per_core_s * cores / sum(runtimes.values())
        out[recipe] = _topological({t: s * scale for t, s in runtimes.items()}, edges)
    return out


def sinks(dag: Dag) -> list[str]:
    used = {p for parents, _ in dag.values() for p in parents}
    return [t for t in dag if t not in used]


def critical_path_s(dag: Dag) -> float:
    finish: dict[str, float] = {}
    for task, (parents, seconds) in dag.items():
        finish[task] = seconds + max((finish[p] for p in parents), default=0.0)
    return max(finish.values())


def levels(dag: Dag) -> int:
    depth: dict[str, int] = {}
    for task, (parents, _) in dag.items():
        depth[task] = 1 + max((depth[p] for p in parents), default=0)
    return max(depth.values())


def describe(dag: Dag, cores: int) -> dict:
    total = sum(s for _, s in dag.values())
    cp = critical_path_s(dag)
    return {"tasks": len(dag), "edges": sum(len(p) for p, _ in dag.values()), "levels": levels(dag),
            "sinks": len(sinks(dag)), "total_work_s": round(total, 4), "critical_path_s": round(cp, 4),
            "lower_bound_s": round(max(cp, total / cores), 4),
            "shortest_task_ms": round(1e3 * min(s for _, s in dag.values()), 4),
            "longest_task_ms": round(1e3 * max(s for _, s in dag.values()), 2)}


def expected_value(dag: Dag) -> int:
    """The sum of the sinks' depths: what every side must return."""
    depth: dict[str, int] = {}
    for task, (parents, _) in dag.items():
        depth[task] = 1 + max((depth[p] for p in parents), default=0)
    return sum(depth[s] for s in sinks(dag))


# -- the work: one function on every side ---------------------------------------------------------


def burn(seconds: float) -> None:
    """Busy CPU for ``seconds`` of this thread's CPU time (not a sleep)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def task_fn(seconds: float, *parents: int) -> int:
    burn(seconds)
    return 1 + max(parents, default=0)


r_task = ray.remote(num_cpus=1)(task_fn)
task_c = rf.component(task_fn, num_cpus=1, fuse=False)
task_f = rf.component(task_fn, num_cpus=1, fuse=True)   # rayflow_fused: packed by measured durations

_DAGS: dict[str, Dag] = {}   # the workflow traces the DAG registered under its input's key


@rf.workflow(name="bench_dagshape")
def dag_wf(key: str, fused: bool = False):
    dag = _DAGS[key]
    component = task_f if fused else task_c
    nodes: dict[str, object] = {}
    for task, (parents, seconds) in dag.items():
        nodes[task] = component.options(id=task)(seconds, *[nodes[p] for p in parents])
    return [nodes[s] for s in sinks(dag)]


def register(key: str, dag: Dag) -> str:
    _DAGS[key] = dag
    return key


# -- the sides: each runs one DAG and returns (seconds, value) ---------------------------------------


@dataclass
class Sample:
    seconds: float
    value: int


def run_ray(dag: Dag) -> Sample:
    t0 = time.perf_counter()
    refs: dict[str, ray.ObjectRef] = {}
    for task, (parents, seconds) in dag.items():
        refs[task] = r_task.remote(seconds, *[refs[p] for p in parents])
    value = sum(ray.get([refs[s] for s in sinks(dag)]))
    seconds = time.perf_counter() - t0
    del refs
    return Sample(seconds, value)


def run_dask(client, dag: Dag) -> Sample:
    t0 = time.perf_counter()
    futures: dict[str, object] = {}
    for task, (parents, seconds) in dag.items():
        futures[task] = client.submit(task_fn, seconds, *[futures[p] for p in parents], pure=False)
    value = sum(client.gather([futures[s] for s in sinks(dag)]))
    seconds = time.perf_counter() - t0
    del futures
    return Sample(seconds, value)


def run_rayflow(dag: Dag, key: str | None = None, fused: bool = False) -> Sample:
    """One rayflow run of ``dag`` (rf.init must have been called). ``key`` names the DAG for
    the workflow's input (default: one per DAG object); ``fused``: its components say
    ``fuse=True``."""
    key = register(key or f"dag-{id(dag)}", dag)
    t0 = time.perf_counter()
    handle = rf.submit(dag_wf, key=key, fused=fused)
    value = handle.result()
    seconds = time.perf_counter() - t0
    status = handle.status()
    if str(getattr(status, "value", status)).upper().split(".")[-1] != "SUCCEEDED":
        sys.exit(f"rayflow run {handle.run_id} ended {status}")
    return Sample(seconds, sum(value.values()) if isinstance(value, dict) else sum(value))


@contextlib.contextmanager
def dask_client(cores: int) -> Iterator[object]:
    """A Dask LocalCluster of ``cores`` single-threaded worker processes, closed at the end."""
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    cluster = LocalCluster(n_workers=cores, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def settled(fn: Callable[[], Sample]) -> Sample:
    gc.collect()
    time.sleep(SETTLE_S)
    return fn()


# -- the run --------------------------------------------------------------------------------------


def run(dags: dict[str, Dag], reps: int, cores: int) -> tuple[dict[str, dict[str, list[float]]], dict]:
    """``reps`` interleaved rounds per recipe; per recipe and side the makespans, and per
    recipe the fused side's training runs (the first with no history)."""
    out: dict[str, dict[str, list[float]]] = {}
    training: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="rayflow-dagshapes-") as tmp, dask_client(cores) as client:
        rf.init(store=f"sqlite:///{tmp}/x.db", checkpoints=f"{tmp}/checkpoints")
        runners: dict[str, Callable[[Dag, str], Sample]] = {
            "ray": lambda dag, key: run_ray(dag),
            "dask": lambda dag, key: run_dask(client, dag),
            "rayflow": run_rayflow,
            "rayflow_fused": lambda dag, key: run_rayflow(dag, key, fused=True),
        }
        first = next(iter(dags.values()))
        warm = {t: (parents, seconds / 100) for t, (parents, seconds) in first.items()}
        for side in SIDES:     # start workers, export functions, open the store
            for _ in range(2):
                runners[side](warm, "warm-up")
        for name, dag in dags.items():
            want = expected_value(dag)
            makespans: dict[str, list[float]] = {side: [] for side in SIDES}
            bound = describe(dag, cores)["lower_bound_s"]
            training[name] = [settled(lambda dag=dag, name=name: runners["rayflow_fused"](dag, name)).seconds
                              for _ in range(TRAIN_RUNS)]
            print(f"{name:12} rayflow_fused training runs: " + ", ".join(
                f"{t:.2f} s ({t / bound:.2f}x)" for t in training[name]), flush=True)
            for rep in range(reps):
                order = SIDES if rep % 2 == 0 else tuple(reversed(SIDES))
                line = []
                for side in order:
                    sample = settled(lambda side=side, dag=dag, name=name: runners[side](dag, name))
                    if sample.value != want:
                        sys.exit(f"RESULT MISMATCH in {name} on {side}: {sample.value} != {want}")
                    makespans[side].append(sample.seconds)
                    line.append(f"{side} {sample.seconds:6.2f} s ({sample.seconds / bound:4.2f}x)")
                print(f"{name:12} rep {rep + 1}/{reps}  " + "  ".join(line), flush=True)
            out[name] = makespans
        rf.init(store="memory://", checkpoints="off")   # release the temporary database before it is removed
    return out, training


def summarize(dag: Dag, makespans: dict[str, list[float]], cores: int, training: list[float]) -> dict:
    info = describe(dag, cores)
    bound = info["lower_bound_s"]
    med = {side: statistics.median(v) for side, v in makespans.items()}
    ratio = {side: m / bound for side, m in med.items()}
    return {
        **info,
        "makespans_s": {side: [round(x, 3) for x in v] for side, v in makespans.items()},
        "median_makespan_s": {side: round(m, 3) for side, m in med.items()},
        "over_lower_bound": {side: round(r, 3) for side, r in ratio.items()},
        "over_raw_ray": {side: round(m / med["ray"], 3) for side, m in med.items()},
        "target_rayflow_over_lower_bound": TARGET,
        "meets_target": ratio["rayflow"] <= TARGET,
        "meets_target_fused": ratio["rayflow_fused"] <= TARGET,
        "rayflow_fused_training_s": [round(x, 3) for x in training],   # the first: no history yet
        "rayflow_fused_first_over_lower_bound": round(training[0] / bound, 3) if training else None,
    }


def versions() -> dict:
    from importlib.metadata import version

    return {pkg: version(pkg) for pkg in ("wfcommons", "dask", "distributed", "rayflow")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, of {', '.join(RECIPES)}")
    p.add_argument("--tasks", type=int, default=300, help="tasks per recipe (wfcommons' num_tasks)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-per-core", type=float, default=4.0, help="seconds of total work per core")
    p.add_argument("--cores", type=int, default=2, help="Ray CPUs and Dask workers")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="smoke run: 3 recipes, 120 tasks, 1 s per core, 1 rep")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.recipes, args.tasks, args.work_per_core, args.reps = "montage,epigenomics,cycles", 120, 1.0, 1
    out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    names = [n for n in args.recipes.split(",") if n]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        p.error(f"unknown recipe(s) {', '.join(unknown)}: expected some of {', '.join(RECIPES)}")
    load_start = [round(x, 2) for x in os.getloadavg()]
    dags = recipe_dags(names, args.tasks, args.seed, args.work_per_core, args.cores)
    for name, dag in dags.items():
        info = describe(dag, args.cores)
        print(f"{name:12} {info['tasks']:4} tasks {info['edges']:5} edges {info['levels']:2} levels  "
              f"work {info['total_work_s']:.2f} s  critical path {info['critical_path_s']:.3f} s  "
              f"lower bound {info['lower_bound_s']:.2f} s", flush=True)
    ray.init(address="local", num_cpus=args.cores, include_dashboard=False, logging_level="WARNING")
    try:
        runs, training = run(dags, args.reps, args.cores)
    finally:
        ray.shutdown()
    results = {name: summarize(dags[name], m, args.cores, training[name]) for name, m in runs.items()}
    print(f"\nmedians of {args.reps}: makespan (s) and makespan / lower bound "
          f"(target rayflow <= {TARGET:.2f}x on every recipe)")
    print(f"{'recipe':12} {'tasks':>5} {'bound':>6}  " + "  ".join(f"{s:>16}" for s in SIDES) + "  target")
    for name, r in results.items():
        cells = [f"{r['median_makespan_s'][s]:6.2f} s {r['over_lower_bound'][s]:5.2f}x" for s in SIDES]
        print(f"{name:12} {r['tasks']:5} {r['lower_bound_s']:6.2f}  " + "  ".join(f"{c:>16}" for c in cells)
              + "  " + ("met" if r["meets_target"] else "NOT met") + " / fused "
              + ("met" if r["meets_target_fused"] else "NOT met")
              + f" (fused first run {r['rayflow_fused_first_over_lower_bound']:.2f}x)")
    write_report(out, {
        "benchmark": "dagshapes", "quick": args.quick, "seed": args.seed, "n_tasks": args.tasks,
        "work_per_core_s": args.work_per_core, "cores": args.cores, "reps": args.reps, "sides": list(SIDES),
        "work": "busy loop on time.thread_time for each task's seconds; parents' outputs as arguments",
        "recipes": results, "meets_target_everywhere": all(r["meets_target"] for r in results.values()),
        "meets_target_fused_everywhere": all(r["meets_target_fused"] for r in results.values()),
        "versions": versions(), "load_avg_at_start": load_start,
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
