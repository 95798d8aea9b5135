"""rayflow against its peers: raw Ray, Dask distributed and Prefect 3, on the same shapes, in one run.

Sides (all in one process; their order alternates per repetition):

- ``ray``:         raw Ray tasks (``num_cpus=1``), ObjectRefs passed eagerly, ``ray.get`` on the sinks;
- ``dask``:        Dask distributed, ``LocalCluster(n_workers=cores, threads_per_worker=1, processes=True)``,
  ``client.submit`` with the parents' futures;
- ``prefect``:     a Prefect 3 flow with its default task runner (``ThreadPoolTaskRunner``),
  ``task.submit`` with the parents' futures;
- ``prefect_ray``: the same flow on prefect-ray's ``RayTaskRunner`` (the same Ray session);
- ``rayflow``:     an ``@rf.workflow`` of ``@rf.component(num_cpus=1, fuse=False)`` calls, on a
  SQLite run store; the Arrow pipeline is dataplane.py's rayflow stream.

Shapes (each task returns its depth, so every side must give the same sum over the sinks):

- ``fan``:      ``--fan`` no-op tasks, then one task taking all their outputs;
- ``chain``:    ``--chain`` no-op tasks, each taking the previous one's output;
- ``diamond``:  a ``--grid`` x ``--grid`` lattice, each node reading its upper and left neighbours;
- ``layered``:  ``--layers`` x ``--width`` random layered DAG (fixed seed), each node reading 1-3
  random nodes of the layer above, the last layer fanned into one task;
- ``wf-<recipe>``: WfCommons shapes from ``dagshapes.recipe_dags`` (CPU-bound tasks, busy loop
  on ``time.thread_time``, total work ``--work-per-core`` s per core);
- ``arrow``:    dataplane.py's three pyarrow.compute stages over ``--gib`` GiB of Parquet; one
  task per batch and stage (read+parse, transform, aggregate) on the task-based sides, the
  rayflow stream of three batch components on rayflow.

Prefect runs against a local API: a temporary Prefect server (Prefect's own ephemeral
``SubprocessASGIServer``) started once by this script on a free loopback port, with
``PREFECT_HOME`` in a temporary directory, and ``PREFECT_API_URL`` pointing at it before Ray
starts (so Ray workers running prefect-ray tasks use the same server instead of each starting
its own). If Prefect or prefect-ray cannot be imported or started, their sides are skipped and
the JSON says why.

Reported: the median makespan and tasks/s per side and shape, and each side's makespan over
raw Ray's. prefect-ray costs about 0.3 s a task here, so its side runs ``--prefect-ray-reps``
times (default 1) while the others run ``--reps`` (default 3), to keep a full run near 10 minutes. Writes ``benchmarks/results/peers.json`` (``peers-quick.json`` with ``--quick``).

    python benchmarks/peers.py                # full run (19 min on the shared 2 cores, prefect_ray ~11 of it)
    python benchmarks/peers.py --quick        # smoke run (a few minutes)
    python benchmarks/peers.py --chart-only   # redraw docs/benchmarks-peers.png from results/peers.json
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import random
import socket
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import dagshapes
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
from dagshapes import (
    Dag,
    Sample,
    dask_client,
    expected_value,
    run_dask,
    run_ray,
    run_rayflow,
    sinks,
)
from reporting import write_report

import rayflow as rf

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "peers.json"
QUICK_RESULTS = RESULTS.with_name("peers-quick.json")
CHART = HERE.parent / "docs" / "benchmarks-peers.png"
ALL_SIDES = ("ray", "dask", "prefect", "prefect_ray", "rayflow")
SETTLE_S = 0.3


# -- the shapes, as dagshapes' plain DAGs --------------------------------------------------------


def fan_dag(n: int) -> Dag:
    dag: Dag = {f"leaf_{i}": ((), 0.0) for i in range(n)}
    dag["join"] = (tuple(dag), 0.0)
    return dag


def chain_dag(n: int) -> Dag:
    return {f"step_{i}": ((f"step_{i - 1}",) if i else (), 0.0) for i in range(n)}


def diamond_dag(k: int) -> Dag:
    """A k x k lattice: node (r, c) reads (r-1, c) and (r, c-1); one source, one sink."""
    dag: Dag = {}
    for r in range(k):
        for c in range(k):
            parents = tuple(f"d_{a}_{b}" for a, b in ((r - 1, c), (r, c - 1)) if a >= 0 and b >= 0)
            dag[f"d_{r}_{c}"] = (parents, 0.0)
    return dag


def layered_dag(layers: int, width: int, seed: int = 0) -> Dag:
    rng = random.Random(seed)
    dag: Dag = {}
    for layer in range(layers):
        for i in range(width):
            above = [f"l{layer - 1}_{j}" for j in range(width)] if layer else []
            parents = tuple(sorted(rng.sample(above, rng.randint(1, 3)))) if above else ()
            dag[f"l{layer}_{i}"] = (parents, 0.0)
    dag["sink"] = (tuple(f"l{layers - 1}_{i}" for i in range(width)), 0.0)
    return dag


# -- Prefect: a local API, and the flows -------------------------------------------------------------


class PrefectSetup:
    """A temporary Prefect server for this run, set up before Ray starts; ``error`` says why not."""

    def __init__(self) -> None:
        self.error: str | None = None
        self.server = None
        self.home = tempfile.mkdtemp(prefix="rayflow-peers-prefect-")
        self.versions: dict[str, str] = {}

    def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        os.environ.update({
            "PREFECT_HOME": self.home,
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_TO_API_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "CRITICAL",
            "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
        })
        try:
            from importlib.metadata import version

            from prefect.server.api.server import SubprocessASGIServer

            self.versions = {p: version(p) for p in ("prefect", "prefect-ray")}
            t0 = time.perf_counter()
            self.server = SubprocessASGIServer(port=port)
            self.server.start(timeout=120)
            print(f"prefect {self.versions['prefect']}: local API at {self.server.api_url} "
                  f"(started in {time.perf_counter() - t0:.1f} s)", flush=True)
        except Exception as exc:   # report, never fake: the Prefect sides are skipped
            self.error = f"{type(exc).__name__}: {exc}"
            print(f"Prefect unavailable, its sides are skipped: {self.error}", flush=True)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


_FLOWS: dict[str, Callable] = {}
_DAGS: dict[str, Dag] = {}


def _prefect_dag_flow(key: str) -> int:
    from prefect.cache_policies import NO_CACHE
    from prefect.tasks import task

    p_task = _FLOWS.setdefault("task", task(dagshapes.task_fn, name="t", cache_policy=NO_CACHE, persist_result=False))
    dag = _DAGS[key]
    futures: dict[str, object] = {}
    for name, (parents, seconds) in dag.items():
        futures[name] = p_task.submit(seconds, *[futures[p] for p in parents])
    return sum(futures[s].result() for s in sinks(dag))


def prefect_flows() -> dict[str, Callable]:
    """The DAG flow and the Arrow flow on each Prefect task runner."""
    from prefect import flow
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_ray import RayTaskRunner

    runners = {"prefect": ThreadPoolTaskRunner, "prefect_ray": RayTaskRunner}
    out = {}
    for side, runner in runners.items():
        out[f"{side}:dag"] = flow(_prefect_dag_flow, name=f"peers-dag-{side}", task_runner=runner(),
                                  validate_parameters=False, persist_result=False)
        out[f"{side}:arrow"] = flow(_prefect_arrow_flow, name=f"peers-arrow-{side}", task_runner=runner(),
                                    validate_parameters=False, persist_result=False)
    return out


def run_prefect(flows: dict[str, Callable], side: str, dag: Dag, key: str) -> Sample:
    _DAGS[key] = dag
    t0 = time.perf_counter()
    value = flows[f"{side}:dag"](key)
    return Sample(time.perf_counter() - t0, value)


# -- the Arrow pipeline: dataplane.py's data and stages ------------------------------------------------


def _dataplane():
    import dataplane

    return dataplane


def generate_arrow(directory: Path, gib: float, batch_size: int) -> list[tuple[str, int]]:
    """dataplane.py's data (8 float64 columns, the same generator), written with one row group
    per batch so each task-based side can read batch i alone; returns (file, row group) pairs."""
    dp = _dataplane()
    rows = int(gib * (1 << 30) / (8 * dp.COLUMNS))
    rng = np.random.default_rng(7)
    written, i = 0, 0
    while written < rows:
        n = min(dp.ROWS_PER_FILE, rows - written)
        table = pa.table({f"c{c}": rng.standard_normal(n) for c in range(dp.COLUMNS)})
        pq.write_table(table, directory / f"part-{i:04d}.parquet", compression="none", row_group_size=batch_size)
        written += n
        i += 1
    parts = []
    for f in sorted(directory.glob("*.parquet")):
        parts += [(str(f), g) for g in range(pq.ParquetFile(f).num_row_groups)]
    return parts


def read_parse(path: str, group: int) -> pa.Table:
    return _dataplane().parse_fn(pq.ParquetFile(path, memory_map=True).read_row_group(group))


def transform(t: pa.Table) -> pa.Table:
    return _dataplane().transform_fn(t)


def aggregate(t: pa.Table) -> pa.Table:
    return _dataplane().aggregate_fn(t)


def _total(tables: list[pa.Table]) -> tuple[float, int]:
    t = pa.concat_tables(tables)
    return round(pc.sum(t["sum"]).as_py(), 6), pc.sum(t["rows"]).as_py()


r_read_parse = ray.remote(num_cpus=1)(read_parse)
r_transform = ray.remote(num_cpus=1)(transform)
r_aggregate = ray.remote(num_cpus=1)(aggregate)


def arrow_ray(parts: list[tuple[str, int]]) -> Sample:
    t0 = time.perf_counter()
    refs = [r_aggregate.remote(r_transform.remote(r_read_parse.remote(f, g))) for f, g in parts]
    value = _total(ray.get(refs))
    return Sample(time.perf_counter() - t0, value)


def arrow_dask(client, parts: list[tuple[str, int]]) -> Sample:
    t0 = time.perf_counter()
    futures = [client.submit(aggregate, client.submit(transform, client.submit(read_parse, f, g, pure=False),
                                                      pure=False), pure=False) for f, g in parts]
    value = _total(client.gather(futures))
    return Sample(time.perf_counter() - t0, value)


def _prefect_arrow_flow(parts: list[tuple[str, int]]) -> tuple[float, int]:
    from prefect.cache_policies import NO_CACHE
    from prefect.tasks import task

    opts = {"cache_policy": NO_CACHE, "persist_result": False}
    t_read = _FLOWS.setdefault("read", task(read_parse, name="read_parse", **opts))
    t_transform = _FLOWS.setdefault("transform", task(transform, name="transform", **opts))
    t_aggregate = _FLOWS.setdefault("aggregate", task(aggregate, name="aggregate", **opts))
    futures = [t_aggregate.submit(t_transform.submit(t_read.submit(f, g))) for f, g in parts]
    return _total([f.result() for f in futures])


def arrow_prefect(flows: dict[str, Callable], side: str, parts: list[tuple[str, int]]) -> Sample:
    t0 = time.perf_counter()
    value = flows[f"{side}:arrow"](parts)
    return Sample(time.perf_counter() - t0, value)


def arrow_rayflow(path: str, batch_size: int) -> Sample:
    dp = _dataplane()
    t0 = time.perf_counter()
    out = rf.run(dp.pipeline, path=path, batch_size=batch_size, buffer=4, progress=False)
    value = (round(pc.sum(out["sum"]).as_py(), 6), pc.sum(out["rows"]).as_py())
    return Sample(time.perf_counter() - t0, value)


# -- the run ---------------------------------------------------------------------------------------------


def same(a: object, b: object) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):   # the Arrow pipeline: (sum, rows)
        return a[1] == b[1] and abs(a[0] - b[0]) <= 1e-6 * max(1.0, abs(b[0]))
    return a == b


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--prefect-ray-reps", type=int, default=1,
                   help="repetitions of the prefect_ray side (about 0.3 s a task here: 1 keeps the run near 10 min)")
    p.add_argument("--fan", type=int, default=300)
    p.add_argument("--chain", type=int, default=100)
    p.add_argument("--grid", type=int, default=10)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--width", type=int, default=40)
    p.add_argument("--recipes", default="montage,epigenomics", help="WfCommons recipes (dagshapes.py); empty: none")
    p.add_argument("--recipe-tasks", type=int, default=110)
    p.add_argument("--work-per-core", type=float, default=1.0, help="seconds of work per core in the recipes")
    p.add_argument("--gib", type=float, default=0.1, help="Arrow pipeline size; 0 skips it")
    p.add_argument("--batch-size", type=int, default=1 << 17)
    p.add_argument("--sides", default=",".join(ALL_SIDES))
    p.add_argument("--quick", action="store_true", help="smoke run: small shapes, 1 repetition")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--chart", type=Path, default=None, help=f"write the chart here (default {CHART} on a full run)")
    p.add_argument("--chart-only", action="store_true", help="only redraw the chart from --out (or results/peers.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.fan, args.chain, args.grid, args.layers, args.width = 1, 50, 20, 4, 3, 10
        args.recipes, args.recipe_tasks, args.work_per_core, args.gib = "montage", 70, 0.5, 0.02
    out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    chart = args.chart or (None if args.quick else CHART)
    if args.chart_only:
        draw_chart(json.loads(out.read_text()), args.chart or CHART)
        return 0
    sides = [s for s in args.sides.split(",") if s]
    bad = [s for s in sides if s not in ALL_SIDES]
    if bad:
        p.error(f"unknown side(s) {', '.join(bad)}: expected some of {', '.join(ALL_SIDES)}")

    load_start = [round(x, 2) for x in os.getloadavg()]
    shapes: dict[str, Dag] = {
        "fan": fan_dag(args.fan), "chain": chain_dag(args.chain), "diamond": diamond_dag(args.grid),
        "layered": layered_dag(args.layers, args.width),
    }
    recipes = [r for r in args.recipes.split(",") if r]
    for name, dag in dagshapes.recipe_dags(recipes, args.recipe_tasks, 0, args.work_per_core, args.cores).items():
        shapes[f"wf-{name}"] = dag
    labels = {"fan": f"fan-out {args.fan} + fan-in", "chain": f"chain of {args.chain}",
              "diamond": f"diamond lattice {args.grid}x{args.grid}",
              "layered": f"random layered {args.layers}x{args.width} (+ sink)"}
    labels |= {f"wf-{r}": f"WfCommons {r}, {len(shapes[f'wf-{r}'])} tasks, {args.work_per_core:g} s work/core"
               for r in recipes}

    prefect = PrefectSetup()
    if any(s.startswith("prefect") for s in sides):
        prefect.start()        # before ray.init: Ray's workers inherit PREFECT_API_URL
    skipped: dict[str, str] = {}
    if prefect.error:
        skipped |= {s: prefect.error for s in sides if s.startswith("prefect")}
        sides = [s for s in sides if not s.startswith("prefect")]
    ray.init(address="local", num_cpus=args.cores, include_dashboard=False, logging_level="WARNING")
    results: dict[str, dict] = {}
    failures: dict[str, str] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="rayflow-peers-") as tmp, dask_client(args.cores) as client:
            rf.init(store=f"sqlite:///{tmp}/x.db", checkpoints=f"{tmp}/checkpoints")
            flows = prefect_flows() if any(s.startswith("prefect") for s in sides) else {}
            runners: dict[str, Callable[[Dag, str], Sample]] = {
                "ray": lambda dag, key: run_ray(dag),
                "dask": lambda dag, key: run_dask(client, dag),
                "prefect": lambda dag, key: run_prefect(flows, "prefect", dag, key),
                "prefect_ray": lambda dag, key: run_prefect(flows, "prefect_ray", dag, key),
                "rayflow": run_rayflow,
            }
            cases: dict[str, tuple[int, object, dict[str, Callable[[], Sample]]]] = {}
            for name, dag in shapes.items():
                cases[name] = (len(dag), expected_value(dag),
                               {s: (lambda s=s, dag=dag, name=name: runners[s](dag, name)) for s in sides})
            if args.gib > 0:
                data = Path(tmp) / "data"
                data.mkdir()
                parts = generate_arrow(data, args.gib, args.batch_size)
                rows = sum(pq.ParquetFile(f).metadata.row_group(g).num_rows for f, g in parts)
                labels["arrow"] = (f"Arrow 3-stage pipeline, {args.gib:g} GiB, {rows:,} rows, "
                                   f"{len(parts)} batches")
                arrow = {"ray": lambda: arrow_ray(parts), "dask": lambda: arrow_dask(client, parts),
                         "prefect": lambda: arrow_prefect(flows, "prefect", parts),
                         "prefect_ray": lambda: arrow_prefect(flows, "prefect_ray", parts),
                         "rayflow": lambda: arrow_rayflow(str(data), args.batch_size)}
                cases["arrow"] = (3 * len(parts), None, {s: arrow[s] for s in sides})
            else:
                arrow = {}
            warm_up(runners, arrow, sides, failures)
            reps = {s: args.prefect_ray_reps if s == "prefect_ray" else args.reps for s in sides}
            for name, (tasks, want, fns) in cases.items():
                results[name] = measure(name, tasks, want, fns, reps, failures)
            rf.init(store="memory://", checkpoints="off")   # release the temporary database
    finally:
        ray.shutdown()
        prefect.stop()

    for name, r in results.items():
        r["label"] = labels[name]
    print_table(results, sides)
    report = {
        "benchmark": "peers", "quick": args.quick, "reps": args.reps, "prefect_ray_reps": args.prefect_ray_reps,
        "cores": args.cores, "sides": sides,
        "skipped_sides": skipped, "failures": failures,
        "settings": {k: getattr(args, k) for k in ("fan", "chain", "grid", "layers", "width", "recipes",
                                                    "recipe_tasks", "work_per_core", "gib", "batch_size")},
        "shapes": results, "versions": {**dagshapes.versions(), **prefect.versions},
        "prefect_api": "temporary local server (prefect.server.api.server.SubprocessASGIServer), "
                       "PREFECT_HOME in a temporary directory",
        "load_avg_at_start": load_start, "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    write_report(out, report)
    if chart is not None:
        draw_chart(json.loads(out.read_text()), chart)
    return 0


def warm_up(runners: dict[str, Callable[[Dag, str], Sample]], arrow: dict[str, Callable[[], Sample]],
            sides: list[str], failures: dict[str, str]) -> None:
    """One small run per side (and one Arrow run): workers started, functions exported, flows registered."""
    small = fan_dag(20)
    for side in sides:
        for what, fn in (("dag", lambda side=side: runners[side](small, "warm-up")), ("arrow", arrow.get(side))):
            if fn is None:
                continue
            try:
                fn()
            except Exception as exc:
                failures[f"warm-up {what} {side}"] = f"{type(exc).__name__}: {exc}"
                print(f"warm-up {what} on {side} failed: {failures[f'warm-up {what} {side}']}", flush=True)


def measure(name: str, tasks: int, want: object, fns: dict[str, Callable[[], Sample]], reps: dict[str, int],
            failures: dict[str, str]) -> dict:
    """Interleaved rounds, order alternating; a side with fewer ``reps`` sits out the later rounds."""
    sides = list(fns)
    makespans: dict[str, list[float]] = {s: [] for s in sides}
    values: dict[str, object] = {}
    rounds = max(reps.values())
    for rep in range(rounds):
        order = sides if rep % 2 == 0 else list(reversed(sides))
        line = []
        for side in order:
            if f"{name} {side}" in failures or rep >= reps[side]:
                continue
            gc.collect()
            time.sleep(SETTLE_S)
            try:
                sample = fns[side]()
            except Exception as exc:   # a peer that fails on a shape is reported, not hidden
                failures[f"{name} {side}"] = f"{type(exc).__name__}: {exc}"
                logging.getLogger(__name__).debug(traceback.format_exc())
                line.append(f"{side} FAILED")
                continue
            values.setdefault(side, sample.value)
            if want is not None and sample.value != want:
                sys.exit(f"RESULT MISMATCH in {name} on {side}: {sample.value} != {want}")
            makespans[side].append(sample.seconds)
            line.append(f"{side} {sample.seconds:6.2f} s")
        print(f"{name:16} rep {rep + 1}/{rounds}  " + "  ".join(line), flush=True)
    if want is None and "ray" in values:   # the Arrow pipeline: every side agrees with raw Ray
        for side, v in values.items():
            if not same(v, values["ray"]):
                sys.exit(f"RESULT MISMATCH in {name} on {side}: {v} != raw Ray's {values['ray']}")
    med = {s: statistics.median(v) for s, v in makespans.items() if v}
    out = {
        "tasks": tasks,
        "makespans_s": {s: [round(x, 3) for x in v] for s, v in makespans.items() if v},
        "median_makespan_s": {s: round(m, 3) for s, m in med.items()},
        "tasks_per_s": {s: round(tasks / m, 1) for s, m in med.items()},
    }
    if "ray" in med:
        out["makespan_over_raw_ray"] = {s: round(m / med["ray"], 3) for s, m in med.items()}
    if want is not None:
        out["expected_value"] = want
    return out


def print_table(results: dict[str, dict], sides: list[str]) -> None:
    print("\nmedian makespan (s), and in brackets over raw Ray's")
    print(f"{'shape':16} {'tasks':>5}  " + "  ".join(f"{s:>17}" for s in sides))
    for name, r in results.items():
        cells = []
        for s in sides:
            m = r["median_makespan_s"].get(s)
            ratio = r.get("makespan_over_raw_ray", {}).get(s)
            cells.append("failed" if m is None else f"{m:7.2f} ({ratio:5.2f}x)" if ratio else f"{m:7.2f}")
        print(f"{name:16} {r['tasks']:5}  " + "  ".join(f"{c:>17}" for c in cells))


def draw_chart(report: dict, path: Path) -> None:
    """Makespan over raw Ray's, per shape and side (log scale), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = list(report["shapes"])
    sides = [s for s in report["sides"] if s != "ray"]
    fig, ax = plt.subplots(figsize=(11, 4.8))
    width = 0.8 / max(1, len(sides))
    for i, side in enumerate(sides):
        ys = [report["shapes"][n].get("makespan_over_raw_ray", {}).get(side, float("nan")) for n in shapes]
        xs = [j + (i - (len(sides) - 1) / 2) * width for j in range(len(shapes))]
        ax.bar(xs, ys, width, label=side)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="raw Ray = 1")
    ax.set_yscale("log")
    ax.set_xticks(range(len(shapes)))
    ax.set_xticklabels(shapes, rotation=15)
    ax.set_ylabel("makespan / raw Ray's (log; lower is better)")
    m = report["machine"]
    pr = f", prefect_ray {report['prefect_ray_reps']}" if "prefect_ray" in sides else ""
    ax.set_title(f"rayflow and peers, makespan over raw Ray's, medians of {report['reps']}{pr} "
                 f"({m['nproc']} cores, Ray {m['ray']}, {m['date'][:10]})", fontsize=10)
    ax.legend(ncol=len(sides) + 1, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
