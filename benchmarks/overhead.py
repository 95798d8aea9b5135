"""Per-component overhead of rayflow over raw Ray tasks, on no-op work.

Three shapes, each run by raw Ray and by rayflow in one Ray session, interleaved:

- ``fan``   (a): N no-op components, then one component taking all N outputs.
- ``chain`` (b): N no-op components, each taking the previous output.
- ``many``  (c): W small workflows (a -> (b, c, d) -> e) submitted concurrently.
- ``fan_pg``:    (a) again with the PostgreSQL run store (``--pg-url``; skipped with a
  note when no server answers).
- ``fan_logs``:  (a) with rayflow on both sides: attempts' logs captured (the default)
  against capture turned off (``RAYFLOW_LOGS=off``); the "raw" columns are capture off.

rayflow records every component in a real SQLite (or PostgreSQL) store, and keeps every
component's output as a checkpoint (the default); after each timed run the
benchmark reads that store back through a separate connection and fails loudly
unless every component of the run is SUCCEEDED. Reports medians of components/s
per side and the ratio rayflow/raw (the machine is noisy: ratios hold, absolute
numbers drift). Each repetition measures each side twice: *settled* (one run after a
garbage collection and 0.3 s of quiet) and *back to back* (``--burst`` runs in a row with no
pause, as a script submitting run after run does: each pays for what the one before left
running). Run from the repository root::

    python benchmarks/overhead.py            # full run, 9 repetitions
    python benchmarks/overhead.py --quick    # smoke run, small shapes
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ray
from reporting import write_report

import rayflow as rf
from rayflow.service import get_service
from rayflow.store import open_store
from rayflow.store.port import RunStore

RESULTS = Path(__file__).resolve().parent / "results" / "overhead.json"
QUICK_RESULTS = RESULTS.with_name("overhead-quick.json")   # a smoke run never replaces the real figures
TARGETS = {"fan": 0.9, "chain": 0.9, "many": 0.8, "fan_pg": 0.85, "fan_logs": 0.97}   # for both the settled and back-to-back ratios
PG_URL = "postgresql://postgres@127.0.0.1:5432/test?schema=rayflow_bench"
WARM_UP_SIZE = 50
SETTLE_S = 0.3   # quiet time before each settled sample (and before each burst)
BURST = 3        # runs in a row in a back-to-back sample


# -- the work: the same no-op functions on both sides ------------------------------------


def _leaf(i: int) -> int:
    return i


def _step(x: int) -> int:
    return x + 1


def _join(parts: list[int]) -> int:
    return len(parts)


r_leaf = ray.remote(_leaf)
r_step = ray.remote(_step)


@ray.remote
def r_join(*parts: int) -> int:
    return len(parts)


# fuse=False: this benchmark measures what each component costs as its own Ray task (with
# a resource model saved, fuse=None would run these no-ops fused: benchmarks/fusion.py)
leaf = rf.component(_leaf, fuse=False)
step = rf.component(_step, fuse=False)
join = rf.component(_join, fuse=False)


@rf.workflow(name="bench_fan")
def fan_wf(n: int):
    return join([leaf(i) for i in range(n)])


@rf.workflow(name="bench_chain")
def chain_wf(n: int):
    x = leaf(0)
    for _ in range(n - 1):
        x = step(x)
    return x


@rf.workflow(name="bench_small")
def small_wf(i: int):
    a = leaf(i)
    return join([step(a) for _ in range(3)])


# -- one timed run per side ----------------------------------------------------------------


@dataclass
class Sample:
    seconds: float
    value: object
    run_ids: list[str]
    cpu_s: float = 0.0     # CPU time of this whole driver process (every thread) during the run


def timed(fn: Callable[[int], Sample], size: int, burst: int = 1) -> Sample:
    """Run one sample, adding the driver process's CPU time (what rayflow adds lives here).

    Each sample starts from a settled cluster: the previous sample's objects freed and
    Ray's own bookkeeping of its tasks done (both sides alike), so neither pays for the
    other's tail. With ``burst`` > 1, that many runs follow each other without a pause
    (the sample is their total): each pays for the tail of the one before, its own side's."""
    gc.collect()
    time.sleep(SETTLE_S)
    cpu0 = time.process_time()
    runs = [fn(size) for _ in range(burst)]
    sample = Sample(sum(r.seconds for r in runs), runs[-1].value, [rid for r in runs for rid in r.run_ids])
    sample.cpu_s = time.process_time() - cpu0
    return sample


