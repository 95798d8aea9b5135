"""PostgreSQL run store: how to write a batch, and what a component-history index costs.

Compares, in one process against one server, with medians of ``--reps`` repetitions:

1. batching: a batch of ``--rows`` component records (inserted, then updated) and of
   events, written by the store's one ``INSERT ... SELECT * FROM unnest($1::text[], ...)``
   statement, against ``executemany`` of a one-row statement in one transaction;
2. the index left out of the schema: the lifecycle of ``--rows`` components (created
   PENDING, then RUNNING, then SUCCEEDED with ended_at set), with and without an index on
   (component_id, ended_at), and the share of updates PostgreSQL could do HOT.

    python benchmarks/pgstore.py [--url postgresql://postgres@127.0.0.1:5432/test] [--rows 2000]

Each side works in its own throwaway schema, dropped at the end. Writes
``benchmarks/results/pgstore.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reporting import write_report

from rayflow.store import pgschema as sql
from rayflow.store.port import ComponentRecord, EventRecord, RunRecord
from rayflow.store.postgres import PostgresStore

RESULTS = Path(__file__).resolve().parent / "results" / "pgstore.json"


def components(run_id: str, n: int, state: str, ended: float | None = None) -> list[ComponentRecord]:
    return [ComponentRecord(run_id=run_id, component_id=f"c{i:05d}", state=state, attempts=1,
                            submitted_at=1.0, started_at=2.0, ended_at=ended, node_id="node-1",
                            resources={"num_cpus": 1, "memory": 2**28}, upstream=[f"c{i - 1:05d}"])
            for i in range(n)]


def events(run_id: str, n: int) -> list[EventRecord]:
    return [EventRecord(run_id=run_id, seq=i + 1, ts=float(i), kind="component_state",
                        component_id=f"c{i:05d}", data={"to": "RUNNING"}) for i in range(n)]


def row_sql(table: sql.Table, conflict: str) -> str:
    marks = ", ".join(f"${i}" for i in range(1, len(table.columns) + 1))
    return f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({marks}) {conflict}"


async def _executemany(conn: Any, query: str, rows: list[list[Any]]) -> None:
    async with conn.transaction():
        await conn.executemany(query, rows)


def executemany_writer(store: PostgresStore) -> dict[str, Callable[[list[Any]], None]]:
    """The same writes as the store's, as executemany of a one-row statement."""
    upsert = row_sql(sql.COMPONENTS, sql.UPSERT_COMPONENTS[sql.UPSERT_COMPONENTS.index("ON CONFLICT"):])
    insert = row_sql(sql.EVENTS, sql.INSERT_EVENTS[sql.INSERT_EVENTS.index("ON CONFLICT"):])
    return {
        "components": lambda recs: store._write(_executemany, upsert, [sql.COMPONENTS.encode(r) for r in recs]),
        "events": lambda recs: store._write(_executemany, insert, [sql.EVENTS.encode(r) for r in recs]),
    }


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def batching(store: PostgresStore, n: int, reps: int) -> dict[str, dict[str, float]]:
    many = executemany_writer(store)
    sides = {
        "unnest": {"components": store.upsert_components, "events": store.append_events},
        "executemany": many,
    }
    times: dict[str, dict[str, list[float]]] = {s: {"insert": [], "update": [], "events": []} for s in sides}
    for rep in range(reps):
        for side, write in sides.items():   # interleaved, so drift hits both alike
            run_id = f"{side}-{rep}"
            store.create_run(RunRecord(run_id=run_id, name="bench"), [])
            batches = {"insert": ("components", components(run_id, n, "RUNNING")),
                       "update": ("components", components(run_id, n, "SUCCEEDED", 3.0)),
                       "events": ("events", events(run_id, n))}
            for case, (kind, records) in batches.items():   # encoding the records is timed
                times[side][case].append(timed(lambda w=write[kind], records=records: w(records)))
            assert len(store.get_components(run_id)) == n and len(store.get_events(run_id)) == n
    return {s: {k: statistics.median(v) for k, v in t.items()} for s, t in times.items()}


async def _hot_share(conn: Any) -> tuple[int, int]:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    row = await conn.fetchrow("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                              "WHERE relname = 'components' AND schemaname = current_schema()")
    return int(row[0]), int(row[1])


def lifecycle(store: PostgresStore, n: int, reps: int) -> dict[str, float]:
    """Create n components PENDING, then RUNNING, then SUCCEEDED: seconds and HOT share."""
    spent = []
    for rep in range(reps):
        run_id = f"life-{rep}"
        t0 = time.perf_counter()
        store.create_run(RunRecord(run_id=run_id, name="bench"), components(run_id, n, "PENDING"))
        store.upsert_components(components(run_id, n, "RUNNING"))
        store.upsert_components(components(run_id, n, "SUCCEEDED", ended=3.0))
        spent.append(time.perf_counter() - t0)
    time.sleep(1.1)
    updated, hot = store._read(_hot_share)
    return {"seconds": statistics.median(spent), "updates": updated, "hot_updates": hot,
            "hot_share": hot / updated if updated else 0.0}


async def _add_history_index(conn: Any) -> None:
    await conn.execute("CREATE INDEX components_component_ended ON components (component_id, ended_at)")


async def _drop_schema(conn: Any, schema: str) -> None:
    await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def with_store(url: str, fn: Callable[[PostgresStore], Any], prepare: Callable[[PostgresStore], None] | None = None) -> Any:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    sep = "&" if "?" in url else "?"
    store = PostgresStore(f"{url}{sep}schema={schema}")
    try:
        if prepare:
            prepare(store)
        return fn(store)
    finally:
        store._write(_drop_schema, schema)
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()

    batch = with_store(args.url, lambda s: batching(s, args.rows, args.reps))
    print(f"\nbatch of {args.rows} rows, median of {args.reps} (seconds)")
    print(f"{'side':<12} {'insert':>8} {'update':>8} {'events':>8}")
    for side, t in batch.items():
        print(f"{side:<12} {t['insert']:8.4f} {t['update']:8.4f} {t['events']:8.4f}")
    ratio = {k: batch["executemany"][k] / batch["unnest"][k] for k in batch["unnest"]}
    print("executemany / unnest: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratio.items()))

    without = with_store(args.url, lambda s: lifecycle(s, args.rows, args.reps))
    indexed = with_store(args.url, lambda s: lifecycle(s, args.rows, args.reps),
                         prepare=lambda s: s._write(_add_history_index))
    print(f"\nlifecycle of {args.rows} components (create, RUNNING, SUCCEEDED), median of {args.reps}")
    for name, r in (("schema as built", without), ("+ (component_id, ended_at)", indexed)):
        print(f"{name:<28} {r['seconds']:.4f} s  HOT updates {r['hot_updates']}/{r['updates']} ({r['hot_share']:.0%})")
    print(f"with the index / without: {indexed['seconds'] / without['seconds']:.2f}x")

    write_report(RESULTS, {"rows": args.rows, "reps": args.reps, "batching_s": batch,
                           "executemany_over_unnest": ratio,
                           "lifecycle": {"without_history_index": without, "with_history_index": indexed}})


if __name__ == "__main__":
    main()
