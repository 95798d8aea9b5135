"""The connectors: SQL reads and writes against PostgreSQL, HTTP calls, rayflow against plain clients.

Everything runs in one process against ``--pg-url`` (PostgreSQL, trust auth) and a
local HTTP endpoint, the sides of each case interleaved (their order rotates from one
repetition to the next), medians of ``--reps``. The tables live in a schema of their own
(``rayflow_bench_conn_<random>``), made with ``generate_series`` and dropped at the end,
also when the run fails: ``narrow`` (``--rows`` rows: id bigint, customer int, amount
float8, note text), ``wide`` (``--wide-rows`` rows of 12 columns: integers of three
widths, float8, real, numeric, text, varchar, bool, date, timestamp, timestamptz) and
``sink`` (the narrow columns, emptied before each write).

1. **SQL -> Arrow** (``SELECT *`` of each table, the result a ``pyarrow.Table``):
   - ``rayflow``: ``read_table(SqlQuery(...))`` (ADBC, the process's pooled connection, warm);
   - ``rayflow_wf_ray``: ``rf.sql(url, query)`` as the one component of a ``@rf.workflow``,
     ``rf.run(..., executor="ray")`` on local Ray (``num_cpus=2``), the table back on the
     driver: what the component costs around the read (one untimed run first);
   - ``rayflow_wf_local``: the same workflow with ``executor="local"``;
   - ``asyncpg_arrow``: ``conn.fetch(query)`` on an open asyncpg connection, then a
     ``pyarrow.Table`` built column by column from the records (how one gets Arrow without
     rayflow); ``asyncpg_fetch``: the fetch alone, no Arrow;
   - ``pandas``: ``pandas.read_sql(query, engine)`` (SQLAlchemy + psycopg2, pooled engine),
     then ``pa.Table.from_pandas``.
   Each type comes out as its driver maps it (numeric: a string from ADBC, decimals from
   asyncpg and psycopg2); only the row counts are compared.
2. **SQL writes** of ``--write-rows`` rows (the first rows of ``narrow``, already in
   memory): ``sql_write(..., mode="copy")`` and ``mode="insert"`` (an Arrow table) against
   asyncpg's ``copy_records_to_table`` and ``executemany`` (a list of tuples, built
   outside the timing: asyncpg's best case).
3. **HTTP** against ``rayflow.examples.connectors_etl.serve`` (``POST /score``, a JSON list
   of ``{"id", "x"}`` in, the list of ``{"id", "score"}`` out; a ``ThreadingHTTPServer``
   in a daemon thread, HTTP/1.1 keep-alive), on
   ``--items`` items: ``http_call`` pooled and batched (``batch_size=100``,
   ``concurrency=4``), pooled without batching (``batch_size=None``: one request per item,
   the item a one-element list, ``concurrency=4``); the baseline a fresh ``httpx.Client()``
   per item (what ``httpx.post`` does), sequential, and the same on 4 threads. A fresh
   client costs ~30 ms here (most of it its TLS context, made even for plain http), so the
   baseline sides send the first ``--baseline-items`` items only (rates per item compare;
   the whole ``--items`` would take minutes per repetition). Every side's results are checked.

Targets (reported, never failing the run): SQL read (``rayflow``) >= 1.0x ``asyncpg_arrow``
and >= 1.0x ``pandas`` on each table; HTTP pooled+batched >= 5x a new client per call
(judged against the sequential baseline; the ratio to the 4-thread one is shown beside it).
Writes ``benchmarks/results/connectors.json``::

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/connectors.py
    PYTHONPATH=benchmarks .venv/bin/python benchmarks/connectors.py --rows 100000 --wide-rows 20000 \\
        --write-rows 20000 --items 400 --reps 1      # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import ray
from reporting import write_report

import rayflow as rf
from rayflow.connect.http import http_call
from rayflow.connect.sql import pool
from rayflow.connect.sql.read import SqlQuery, read_table
from rayflow.connect.sql.write import sql_write

RESULTS = Path(__file__).resolve().parent / "results" / "connectors.json"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
HTTP_BATCH = 100
HTTP_CONCURRENCY = 4
TARGETS = {"sql_read_over_asyncpg_arrow": 1.0, "sql_read_over_pandas": 1.0, "http_batched_over_new_client": 5.0}

READ_SIDES = ("rayflow", "rayflow_wf_ray", "rayflow_wf_local", "asyncpg_arrow", "asyncpg_fetch", "pandas")
WRITE_SIDES = ("rayflow_copy", "asyncpg_copy", "rayflow_insert", "asyncpg_executemany")
HTTP_SIDES = ("rayflow_batched", "rayflow_pooled", "new_client", "new_client_4_threads")


# -- the database --------------------------------------------------------------------------------


def tables_ddl(schema: str, rows: int, wide_rows: int) -> list[str]:
    return [
        f"CREATE SCHEMA {schema}",
        f"CREATE TABLE {schema}.narrow (id bigint, customer int, amount float8, note text)",
        f"INSERT INTO {schema}.narrow SELECT g, (g % 9973)::int, g * 0.25, 'note ' || g "
        f"FROM generate_series(1, {rows}) g",
        f"CREATE TABLE {schema}.wide (id bigint, i4 int, i2 smallint, f8 float8, f4 real, num numeric(12, 2), "
        f"t text, v varchar(32), b bool, d date, ts timestamp, tstz timestamptz)",
        f"INSERT INTO {schema}.wide SELECT g, (g % 100000)::int, (g % 30000)::smallint, g / 7.0, (g % 1000) / 3.0, "
        f"(g % 100000) / 100.0, md5(g::text), 'v-' || (g % 5000), g % 2 = 0, DATE '2026-01-01' + (g % 365), "
        f"TIMESTAMP '2026-01-01' + g * INTERVAL '1 second', TIMESTAMPTZ '2026-01-01 00:00+00' + g * INTERVAL '1 minute' "
        f"FROM generate_series(1, {wide_rows}) g",
        f"CREATE TABLE {schema}.sink (id bigint, customer int, amount float8, note text)",
        f"ANALYZE {schema}.narrow",
        f"ANALYZE {schema}.wide",
    ]


class Loop:
    """One asyncio loop on the main thread for the asyncpg sides (``run`` waits for a coroutine)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.loop.close()


