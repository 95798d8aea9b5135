"""Fusion of tiny components on several shapes, against the same components as raw Ray tasks.

One Ray session (num_cpus=2). Every component is ``sum(inputs) + 1`` (a few
microseconds; a source gets its index). Shapes (``--shapes``, each about 10,000
components or more):

- ``chains``: 100 independent chains of 100; the chains' ends are the result;
- ``short``: 1,000 independent chains of 10;
- ``sink``: 100 chains of 100 and one component reading every chain's end;
- ``tree``: one source fanned out to 10,000 leaves, then a binary tree reduce to one
  result (20,000 components);
- ``layered``: a random layered DAG, 10 layers of 1,000, each component reading 1-3
  random components of the layer above (seed 0); the last layer is the result.

Sides, interleaved in each repetition (the order alternates):

- raw Ray: one ``.remote()`` per component, refs passed eagerly, ``ray.get`` on the results;
- rayflow fused: the same workflow with ``fuse=True`` components, ``rf.submit(...).result()``;
- rayflow unfused (``--unfused``, for reference): the same with ``fuse=False``.

rayflow's time is end to end: tracing, planning, recording the run, executing, recording
every component in the default SQLite run store and keeping every output as a checkpoint.
After each rayflow run (outside the timing) the store is read back through a second
connection: the run must be SUCCEEDED with every component recorded SUCCEEDED, with its
own timings, and checkpointed, and both sides must give the values the shape gives when
evaluated in plain Python, else the script exits non-zero. Reported per shape: medians of
components/s per side, the ratio fused / raw (target >= 10 on every shape), the number of
Ray calls the fused plan makes, and the driver process's CPU time per component (all its
threads, Ray's included). Writes ``benchmarks/results/fusion.json`` and the
``fusion_case`` entry of ``dataplane.json``.

    python benchmarks/fusion.py                       # every shape, 5 repetitions
    python benchmarks/fusion.py --shapes short,tree --reps 3 --unfused
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import ray
from reporting import write_report

import rayflow as rf
from rayflow.service import get_service
from rayflow.store import open_store
from rayflow.store.port import RunStore

RESULTS = Path(__file__).resolve().parent / "results" / "fusion.json"
DATAPLANE = RESULTS.with_name("dataplane.json")
TARGET = 10.0


def _step(*xs: int) -> int:
    return sum(xs) + 1


r_step = ray.remote(_step)
fused_step = rf.component(_step, fuse=True)
plain_step = rf.component(_step, fuse=False)


def _chains(chains: int, steps: int, sink: bool = False) -> tuple[list[tuple[int, ...]], list[int]]:
    nodes: list[tuple[int, ...]] = []
    ends = []
    for _ in range(chains):
        for k in range(steps):
            nodes.append(() if k == 0 else (len(nodes) - 1,))
        ends.append(len(nodes) - 1)
    if sink:
        nodes.append(tuple(ends))
        return nodes, [len(nodes) - 1]
    return nodes, ends


def _tree(width: int) -> tuple[list[tuple[int, ...]], list[int]]:
    nodes: list[tuple[int, ...]] = [()]
    level = []
    for _ in range(width):
        nodes.append((0,))
        level.append(len(nodes) - 1)
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), 2):
            nodes.append(tuple(level[i:i + 2]))
            nxt.append(len(nodes) - 1)
        level = nxt
    return nodes, level


def _layered(layers: int, width: int, seed: int = 0) -> tuple[list[tuple[int, ...]], list[int]]:
    rng = random.Random(seed)
    nodes: list[tuple[int, ...]] = []
    above: list[int] = []
    for _ in range(layers):
        row = []
        for _ in range(width):
            nodes.append(tuple(sorted(rng.sample(above, rng.randint(1, 3)))) if above else ())
            row.append(len(nodes) - 1)
        above = row
    return nodes, above


SHAPES = {
    "chains": ("100 independent chains of 100", lambda scale: _chains(100, 100 // scale)),
    "short": ("1,000 independent chains of 10", lambda scale: _chains(1000 // scale, 10)),
    "sink": ("100 chains of 100 and a sink reading every end", lambda scale: _chains(100, 100 // scale, sink=True)),
    "tree": ("one source, a 10,000-wide fan, a binary tree reduce", lambda scale: _tree(10_000 // scale)),
    "layered": ("random layered DAG, 10 layers of 1,000, 1-3 reads each",
                lambda scale: _layered(10, 1000 // scale)),
}


def shape(name: str, scale: int = 1) -> tuple[list[tuple[int, ...]], list[int]]:
    """A shape's nodes (each its upstream indices, topological) and its result nodes."""
    return SHAPES[name][1](scale)