def raw_fan(n: int) -> Sample:
    t0 = time.perf_counter()
    value = ray.get(r_join.remote(*[r_leaf.remote(i) for i in range(n)]))
    return Sample(time.perf_counter() - t0, value, [])


def raw_chain(n: int) -> Sample:
    t0 = time.perf_counter()
    x = r_leaf.remote(0)
    for _ in range(n - 1):
        x = r_step.remote(x)
    value = ray.get(x)
    return Sample(time.perf_counter() - t0, value, [])


def raw_many(w: int) -> Sample:
    t0 = time.perf_counter()
    sinks = []
    for i in range(w):
        a = r_leaf.remote(i)
        sinks.append(r_join.remote(*[r_step.remote(a) for _ in range(3)]))
    value = ray.get(sinks)
    return Sample(time.perf_counter() - t0, value, [])


def flow_one(workflow: rf.Workflow, n: int) -> Sample:
    t0 = time.perf_counter()
    handle = rf.submit(workflow, n=n)
    value = handle.result()
    return Sample(time.perf_counter() - t0, value, [handle.run_id])


def flow_fan(n: int) -> Sample:
    return flow_one(fan_wf, n)


def flow_fan_uncaptured(n: int) -> Sample:
    """(a) with capture off: the baseline of ``fan_logs``."""
    settings = get_service().settings
    settings.logs_url = "off"
    try:
        return flow_one(fan_wf, n)
    finally:
        settings.logs_url = None


def flow_chain(n: int) -> Sample:
    return flow_one(chain_wf, n)


def flow_many(w: int) -> Sample:
    t0 = time.perf_counter()
    handles = [rf.submit(small_wf, i=i) for i in range(w)]
    value = [h.result() for h in handles]
    return Sample(time.perf_counter() - t0, value, [h.run_id for h in handles])


@dataclass
class Case:
    name: str
    size: int
    raw: Callable[[int], Sample]
    flow: Callable[[int], Sample]
    store: str = "sqlite"   # the run store rayflow records in: sqlite or postgresql

    @property
    def label(self) -> str:
        return {"fan": f"(a) fan-out {self.size} + fan-in", "chain": f"(b) chain of {self.size}",
                "many": f"(c) {self.size} workflows x 5",
                "fan_pg": f"(a) fan-out {self.size}, PostgreSQL",
                "fan_logs": f"(a) fan-out {self.size}, logs on/off"}[self.name]

    @property
    def per_run(self) -> int:
        """Components in each rayflow run."""
        return {"fan": self.size + 1, "chain": self.size, "many": 5, "fan_pg": self.size + 1,
                "fan_logs": self.size + 1}[self.name]

    @property
    def components(self) -> int:
        """Components (tasks) in one sample of either side."""
        return self.size * 5 if self.name == "many" else self.per_run

    def resized(self, size: int) -> Case:
        return Case(self.name, size, self.raw, self.flow, self.store)


def cases(fan: int, chain: int, many: int) -> list[Case]:
    return [
        Case("fan", fan, raw_fan, flow_fan),
        Case("chain", chain, raw_chain, flow_chain),
        Case("many", many, raw_many, flow_many),
        Case("fan_pg", fan, raw_fan, flow_fan, "postgresql"),
        Case("fan_logs", fan, flow_fan_uncaptured, flow_fan),
    ]


# -- checks ---------------------------------------------------------------------------------


def verify_store(store: RunStore, sample: Sample, per_run: int) -> None:
    """Every component of every run is in the store and SUCCEEDED, and has its output
    checkpointed; else exit loudly."""
    checkpoints = get_service().checkpoint_store()
    for run_id in sample.run_ids:
        kept = len(checkpoints.index(run_id)) if checkpoints is not None else 0
        if kept != per_run:
            sys.exit(f"CHECKPOINT CHECK FAILED for run {run_id}: {kept}/{per_run} outputs kept")
        run = store.get_run(run_id)
        comps = store.get_components(run_id)
        bad = [f"{c.component_id}={c.state}" for c in comps if c.state != "SUCCEEDED"]
        if run is None or run.status != "SUCCEEDED" or len(comps) != per_run or bad:
            status = run.status if run else "missing"
            sys.exit(f"STORE CHECK FAILED for run {run_id}: run {status}, {len(comps)}/{per_run} "
                     f"components recorded, not SUCCEEDED: {bad[:5]}{' ...' if len(bad) > 5 else ''}")


