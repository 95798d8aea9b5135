"""PostgreSQL run store: the operations PostgresStore runs on one pooled connection.

Owns the coroutines behind PostgresStore's calls: the plain ones (a statement, its rows,
its value), a run created (insert-if-new) with its components, and the writer cycle, fenced by the
runs' lease epochs (``RunStore.write_batch``). Must not import asyncpg (a connection
arrives as an argument) nor hold a transaction open past the coroutine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rayflow.core.errors import RunExists
from rayflow.store import pgschema as sql
from rayflow.store.port import Lease

# (run_id, UPDATE statement, its arguments) of one run's update in a writer cycle
RunUpdate = tuple[str, str, list[Any]]


def rows_changed(status: str) -> int:
    """The row count of a command status such as ``UPDATE 1``."""
    return int(status.rsplit(" ", 1)[-1])


def leases(rows: Sequence[Any], owner: str) -> list[Lease]:
    """The leases of claimed rows (run_id, lease_epoch, created_at), oldest run first."""
    ordered = sorted(rows, key=lambda r: (r["created_at"], r["run_id"]))
    return [Lease(r["run_id"], owner, int(r["lease_epoch"])) for r in ordered]


async def execute(conn: Any, query: str, *args: Any) -> str:
    return await conn.execute(query, *args)


async def fetch(conn: Any, query: str, *args: Any) -> list[Any]:
    return await conn.fetch(query, *args)


async def fetchval(conn: Any, query: str, *args: Any) -> Any:
    return await conn.fetchval(query, *args)


async def insert_then_fetch(conn: Any, insert: str, insert_args: Sequence[Any], query: str,
                            *args: Any) -> list[Any]:
    """``insert`` (ON CONFLICT DO NOTHING), then ``query`` in a statement of its own: its
    snapshot sees a row a concurrent insert committed while this one waited for it."""
    await conn.execute(insert, *insert_args)
    return await conn.fetch(query, *args)


async def delete_runs(conn: Any, run_ids: list[str], finished: list[str]) -> int:
    """Delete the finished runs among ``run_ids`` and their rows, in one transaction."""
    async with conn.transaction():
        gone = [row[0] for row in await conn.fetch(sql.DELETE_RUNS, run_ids, finished)]
        if gone:
            for query in sql.DELETE_RUN_ROWS:
                await conn.execute(query, gone)
    return len(gone)


async def insert_run_once(conn: Any, request: Sequence[Any], run_arrays: list[list[Any]]) -> tuple[str, str, bool]:
    """The key (ON CONFLICT DO NOTHING; a concurrent holder of the key waits for the first
    to commit), then the run only if the key is this request's, in one transaction."""
    async with conn.transaction():
        status = await conn.execute(sql.REMEMBER_REQUEST, *request)
        if rows_changed(status) == 0:
            kept = await conn.fetchrow(sql.RECALL_REQUEST, request[0])
            return kept["run_id"], kept["body_hash"], False
        created = rows_changed(await conn.execute(sql.INSERT_NEW_RUN, *run_arrays)) > 0
        return request[2], request[1], created


async def create_run(conn: Any, run_arrays: list[list[Any]], comp_arrays: list[list[Any]] | None) -> None:
    """The run only if its id is new (RunExists, nothing changed, when it is not), then its
    components, in one transaction."""
    async with conn.transaction():
        if rows_changed(await conn.execute(sql.INSERT_NEW_RUN, *run_arrays)) == 0:
            run_id = run_arrays[0][0]
            raise RunExists(f"run {run_id} already exists", run_id=run_id)
        if comp_arrays is not None:
            await conn.execute(sql.UPSERT_COMPONENTS, *comp_arrays)


async def write_batch(conn: Any, comp_arrays: list[list[Any]] | None, event_arrays: list[list[Any]] | None,
                      updates: list[RunUpdate], fences: dict[str, int]) -> set[str]:
    """Components, events, then run updates, in one transaction. A fenced run's rows are
    locked first (``FOR UPDATE``, key order) and its epoch read under the lock: when it
    is not the fence, the run's records are left out and its id returned."""
    async with conn.transaction():
        dropped: set[str] = set()
        if fences:
            rows = await conn.fetch(sql.LOCK_FENCED, sorted(fences))
            epochs = {r["run_id"]: r["lease_epoch"] for r in rows}
            dropped = {run_id for run_id, epoch in fences.items() if epochs.get(run_id) != epoch}
        skip = sorted(dropped)
        if comp_arrays is not None:
            if skip:
                await conn.execute(sql.UPSERT_COMPONENTS_SKIPPING, *comp_arrays, skip)
            else:
                await conn.execute(sql.UPSERT_COMPONENTS, *comp_arrays)
        if event_arrays is not None:
            if skip:
                await conn.execute(sql.INSERT_EVENTS_SKIPPING, *event_arrays, skip)
            else:
                await conn.execute(sql.INSERT_EVENTS, *event_arrays)
        for run_id, query, args in updates:
            if run_id not in dropped:
                await conn.execute(query, *args)
        return dropped
