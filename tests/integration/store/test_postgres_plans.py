"""The PostgreSQL store's hot reads use an index on a store of realistic size.

Loads 20,000 runs, 1,000,000 component rows (50 a run) and 1,000,000 events into a
schema of this test's own with COPY, ANALYZEs, then EXPLAINs each read that PostgresStore
runs (the SQL text of rayflow.store.pgschema) and asserts the plan scans an index, never
the whole table. There is no component-history read to check: see pgschema on why that
index is left out.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import pytest

from rayflow.store import pgschema as sql
from rayflow.store.port import ComponentRecord, EventRecord, RunRecord
from rayflow.store.urls import open_store

N_RUNS = 20_000
PER_RUN = 50                    # components and events per run: 1,000,000 rows each
INDEX_SCANS = {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}


def rows(table: sql.Table, template: Any, varying: tuple[str, ...], values: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows of ``table``: ``template`` encoded by the store's codec, with the ``varying``
    columns taken from each tuple of ``values`` (fast enough for a million rows)."""
    base = table.encode(template)
    at = [table.columns.index(c) for c in varying]
    out = []
    for vals in values:
        row = base.copy()
        for i, v in zip(at, vals, strict=True):
            row[i] = v
        out.append(tuple(row))
    return out


def run_rows() -> list[tuple[Any, ...]]:
    statuses = ["SUCCEEDED"] * 90 + ["FAILED"] * 5 + ["CANCELLED"] * 3 + ["RUNNING"] * 2
    template = RunRecord(run_id="", name="etl", target="pkg.mod:flow", inputs={"n": 3}, owner="host:1",
                         n_components=PER_RUN)
    return rows(sql.RUNS, template, ("run_id", "status", "created_at"),
                ((f"run-{i:06d}", statuses[i % 100], 1.7e9 + i) for i in range(N_RUNS)))


def component_rows() -> list[tuple[Any, ...]]:
    template = ComponentRecord(run_id="", component_id="", state="SUCCEEDED", attempts=1, queued_s=0.5,
                               duration_s=1.0, node_id="node-1", worker_id="worker-1",
                               resources={"num_cpus": 1, "memory": 2**28}, cpu_s=0.9, peak_rss_bytes=2**27)
    return rows(sql.COMPONENTS, template, ("run_id", "component_id", "ended_at", "upstream"),
                ((f"run-{r:06d}", f"c{c:03d}", 1.7e9 + r + 2, f'["c{c - 1:03d}"]')
                 for r in range(N_RUNS) for c in range(PER_RUN)))


def event_rows() -> list[tuple[Any, ...]]:
    template = EventRecord(run_id="", seq=0, ts=0.0, kind="component_state", data={"to": "SUCCEEDED"})
    return rows(sql.EVENTS, template, ("run_id", "seq", "ts", "component_id"),
                ((f"run-{r:06d}", s, 1.7e9 + r + s / 100, f"c{s - 1:03d}")
                 for r in range(N_RUNS) for s in range(1, PER_RUN + 1)))


# name: (SQL, arguments, the index it should read; None: any index will do)
HOT_READS: dict[str, tuple[str, tuple[Any, ...], str | None]] = {
    "list runs by a rare status, newest first": (sql.LIST_RUNS_BY_STATUS, ("RUNNING", 100), "runs_status_created"),
    # 90% of the runs: walking the time index and filtering is as good, the planner may pick either
    "list runs by the common status, newest first": (sql.LIST_RUNS_BY_STATUS, ("SUCCEEDED", 100), None),
    "list runs, newest first": (sql.LIST_RUNS, (100,), "runs_created"),
    "one run": (sql.GET_RUN, ("run-012345",), "runs_pkey"),
    "a run's components": (sql.GET_COMPONENTS, ("run-012345",), "components_pkey"),
    "events after a cursor": (sql.GET_EVENTS, ("run-012345", 10, 10_000), "events_pkey"),
    "is cancel requested": (sql.CANCEL_REQUESTED, ("run-012345",), "runs_pkey"),
}


def scans(plan: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(node type, index name) of every node of an EXPLAIN (FORMAT JSON) plan."""
    here = (plan["Node Type"], plan.get("Index Name"))
    return [here, *(s for child in plan.get("Plans", []) for s in scans(child))]


async def load_and_explain(url: str, schema: str) -> dict[str, list[tuple[str, str | None]]]:
    import asyncpg

    conn = await asyncpg.connect(url, server_settings={"search_path": schema}, timeout=10)
    try:
        for table, rows in (("runs", run_rows()), ("components", component_rows()), ("events", event_rows())):
            columns = getattr(sql, table.upper()).columns
            await conn.copy_records_to_table(table, records=rows, columns=list(columns), schema_name=schema)
        await conn.execute("ANALYZE runs, components, events")
        assert await conn.fetchval("SELECT count(*) FROM components") == N_RUNS * PER_RUN
        plans = {}
        for name, (query, args, _) in HOT_READS.items():
            text = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)
            plans[name] = scans(json.loads(text)[0]["Plan"])
        return plans
    finally:
        await conn.close()


@pytest.mark.slow
def test_hot_reads_scan_an_index_on_a_million_components(postgres_server: str, postgres_schema: str,
                                                        postgres_url: str) -> None:
    open_store(postgres_url).close()   # the schema as the store's migrations build it
    plans = asyncio.run(load_and_explain(postgres_server, postgres_schema))
    for name, nodes in plans.items():
        types = {t for t, _ in nodes}
        assert INDEX_SCANS & types and "Seq Scan" not in types, f"{name}: {nodes}"
        assert "Sort" not in types, f"{name} sorts instead of reading the index in order: {nodes}"
        expected = HOT_READS[name][2]
        assert expected is None or expected in {index for _, index in nodes}, f"{name}: {nodes}"
