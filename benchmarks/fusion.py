"""Fusion of tiny components: 10,000 of them with fusion against the same 10,000 as raw Ray tasks.

One Ray session (num_cpus=2). The shape: ``--chains`` independent chains of ``--steps``
components (default 100 x 100 = 10,000), each step ``x + 1`` (a few microseconds); the
chains' ends are the result. Sides, interleaved in each repetition (the order alternates):

- raw Ray: one ``.remote()`` per component, refs passed eagerly, ``ray.get`` on the ends;
- rayflow fused: the same workflow with ``fuse=True`` components (each chain one fused
  group of 100: one Ray task), ``rf.submit(...).result()``;
- rayflow unfused (``--unfused``, for reference): the same with ``fuse=False``.

rayflow's time is end to end: tracing, planning, recording the run, executing, recording
every component in the default SQLite run store and keeping every output as a checkpoint.
After each rayflow run (outside the timing) the store is read back through a second
connection: the run must be SUCCEEDED with every component recorded SUCCEEDED, with its
own timings, and checkpointed, else the script exits non-zero. Reported: medians of
components/s per side, the ratio fused / raw (target >= 10), and the driver process's CPU
time per component (all its threads, Ray's included). Writes
``benchmarks/results/fusion.json`` and the ``fusion_case`` entry of ``dataplane.json``.

    python benchmarks/fusion.py                 # 5 repetitions
    python benchmarks/fusion.py --reps 9 --unfused
"""

from __future__ import annotations

import argparse
import json
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


def _step(x: int) -> int:
    return x + 1


r_step = ray.remote(_step)
fused_step = rf.component(_step, fuse=True)
plain_step = rf.component(_step, fuse=False)


def _chains(step: rf.Component, chains: int, steps: int) -> list:
    ends = []
    for i in range(chains):
        x = step(i)
        for _ in range(1, steps):
            x = step(x)
        ends.append(x)
    return ends


@rf.workflow(name="bench_fused")
def fused_wf(chains: int, steps: int):
    return _chains(fused_step, chains, steps)


@rf.workflow(name="bench_unfused")
def unfused_wf(chains: int, steps: int):
    return _chains(plain_step, chains, steps)


@dataclass
class Sample:
    seconds: float
    value: object
    run_id: str | None = None
    cpu_s: float = 0.0   # CPU time of this whole driver process (every thread, Ray's included)


def raw(chains: int, steps: int) -> Sample:
    t0 = time.perf_counter()
    ends = []
    for i in range(chains):
        x = r_step.remote(i)
        for _ in range(1, steps):
            x = r_step.remote(x)
        ends.append(x)
    value = ray.get(ends)
    return Sample(time.perf_counter() - t0, value)


def flow(workflow: rf.Workflow, chains: int, steps: int) -> Sample:
    t0 = time.perf_counter()
    handle = rf.submit(workflow, chains=chains, steps=steps)
    value = handle.result()
    return Sample(time.perf_counter() - t0, value, handle.run_id)


SIDES = {
    "raw": lambda c, s: raw(c, s),
    "fused": lambda c, s: flow(fused_wf, c, s),
    "unfused": lambda c, s: flow(unfused_wf, c, s),
}


def verify(store: RunStore, sample: Sample, components: int, chains: int, steps: int) -> None:
    """The run's every component recorded SUCCEEDED with its timings, and checkpointed."""
    expected = [i + steps for i in range(chains)]
    if sample.value != expected:
        sys.exit(f"RESULT MISMATCH: {sample.value!r:.80} != {expected!r:.80}")
    if sample.run_id is None:
        return
    checkpoints = get_service().checkpoint_store()
    kept = len(checkpoints.index(sample.run_id)) if checkpoints is not None else 0
    run = store.get_run(sample.run_id)
    comps = store.get_components(sample.run_id)
    bad = [f"{c.component_id}={c.state}" for c in comps if c.state != "SUCCEEDED" or c.duration_s is None]
    if run is None or run.status != "SUCCEEDED" or len(comps) != components or bad or kept != components:
        sys.exit(f"STORE CHECK FAILED for run {sample.run_id}: run {run.status if run else 'missing'}, "
                 f"{len(comps)}/{components} recorded, {kept} checkpointed, bad: {bad[:5]}")


def timed(side: str, chains: int, steps: int) -> Sample:
    cpu0 = time.process_time()
    sample = SIDES[side](chains, steps)
    sample.cpu_s = time.process_time() - cpu0
    return sample


def run(sides: list[str], reps: int, chains: int, steps: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Warm up, then ``reps`` interleaved rounds; components/s of every sample per side, and
    the driver's CPU microseconds per component."""
    n = chains * steps
    cps: dict[str, list[float]] = {side: [] for side in sides}
    cpu: dict[str, list[float]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory(prefix="rayflow-bench-") as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        rf.init(store=url, checkpoints=f"{tmp}/checkpoints")
        store = open_store(url)   # a second connection: read back what rayflow wrote
        for side in sides:        # start workers, export functions
            for _ in range(2):
                verify(store, SIDES[side](min(chains, 4), min(steps, 10)), min(chains, 4) * min(steps, 10),
                       min(chains, 4), min(steps, 10))
        for rep in range(reps):
            order = sides if rep % 2 == 0 else list(reversed(sides))
            line = []
            for side in order:
                sample = timed(side, chains, steps)
                verify(store, sample, n, chains, steps)
                cps[side].append(n / sample.seconds)
                cpu[side].append(1e6 * sample.cpu_s / n)
                line.append(f"{side} {n / sample.seconds:9.1f}/s")
            print(f"rep {rep + 1}/{reps}  " + "  ".join(line), flush=True)
        store.close()
        rf.init(store="memory://", checkpoints="")   # release the temporary database before it is removed
    return cps, cpu


def summarize(cps: dict[str, list[float]], cpu: dict[str, list[float]], chains: int, steps: int,
              reps: int) -> dict:
    med = {side: statistics.median(v) for side, v in cps.items()}
    ratio = med["fused"] / med["raw"]
    out = {
        "shape": f"{chains} independent chains of {steps} components (x + 1), fuse=True: one group per chain",
        "components": chains * steps,
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
    p.add_argument("--chains", type=int, default=100)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--unfused", action="store_true", help="also run rayflow without fusion (slow: about 10 s a run)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    sides = ["raw", "fused"] + (["unfused"] if args.unfused else [])
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    cps, cpu = run(sides, args.reps, args.chains, args.steps)
    result = summarize(cps, cpu, args.chains, args.steps, args.reps)
    med = result["median_cps"]
    print(f"\nmedians of {args.reps}: raw Ray {med['raw']:.0f} components/s, rayflow fused {med['fused']:.0f}/s"
          + (f", unfused {med['unfused']:.0f}/s" if "unfused" in med else "")
          + f"; fused / raw {result['ratio_fused_over_raw']:.2f}x (target >= {TARGET:g}x: "
          + ("met" if result["meets_target"] else "NOT met") + ")")
    print("driver CPU per component (us): " + ", ".join(f"{side} {v:.0f}" for side, v in
                                                          result["driver_cpu_us_per_component"].items()))
    write_report(args.out, {"benchmark": "fusion", **result})
    if args.out == RESULTS and DATAPLANE.exists():   # the third data-plane case lives here
        data = json.loads(DATAPLANE.read_text())
        data["fusion_case"] = {"see": "benchmarks/results/fusion.json", **result}
        DATAPLANE.write_text(json.dumps(data, indent=2) + "\n")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