def records_to_arrow(records: list) -> pa.Table:
    """asyncpg's records as a pyarrow.Table, one column at a time (the types inferred)."""
    if not records:
        return pa.table({})
    names = list(records[0].keys())
    columns = list(zip(*records, strict=True))
    return pa.table({name: pa.array(col) for name, col in zip(names, columns, strict=True)})


# -- measurement ---------------------------------------------------------------------------------


def timed(fn: Callable[[], int]) -> dict:
    t0 = time.perf_counter()
    n = fn()
    return {"seconds": time.perf_counter() - t0, "n": n}


def interleaved(sides: dict[str, Callable[[], int]], reps: int, before: Callable[[], None] | None = None,
                label: str = "") -> dict[str, list[dict]]:
    """Each side ``reps`` times, the order rotating each repetition; ``before`` (untimed) before each."""
    names = list(sides)
    samples: dict[str, list[dict]] = {n: [] for n in names}
    for rep in range(reps):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            if before is not None:
                before()
            samples[name].append(timed(sides[name]))
        print(f"  {label} rep {rep + 1}/{reps}: " + ", ".join(
            f"{n} {samples[n][-1]['seconds']:.2f} s" for n in names), flush=True)
    return samples


def summary(samples: list[dict], unit: str) -> dict:
    seconds = statistics.median(s["seconds"] for s in samples)
    n = samples[0]["n"]
    return {unit: n, "median_seconds": round(seconds, 4), f"{unit}_per_s": round(n / seconds, 1),
            "seconds": [round(s["seconds"], 4) for s in samples]}


# -- the cases ---------------------------------------------------------------------------------------