def check_same(case: Case, raw: Sample, flow: Sample) -> None:
    if raw.value != flow.value:
        sys.exit(f"RESULT MISMATCH in {case.name}: raw {raw.value!r:.80} vs rayflow {flow.value!r:.80}")


# -- the run ---------------------------------------------------------------------------------


def measure(case: Case, store: RunStore, rep: int, burst: int) -> dict[str, Sample]:
    """A settled and a back-to-back sample of each side of ``case`` (order alternating by
    ``rep``), checked: keys raw, rayflow, raw_b2b, rayflow_b2b."""
    sides = [("raw", case.raw), ("rayflow", case.flow)]
    if rep % 2:
        sides.reverse()
    samples = {name: timed(fn, case.size) for name, fn in sides}
    samples |= {f"{name}_b2b": timed(fn, case.size, burst) for name, fn in reversed(sides)}
    for suffix in ("", "_b2b"):
        verify_store(store, samples["rayflow" + suffix], case.per_run)
        check_same(case, samples["raw" + suffix], samples["rayflow" + suffix])
    return samples


def warm_up(all_cases: list[Case], store: RunStore) -> None:
    """Start workers and export every function on both sides before timing."""
    for case in all_cases:
        warm = case.resized(max(2, min(case.size, WARM_UP_SIZE)))
        for _ in range(2):
            raw, flow = warm.raw(warm.size), warm.flow(warm.size)
            verify_store(store, flow, warm.per_run)
            check_same(warm, raw, flow)


def summarize(case: Case, samples: list[dict[str, Sample]], burst: int) -> dict:
    out = {"label": case.label, "components": case.components, "burst": burst}
    for suffix, n in (("", case.components), ("_b2b", case.components * burst)):
        raw = [n / s["raw" + suffix].seconds for s in samples]
        flow = [n / s["rayflow" + suffix].seconds for s in samples]
        cpu = {side: [1e6 * s[side + suffix].cpu_s / n for s in samples] for side in ("raw", "rayflow")}
        raw_med, flow_med = statistics.median(raw), statistics.median(flow)
        paired = [f / r for r, f in zip(raw, flow, strict=True)]
        target = TARGETS[case.name]
        ratio = flow_med / raw_med
        out |= {
            f"raw_cps{suffix}": [round(x, 1) for x in raw],
            f"rayflow_cps{suffix}": [round(x, 1) for x in flow],
            f"raw_median_cps{suffix}": round(raw_med, 1),
            f"rayflow_median_cps{suffix}": round(flow_med, 1),
            f"ratio{suffix}": round(ratio, 3),
            f"paired_ratio_median{suffix}": round(statistics.median(paired), 3),
            f"driver_cpu_us_per_component{suffix}": {side: round(statistics.median(v), 1) for side, v in cpu.items()},
            "target": target,
            f"meets_target{suffix}": None if target is None else ratio >= target,
        }
    return out


