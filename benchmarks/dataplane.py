"""The Arrow data plane: a 3-stage streaming pipeline, rayflow against Ray Data and a naive baseline.

One Ray session (num_cpus=2). The data: ``--gib`` GiB of 8 float64 columns written as
Parquet files to a temporary directory (generated first, outside the timing). The same
three functions on every side:

- parse:     drop rows whose first column is not finite (pyarrow.compute);
- transform: z = c0 * c1 + log1p(|c2|) (pyarrow.compute);
- aggregate: per batch, one row: the sum of z and the row count.

Sides:

- rayflow: a stream of three batch components over the Parquet directory (one actor per
  stage, ``--buffer`` batches in flight), its final table summed on the driver;
- Ray Data: ``read_parquet(...).map_batches(parse).map_batches(transform).map_batches(aggregate)``
  with ``batch_format="pyarrow"`` and the same batch size, consumed with ``take_all``;
- naive: the same pipeline with each batch turned into a list of Python dicts and
  pickled between stages, in one process, on ``--naive-fraction`` of the rows.

Each side first runs once untimed (workers started, code imported; ``--cold`` skips it),
so the first side measured does not pay for processes the second finds running.
Reported: rows/s per side, the ratio rayflow / Ray Data (target >= 1.5), the speed-up
over the naive baseline, and the peak memory of the whole machine during each run
(MemTotal - MemAvailable, sampled every 50 ms, minus its value before the run; target
under 2 GiB for rayflow). The fusion case of the issue (10,000 tiny components) is
``benchmarks/fusion.py``: its summary is kept as ``fusion_case`` here. Writes
``benchmarks/results/dataplane.json``.

    python benchmarks/dataplane.py              # 2 GiB
    python benchmarks/dataplane.py --gib 0.25   # a quick run
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import ray
from reporting import write_report

import rayflow as rf

RESULTS = Path(__file__).resolve().parent / "results" / "dataplane.json"
FUSION = RESULTS.with_name("fusion.json")   # written by benchmarks/fusion.py
COLUMNS = 8
ROWS_PER_FILE = 1 << 21          # 16 MiB per column per file


# -- the three functions, shared by every side -----------------------------------------------


# rayflow hands them pa.RecordBatch, Ray Data pa.Table: both work with either.
def parse_fn(batch: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table:
    return batch.filter(pc.is_finite(batch["c0"]))


def transform_fn(batch: pa.RecordBatch | pa.Table) -> pa.Table:
    z = pc.add(pc.multiply(batch["c0"], batch["c1"]), pc.log1p(pc.abs(batch["c2"])))
    return pa.table({"z": z})


def aggregate_fn(batch: pa.RecordBatch | pa.Table) -> pa.Table:
    return pa.table({"sum": [pc.sum(batch["z"]).as_py() or 0.0], "rows": [batch.num_rows]})


parse = rf.component(parse_fn, num_cpus=0.5, kind="batch")
transform = rf.component(transform_fn, num_cpus=0.5, kind="batch")
aggregate = rf.component(aggregate_fn, num_cpus=0.5, kind="batch")


@rf.workflow(name="dataplane")
def pipeline(path: str, batch_size: int, buffer: int):
    opts = {"batch_size": batch_size, "buffer_size": buffer}
    return aggregate.options(**opts)(transform.options(**opts)(parse.options(**opts)(path)))


# -- data and measurement --------------------------------------------------------------------


def _fusion_case() -> dict | str:
    """The issue's third case, run by benchmarks/fusion.py: its latest summary."""
    if not FUSION.exists():
        return "not run here: python benchmarks/fusion.py writes results/fusion.json"
    summary = json.loads(FUSION.read_text())
    return {"see": "benchmarks/results/fusion.json", **{k: v for k, v in summary.items() if k != "machine"}}


def generate(directory: Path, gib: float) -> int:
    rows = int(gib * (1 << 30) / (8 * COLUMNS))
    rng = np.random.default_rng(7)
    written = 0
    i = 0
    while written < rows:
        n = min(ROWS_PER_FILE, rows - written)
        table = pa.table({f"c{c}": rng.standard_normal(n) for c in range(COLUMNS)})
        pq.write_table(table, directory / f"part-{i:04d}.parquet", compression="none")
        written += n
        i += 1
    return rows