def expected(name: str, scale: int) -> list[int]:
    nodes, out = shape(name, scale)
    values: list[int] = []
    for i, ups in enumerate(nodes):
        values.append(sum(values[u] for u in ups) + 1 if ups else i + 1)
    return [values[o] for o in out]


def _build(step, name: str, scale: int) -> list:
    nodes, out = shape(name, scale)
    built: list = []
    for i, ups in enumerate(nodes):
        built.append(step(*[built[u] for u in ups]) if ups else step(i))
    return [built[o] for o in out]


@rf.workflow(name="bench_fused")
def fused_wf(name: str, scale: int):
    return _build(fused_step, name, scale)


@rf.workflow(name="bench_unfused")
def unfused_wf(name: str, scale: int):
    return _build(plain_step, name, scale)


@dataclass
class Sample:
    seconds: float
    value: object
    run_id: str | None = None
    cpu_s: float = 0.0   # CPU time of this whole driver process (every thread, Ray's included)


def raw(name: str, scale: int) -> Sample:
    t0 = time.perf_counter()
    value = ray.get(_build(r_step.remote, name, scale))
    return Sample(time.perf_counter() - t0, value)


def flow(workflow: rf.Workflow, name: str, scale: int) -> Sample:
    t0 = time.perf_counter()
    handle = rf.submit(workflow, name=name, scale=scale)
    value = handle.result()
    return Sample(time.perf_counter() - t0, value, handle.run_id)


SIDES = {
    "raw": lambda n, s: raw(n, s),
    "fused": lambda n, s: flow(fused_wf, n, s),
    "unfused": lambda n, s: flow(unfused_wf, n, s),
}


def verify(store: RunStore, sample: Sample, name: str, scale: int) -> None:
    """The values plain Python gives; the run's every component recorded SUCCEEDED with its
    timings, and checkpointed."""
    want = expected(name, scale)
    if list(sample.value) != want:
        sys.exit(f"RESULT MISMATCH on {name}: {sample.value!r:.80} != {want!r:.80}")
    if sample.run_id is None:
        return
    components = len(shape(name, scale)[0])
    checkpoints = get_service().checkpoint_store()
    kept = len(checkpoints.index(sample.run_id)) if checkpoints is not None else 0
    run = store.get_run(sample.run_id)
    comps = store.get_components(sample.run_id)
    bad = [f"{c.component_id}={c.state}" for c in comps if c.state != "SUCCEEDED" or c.duration_s is None]
    if run is None or run.status != "SUCCEEDED" or len(comps) != components or bad or kept != components:
        sys.exit(f"STORE CHECK FAILED for run {sample.run_id}: run {run.status if run else 'missing'}, "
                 f"{len(comps)}/{components} recorded, {kept} checkpointed, bad: {bad[:5]}")


def timed(side: str, name: str, scale: int) -> Sample:
    cpu0 = time.process_time()
    sample = SIDES[side](name, scale)
    sample.cpu_s = time.process_time() - cpu0
    return sample


def calls_of(name: str, scale: int) -> dict:
    """What the fused plan makes of the shape: its groups and Ray calls."""
    plan = rf.explain(fused_wf, name=name, scale=scale)
    fused = sum(len(g) for g in plan.fused)
    return {"components": len(plan.dag.nodes), "groups": len(plan.fused),
            "ray_calls": len(plan.fused) + len(plan.dag.nodes) - fused,
            "largest_group": max((len(g) for g in plan.fused), default=0)}