def print_table(results: dict[str, dict], reps: int) -> None:
    print(f"\nmedians of {reps} repetitions, components/s (higher is better); b2b: runs back to back")
    print(f"{'case':<30} {'pacing':<8} {'raw Ray':>10} {'rayflow':>10} {'ratio':>7} {'paired':>7} {'target':>7}"
          f" {'driver CPU us/comp raw|rayflow':>31}")
    for res in results.values():
        for suffix, pacing in (("", "settled"), ("_b2b", "b2b")):
            target = "-" if res["target"] is None else f">={res['target']}"
            met = res[f"meets_target{suffix}"]
            mark = "" if met is None else ("ok" if met else "BELOW")
            cpu = res[f"driver_cpu_us_per_component{suffix}"]
            print(f"{res['label']:<30} {pacing:<8} {res[f'raw_median_cps{suffix}']:>10.1f} "
                  f"{res[f'rayflow_median_cps{suffix}']:>10.1f} {res[f'ratio{suffix}']:>7.3f} "
                  f"{res[f'paired_ratio_median{suffix}']:>7.3f} {target:>7} "
                  f"{cpu['raw']:>14.0f} | {cpu['rayflow']:<8.0f} {mark}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=9, help="repetitions per case and side (default 9)")
    p.add_argument("--quick", action="store_true", help="smoke run: small shapes, 2 repetitions")
    p.add_argument("--fan", type=int, default=2000, help="fan-out width of (a)")
    p.add_argument("--chain", type=int, default=300, help="chain length of (b)")
    p.add_argument("--many", type=int, default=200, help="number of small workflows in (c)")
    p.add_argument("--cases", default="fan,chain,many,fan_pg,fan_logs",
                   help="comma-separated subset of fan,chain,many,fan_pg,fan_logs")
    p.add_argument("--burst", type=int, default=BURST, help=f"runs in a row in a back-to-back sample (default {BURST})")
    p.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL store of fan_pg (default {PG_URL})")
    p.add_argument("--out", type=Path, help=f"JSON output (default {RESULTS}, with --quick {QUICK_RESULTS.name})")
    args = p.parse_args(argv)
    if args.quick:
        args.fan, args.chain, args.many, args.reps = 200, 50, 20, 2
    args.out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    return args


def reachable(url: str) -> bool:
    try:
        open_store(url).close()
        return True
    except Exception as exc:  # noqa: BLE001 - the case is skipped with the reason
        print(f"skipping the PostgreSQL case: {exc}")
        return False


def run_cases(chosen: list[Case], reps: int, pg_url: str, burst: int) -> dict[str, list[dict[str, Sample]]]:
    """Warm up, then ``reps`` interleaved raw/rayflow pairs per case, against real stores."""
    samples: dict[str, list[dict[str, Sample]]] = {c.name: [] for c in chosen}
    with tempfile.TemporaryDirectory(prefix="rayflow-bench-") as tmp:
        urls = {"sqlite": f"sqlite:///{tmp}/bench.db", "postgresql": pg_url}
        rf.init(store=urls["sqlite"], checkpoints=f"{tmp}/checkpoints")
        stores = {kind: open_store(url) for kind, url in urls.items() if any(c.store == kind for c in chosen)}
        for kind in {c.store for c in chosen}:   # a second connection: read back what rayflow wrote
            rf.init(store=urls[kind])
            warm_up([c for c in chosen if c.store == kind], stores[kind])
        for rep in range(reps):
            for case in chosen:
                rf.init(store=urls[case.store])
                store = stores[case.store]
                pair = measure(case, store, rep, burst)
                samples[case.name].append(pair)
                r, f = (case.components / pair[side].seconds for side in ("raw", "rayflow"))
                rb, fb = (case.components * burst / pair[side].seconds for side in ("raw_b2b", "rayflow_b2b"))
                print(f"rep {rep + 1}/{reps} {case.label:<30} raw {r:8.1f}/s  rayflow {f:8.1f}/s  "
                      f"ratio {f / r:.3f}   back to back: raw {rb:8.1f}/s  rayflow {fb:8.1f}/s  "
                      f"ratio {fb / rb:.3f}", flush=True)
        for store in stores.values():
            store.close()
        rf.init(store="memory://", checkpoints="")   # release the temporary database before it is removed
    return samples


def capture_cost_us(calls: int = 50_000, rounds: int = 5) -> float:
    """What capturing one attempt that prints nothing costs its worker (``capture.begin`` then
    ``capture.end``, to a real log location), in microseconds: the best of ``rounds``. The
    end-to-end ratio of ``fan_logs`` is within the machine's noise; this is its cause, measured
    where it is paid."""
    from rayflow.execute.worker import capture

    with tempfile.TemporaryDirectory(prefix="rayflow-capture-") as tmp:
        target = capture.LogTarget(url=Path(tmp).as_uri(), run_id="bench")
        meta: dict = {}
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(calls):
                capture.end(capture.begin(target, "c", 1), meta, failed=False)
            best = min(best, time.perf_counter() - started)
    return best / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [c for c in cases(args.fan, args.chain, args.many) if c.name in args.cases.split(",")]
    chosen = [c for c in chosen if c.store != "postgresql" or reachable(args.pg_url)]
    # address="local": a fresh instance even when `ray start` left a cluster on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    samples = run_cases(chosen, args.reps, args.pg_url, args.burst)
    results = {c.name: summarize(c, samples[c.name], args.burst) for c in chosen}
    if "fan_logs" in results:
        logs = results["fan_logs"]
        per_call = capture_cost_us()
        logs["capture_us_per_call"] = round(per_call, 2)
        logs["capture_share_of_component"] = round(per_call / (1e6 / logs["rayflow_median_cps"]), 4)
        print(f"capture in the worker: {per_call:.2f} us per call, "
              f"{100 * logs['capture_share_of_component']:.2f}% of a no-op component's wall time here")
    print_table(results, args.reps)
    write_report(args.out, {"benchmark": "overhead", "reps": args.reps, "quick": args.quick,
                            "targets": {name: f">= {t}" for name, t in TARGETS.items() if t is not None},
                            "cases": results})
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