class PeakMemory:
    """Machine memory in use (MemTotal - MemAvailable), sampled in a thread; the peak above the start."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._base = self._used()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _used() -> int:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        kib = int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])
        return kib * 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._used() - self._base)
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed(fn, *args) -> dict:
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        total, rows = fn(*args)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "total": total, "rows": rows, "peak_mem_bytes": mem.peak}


# -- the sides --------------------------------------------------------------------------------


def run_rayflow(path: str, batch_size: int, buffer: int) -> tuple[float, int]:
    out = rf.run(pipeline, path=path, batch_size=batch_size, buffer=buffer, progress=False)
    return pc.sum(out["sum"]).as_py(), pc.sum(out["rows"]).as_py()


def run_ray_data(path: str, batch_size: int) -> tuple[float, int]:
    kw = {"batch_format": "pyarrow", "batch_size": batch_size}
    data = (ray.data.read_parquet(path).map_batches(parse_fn, **kw).map_batches(transform_fn, **kw)
            .map_batches(aggregate_fn, **kw))
    rows = data.take_all()
    return sum(r["sum"] for r in rows), sum(r["rows"] for r in rows)


def run_naive(path: str, batch_size: int, fraction: float) -> tuple[float, int]:
    """Rows as Python dicts, pickled between stages (what a row-oriented orchestrator does)."""
    dataset = ds.dataset(path)
    limit = int(dataset.count_rows() * fraction)
    seen, total, rows = 0, 0.0, 0
    for batch in dataset.to_batches(batch_size=batch_size):
        if seen >= limit:
            break
        seen += batch.num_rows
        records = pickle.loads(pickle.dumps(batch.to_pylist()))
        records = pickle.loads(pickle.dumps([r for r in records if np.isfinite(r["c0"])]))
        zs = pickle.loads(pickle.dumps([r["c0"] * r["c1"] + np.log1p(abs(r["c2"])) for r in records]))
        total += float(sum(zs))
        rows += len(zs)
    return total, rows


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gib", type=float, default=2.0, help="data size in GiB (default 2)")
    p.add_argument("--batch-size", type=int, default=1 << 17, help="rows per batch (default 131072)")
    p.add_argument("--buffer", type=int, default=4, help="batches in flight through the rayflow stream")
    p.add_argument("--naive-fraction", type=float, default=0.02, help="share of rows the naive side processes")
    p.add_argument("--cold", action="store_true", help="measure each side's first run (no untimed warm-up run)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    rf.init(store="memory://")
    with tempfile.TemporaryDirectory(prefix="rayflow-dataplane-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        t0 = time.perf_counter()
        rows = generate(data_dir, args.gib)
        print(f"generated {rows:,} rows ({args.gib} GiB) in {time.perf_counter() - t0:.1f} s", flush=True)
        path = str(data_dir)
        if not args.cold:   # each side once first, untimed: worker processes started, code imported
            run_rayflow(path, args.batch_size, args.buffer)
            run_ray_data(path, args.batch_size)
        results = {
            "rayflow": timed(run_rayflow, path, args.batch_size, args.buffer),
            "ray_data": timed(run_ray_data, path, args.batch_size),
            "naive": timed(run_naive, path, args.batch_size, args.naive_fraction),
        }
    for side, r in results.items():
        r["rows_per_s"] = r["rows"] / r["seconds"]
        print(f"{side:<9} {r['rows']:>12,} rows  {r['seconds']:7.2f} s  {r['rows_per_s'] / 1e6:7.2f} M rows/s  "
              f"peak memory {r['peak_mem_bytes'] / (1 << 30):5.2f} GiB", flush=True)
    same = abs(results["rayflow"]["total"] - results["ray_data"]["total"]) <= 1e-6 * abs(results["ray_data"]["total"])
    if not same or results["rayflow"]["rows"] != results["ray_data"]["rows"]:
        sys.exit(f"RESULT MISMATCH: rayflow {results['rayflow']['total']} / {results['rayflow']['rows']} rows, "
                 f"Ray Data {results['ray_data']['total']} / {results['ray_data']['rows']} rows")
    ratio = results["rayflow"]["rows_per_s"] / results["ray_data"]["rows_per_s"]
    speedup = results["rayflow"]["rows_per_s"] / results["naive"]["rows_per_s"]
    print(f"\nrayflow / Ray Data: {ratio:.2f}x (target >= 1.5)   rayflow / naive: {speedup:.1f}x   "
          f"rayflow peak memory {results['rayflow']['peak_mem_bytes'] / (1 << 30):.2f} GiB (target < 2)")
    write_report(args.out, {
        "benchmark": "dataplane", "warm_up_run": not args.cold, "gib": args.gib, "rows": rows, "batch_size": args.batch_size,
        "buffer": args.buffer, "naive_fraction": args.naive_fraction, "sides": results,
        "ratio_rayflow_over_ray_data": round(ratio, 3), "target_ratio": 1.5, "meets_ratio": ratio >= 1.5,
        "speedup_over_naive": round(speedup, 1),
        "rayflow_peak_mem_gib": round(results["rayflow"]["peak_mem_bytes"] / (1 << 30), 3),
        "target_peak_mem_gib": 2.0, "meets_memory": results["rayflow"]["peak_mem_bytes"] < 2 * (1 << 30),
        "fusion_case": _fusion_case(),
    })
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