def read_case(name: str, query: str, expected: int, args, loop: Loop, apg, engine) -> dict:
    import pandas as pd

    @rf.workflow(name=f"connectors_read_{name}")
    def read_wf():
        return rf.sql(args.pg_url, query)

    def check(n: int) -> int:
        if n != expected:
            raise RuntimeError(f"{name}: {n} rows, expected {expected}")
        return n

    def rayflow_read() -> int:
        return check(read_table(SqlQuery(args.pg_url, query)).num_rows)

    def wf_ray() -> int:
        out = rf.run(read_wf, executor="ray", progress=False)
        return check(out.num_rows)

    def wf_local() -> int:
        out = rf.run(read_wf, executor="local", progress=False)
        return check(out.num_rows)

    def asyncpg_arrow() -> int:
        return check(records_to_arrow(loop.run(apg.fetch(query))).num_rows)

    def asyncpg_fetch() -> int:
        return check(len(loop.run(apg.fetch(query))))

    def pandas_read() -> int:
        return check(pa.Table.from_pandas(pd.read_sql(query, engine), preserve_index=False).num_rows)

    sides = {"rayflow": rayflow_read, "rayflow_wf_ray": wf_ray, "rayflow_wf_local": wf_local,
             "asyncpg_arrow": asyncpg_arrow, "asyncpg_fetch": asyncpg_fetch, "pandas": pandas_read}
    for fn in sides.values():   # untimed: pools filled, Ray workers started, code imported
        fn()
    samples = interleaved(sides, args.reps, label=f"read {name}")
    out = {side: summary(samples[side], "rows") for side in READ_SIDES}
    rf_rate = out["rayflow"]["rows_per_s"]
    out["ratios"] = {f"rayflow_over_{b}": round(rf_rate / out[b]["rows_per_s"], 3)
                     for b in READ_SIDES if b != "rayflow"}
    out["ratios"]["wf_ray_over_rayflow"] = round(out["rayflow_wf_ray"]["rows_per_s"] / rf_rate, 3)
    out["ratios"]["wf_local_over_rayflow"] = round(out["rayflow_wf_local"]["rows_per_s"] / rf_rate, 3)
    return out