def run(sides: list[str], reps: int, names: list[str], scale: int) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Warm up, then ``reps`` interleaved rounds per shape; per shape and side the
    components/s of every sample and the driver's CPU microseconds per component."""
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="rayflow-bench-") as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        rf.init(store=url, checkpoints=f"{tmp}/checkpoints")
        store = open_store(url)   # a second connection: read back what rayflow wrote
        for side in sides:        # start workers, export functions
            for _ in range(2):
                verify(store, SIDES[side]("short", 100), "short", 100)
        for name in names:
            n = len(shape(name, scale)[0])
            cps: dict[str, list[float]] = {side: [] for side in sides}
            cpu: dict[str, list[float]] = {side: [] for side in sides}
            for rep in range(reps):
                order = sides if rep % 2 == 0 else list(reversed(sides))
                line = []
                for side in order:
                    sample = timed(side, name, scale)
                    verify(store, sample, name, scale)
                    cps[side].append(n / sample.seconds)
                    cpu[side].append(1e6 * sample.cpu_s / n)
                    line.append(f"{side} {n / sample.seconds:9.1f}/s")
                print(f"{name} rep {rep + 1}/{reps}  " + "  ".join(line), flush=True)
            out[name] = {"cps": cps, "cpu": cpu}
        store.close()
        rf.init(store="memory://", checkpoints="")   # release the temporary database before it is removed
    return out


def summarize(name: str, cps: dict[str, list[float]], cpu: dict[str, list[float]], scale: int,
              reps: int) -> dict:
    med = {side: statistics.median(v) for side, v in cps.items()}
    ratio = med["fused"] / med["raw"]
    out = {
        "shape": SHAPES[name][0] + (f" (sizes / {scale})" if scale != 1 else ""),
        **calls_of(name, scale),
        "reps": reps,
        "cps": {side: [round(x, 1) for x in v] for side, v in cps.items()},
        "median_cps": {side: round(v, 1) for side, v in med.items()},
        "ratio_fused_over_raw": round(ratio, 2),
        "paired_ratio_median": round(statistics.median(f / r for f, r in zip(cps["fused"], cps["raw"],
                                                                               strict=True)), 2),
        "driver_cpu_us_per_component": {side: round(statistics.median(v), 1) for side, v in cpu.items()},
        "target": f">= {TARGET}",
        "meets_target": ratio >= TARGET,
    }
    if "unfused" in med:
        out["ratio_fused_over_unfused"] = round(med["fused"] / med["unfused"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of {', '.join(SHAPES)}")
    p.add_argument("--scale", type=int, default=1, help="divide every shape's size by this (a quick run)")
    p.add_argument("--unfused", action="store_true", help="also run rayflow without fusion (slow: about 10 s a run)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    names = [n for n in args.shapes.split(",") if n]
    unknown = [n for n in names if n not in SHAPES]
    if unknown:
        p.error(f"unknown shape(s) {', '.join(unknown)}: expected some of {', '.join(SHAPES)}")
    sides = ["raw", "fused"] + (["unfused"] if args.unfused else [])
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    runs = run(sides, args.reps, names, args.scale)
    results = {name: summarize(name, r["cps"], r["cpu"], args.scale, args.reps) for name, r in runs.items()}
    print(f"\nmedians of {args.reps} (target fused / raw >= {TARGET:g}x on every shape):")
    for name, result in results.items():
        med = result["median_cps"]
        print(f"  {name:8} {result['components']:6} components, {result['ray_calls']:4} calls fused: raw Ray "
              f"{med['raw']:7.0f}/s, fused {med['fused']:8.0f}/s"
              + (f", unfused {med['unfused']:7.0f}/s" if "unfused" in med else "")
              + f"  {result['ratio_fused_over_raw']:5.2f}x " + ("met" if result["meets_target"] else "NOT met")
              + "; driver CPU us/component " + ", ".join(f"{side} {v:.0f}" for side, v in
                                                          result["driver_cpu_us_per_component"].items()))
    summary = {"benchmark": "fusion", "scale": args.scale, "reps": args.reps, "shapes": results,
               "meets_target_everywhere": all(r["meets_target"] for r in results.values())}
    write_report(args.out, summary)
    if args.out == RESULTS and DATAPLANE.exists() and "chains" in results:   # the third data-plane case
        data = json.loads(DATAPLANE.read_text())
        data["fusion_case"] = {"see": "benchmarks/results/fusion.json", **results["chains"]}
        DATAPLANE.write_text(json.dumps(data, indent=2) + "\n")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