def write_case(args, loop: Loop, apg, schema: str) -> dict:
    data = read_table(SqlQuery(args.pg_url, f"SELECT * FROM {schema}.narrow ORDER BY id LIMIT {args.write_rows}"))
    records = [tuple(r.values()) for r in data.to_pylist()]
    columns = list(data.column_names)
    sink = f"{schema}.sink"
    insert = f"INSERT INTO {sink} ({', '.join(columns)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(columns)))})"
    n = data.num_rows

    def written() -> int:
        return loop.run(apg.fetchval(f"SELECT count(*) FROM {sink}"))

    def rayflow(mode: str) -> Callable[[], int]:
        def go() -> int:
            rows = sum(sql_write(data, url=args.pg_url, table=sink, mode=mode).column("rows").to_pylist())
            if rows != n or written() != n:
                raise RuntimeError(f"sql_write {mode}: {rows} rows written, expected {n}")
            return n
        return go

    def asyncpg_copy() -> int:
        loop.run(apg.copy_records_to_table("sink", records=records, columns=columns, schema_name=schema))
        if written() != n:
            raise RuntimeError("copy_records_to_table: wrong row count")
        return n

    def asyncpg_executemany() -> int:
        loop.run(apg.executemany(insert, records))
        if written() != n:
            raise RuntimeError("executemany: wrong row count")
        return n

    def empty() -> None:
        loop.run(apg.execute(f"TRUNCATE {sink}"))

    sides = {"rayflow_copy": rayflow("copy"), "asyncpg_copy": asyncpg_copy,
             "rayflow_insert": rayflow("insert"), "asyncpg_executemany": asyncpg_executemany}
    empty()
    sql_write(data.slice(0, 10), url=args.pg_url, table=sink, mode="copy")   # untimed: the column cache
    samples = interleaved(sides, args.reps, before=empty, label="write")
    empty()
    out = {side: summary(samples[side], "rows") for side in WRITE_SIDES}
    out["ratios"] = {"copy_rayflow_over_asyncpg": round(out["rayflow_copy"]["rows_per_s"]
                                                       / out["asyncpg_copy"]["rows_per_s"], 3),
                     "insert_rayflow_over_asyncpg": round(out["rayflow_insert"]["rows_per_s"]
                                                         / out["asyncpg_executemany"]["rows_per_s"], 3)}
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_case(args) -> dict:
    import httpx

    from rayflow.examples.connectors_etl import serve

    server = serve(free_port())
    thread = threading.Thread(target=server.serve_forever, name="score-endpoint", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/score"
    items = [{"id": i, "x": float(i)} for i in range(args.items)]
    few = items[:min(args.baseline_items, args.items)]    # the new-client sides' items
    requests = {"rayflow_batched": -(-len(items) // HTTP_BATCH), "rayflow_pooled": len(items),
                "new_client": len(few), "new_client_4_threads": len(few)}

    def check(results: list, side: str) -> int:
        if results != [{"id": i, "score": round(i * 0.9 + 1.0, 4)} for i in range(len(results))]:
            raise RuntimeError(f"http {side}: results differ from the endpoint's scores")
        return len(results)

    def batched() -> int:
        return check(http_call(items, method="POST", url=url, batch_size=HTTP_BATCH,
                               concurrency=HTTP_CONCURRENCY), "rayflow_batched")

    def pooled() -> int:
        out = http_call([[item] for item in items], method="POST", url=url, batch_size=None,
                        concurrency=HTTP_CONCURRENCY)
        return check([r for answer in out for r in answer], "rayflow_pooled")

    def one_fresh(item: dict) -> dict:
        with httpx.Client() as client:
            r = client.post(url, json=[item])
            r.raise_for_status()
            return r.json()[0]

    def fresh(batch: list = few) -> int:
        return check([one_fresh(item) for item in batch], "new_client")

    def fresh_threads() -> int:
        with ThreadPoolExecutor(HTTP_CONCURRENCY) as ex:
            return check(list(ex.map(one_fresh, few)), "new_client_4_threads")

    sides = {"rayflow_batched": batched, "rayflow_pooled": pooled, "new_client": fresh,
             "new_client_4_threads": fresh_threads}
    try:
        batched(), pooled(), fresh(few[:20])   # untimed: the pooled client made, httpx imported
        samples = interleaved(sides, args.reps, label="http")
    finally:
        server.shutdown()
        server.server_close()
    out = {}
    for side in HTTP_SIDES:
        s = summary(samples[side], "items")
        s["requests"] = requests[side]
        s["requests_per_s"] = round(requests[side] / s["median_seconds"], 1)
        out[side] = s
    rate = {side: out[side]["items_per_s"] for side in HTTP_SIDES}
    out["ratios"] = {"batched_over_new_client": round(rate["rayflow_batched"] / rate["new_client"], 2),
                     "batched_over_new_client_4_threads": round(rate["rayflow_batched"] / rate["new_client_4_threads"], 2),
                     "pooled_over_new_client": round(rate["rayflow_pooled"] / rate["new_client"], 2),
                     "pooled_over_new_client_4_threads": round(rate["rayflow_pooled"] / rate["new_client_4_threads"], 2)}
    return out


# -- main ------------------------------------------------------------------------------------------


def targets_of(report: dict) -> dict:
    out = {}
    for table in ("narrow", "wide"):
        r = report["read"][table]["ratios"]
        for key, baseline in (("sql_read_over_asyncpg_arrow", "asyncpg_arrow"), ("sql_read_over_pandas", "pandas")):
            ratio = r[f"rayflow_over_{baseline}"]
            out[f"{key}_{table}"] = {"ratio": ratio, "target": TARGETS[key], "met": ratio >= TARGETS[key]}
    ratio = report["http"]["ratios"]["batched_over_new_client"]
    t = TARGETS["http_batched_over_new_client"]
    out["http_batched_over_new_client"] = {"ratio": ratio, "target": t, "met": ratio >= t}
    return out


def print_tables(report: dict) -> None:
    print(f"\nSQL -> Arrow ({report['settings']['reps']} reps, medians)")
    print(f"| {'table':<6} | {'side':<17} | {'rows':>9} | {'seconds':>7} | {'rows/s':>11} | {'rayflow / side':>14} |")
    print(f"|{'-' * 8}|{'-' * 19}|{'-' * 11}|{'-' * 9}|{'-' * 13}|{'-' * 16}|")
    for table in ("narrow", "wide"):
        r = report["read"][table]
        for side in READ_SIDES:
            ratio = "" if side == "rayflow" else f"{r['ratios'][f'rayflow_over_{side}']:.2f}x"
            print(f"| {table:<6} | {side:<17} | {r[side]['rows']:>9,} | {r[side]['median_seconds']:>7.3f} | "
                  f"{r[side]['rows_per_s']:>11,.0f} | {ratio:>14} |")
    w = report["write"]
    print(f"\nSQL writes ({w['rayflow_copy']['rows']:,} rows)")
    print(f"| {'side':<20} | {'seconds':>7} | {'rows/s':>10} |")
    print(f"|{'-' * 22}|{'-' * 9}|{'-' * 12}|")
    for side in WRITE_SIDES:
        print(f"| {side:<20} | {w[side]['median_seconds']:>7.3f} | {w[side]['rows_per_s']:>10,.0f} |")
    print(f"copy: rayflow / asyncpg {w['ratios']['copy_rayflow_over_asyncpg']:.2f}x; "
          f"insert: rayflow / asyncpg {w['ratios']['insert_rayflow_over_asyncpg']:.2f}x")
    h = report["http"]
    print(f"\nHTTP ({h['rayflow_batched']['items']:,} items; new client per call: {h['new_client']['items']:,})")
    print(f"| {'side':<21} | {'items':>6} | {'requests':>8} | {'seconds':>7} | {'requests/s':>10} | {'items/s':>9} |")
    print(f"|{'-' * 23}|{'-' * 8}|{'-' * 10}|{'-' * 9}|{'-' * 12}|{'-' * 11}|")
    for side in HTTP_SIDES:
        s = h[side]
        print(f"| {side:<21} | {s['items']:>6,} | {s['requests']:>8,} | {s['median_seconds']:>7.3f} | {s['requests_per_s']:>10,.0f} | "
              f"{s['items_per_s']:>9,.0f} |")
    print("ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in h["ratios"].items()))
    print("\ntargets:")
    for key, t in report["targets"].items():
        print(f"  {key}: {t['ratio']:.2f}x (target >= {t['target']:g}x): {'met' if t['met'] else 'MISSED'}")
    missed = [k for k, t in report["targets"].items() if not t["met"]]
    print("missed: " + (", ".join(missed) if missed else "none"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL to run against (default {PG_URL})")
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the narrow table (default 1,000,000)")
    p.add_argument("--wide-rows", type=int, default=100_000, help="rows of the 12-column table (default 100,000)")
    p.add_argument("--write-rows", type=int, default=200_000, help="rows per write (default 200,000)")
    p.add_argument("--items", type=int, default=2_000, help="HTTP items of the rayflow sides (default 2,000)")
    p.add_argument("--baseline-items", type=int, default=500,
                   help="HTTP items of the new-client-per-call sides (default 500; at most --items)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.write_rows > args.rows:
        p.error("--write-rows takes the first rows of the narrow table: at most --rows")

    import asyncpg
    import sqlalchemy

    schema = f"rayflow_bench_conn_{secrets.token_hex(4)}"
    loop = Loop()
    apg = engine = None
    started = time.perf_counter()
    try:
        apg = loop.run(asyncpg.connect(args.pg_url))
        t0 = time.perf_counter()
        for statement in tables_ddl(schema, args.rows, args.wide_rows):
            loop.run(apg.execute(statement))
        print(f"schema {schema}: narrow {args.rows:,} rows, wide {args.wide_rows:,} rows "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)
        engine = sqlalchemy.create_engine(args.pg_url.replace("postgresql://", "postgresql+psycopg2://", 1))
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
        rf.init(store="memory://")
        report: dict = {"benchmark": "connectors",
                        "settings": {"rows": args.rows, "wide_rows": args.wide_rows, "write_rows": args.write_rows,
                                     "items": args.items,
                                     "baseline_items": min(args.baseline_items, args.items), "reps": args.reps, "http_batch_size": HTTP_BATCH,
                                     "http_concurrency": HTTP_CONCURRENCY, "ray_num_cpus": 2,
                                     "pg_server": loop.run(apg.fetchval("SHOW server_version"))},
                        "read": {}}
        for table, n in (("narrow", args.rows), ("wide", args.wide_rows)):
            report["read"][table] = read_case(table, f"SELECT * FROM {schema}.{table}", n, args, loop, apg, engine)
        report["write"] = write_case(args, loop, apg, schema)
        report["http"] = http_case(args)
        report["targets"] = report_targets = targets_of(report)
        report["missed"] = [k for k, t in report_targets.items() if not t["met"]]
        report["wall_s"] = round(time.perf_counter() - started, 1)
        report["versions"] = versions()
        print_tables(report)
        write_report(args.out, report)
    finally:
        pool.close_all()
        if ray.is_initialized():
            ray.shutdown()
        if engine is not None:
            engine.dispose()
        try:
            if apg is None or apg.is_closed():
                apg = loop.run(asyncpg.connect(args.pg_url))
            loop.run(apg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            loop.run(apg.close())
        finally:
            loop.close()
    return 0


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in ("asyncpg", "httpx", "pandas", "SQLAlchemy", "psycopg2-binary", "adbc-driver-postgresql"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


if __name__ == "__main__":
    sys.exit(main())
