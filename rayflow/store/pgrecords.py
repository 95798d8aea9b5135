"""PostgreSQL run store: the server's records (run pages, tokens, idempotency keys,
workflows, live servers), as a part of PostgresStore.

Owns the RunStore methods under "the server's records" for PostgresStore, which mixes
this class in and supplies ``_read`` and ``_write`` (its retried calls on a pooled
connection). Must not import asyncpg; the SQL text is in ``pgschema``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rayflow.store import pgleases as ops
from rayflow.store import pgschema as sql
from rayflow.store.port import (
    TERMINAL_RUN_STATES,
    RunRecord,
    ServerRecord,
    TokenRecord,
    WorkflowRecord,
)


class ServerRecords:
    """The server's records of a PostgresStore (see the RunStore port for each method)."""

    _read: Callable[..., Any]
    _write: Callable[..., Any]

    def list_runs_page(self, *, status: str | None = None, name: str | None = None, limit: int = 100,
                       before: tuple[float, str] | None = None, since: float | None = None) -> list[RunRecord]:
        """Newest first by (created_at, run_id); ``before``: a row-value cursor."""
        where, args = sql.runs_where(status=status, name=name, since=since, before=before)
        query = f"{sql.RUNS.select}{where} ORDER BY created_at DESC, run_id DESC LIMIT ${len(args) + 1}"
        return [sql.RUNS.decode(r) for r in self._read(ops.fetch, query, *args, max(limit, 0))]

    def count_runs(self, *, name: str | None = None, since: float | None = None) -> dict[str, int]:
        where, args = sql.runs_where(name=name, since=since)
        rows = self._read(ops.fetch, f"SELECT status, COUNT(*) FROM runs{where} GROUP BY status", *args)
        return {str(r[0]): int(r[1]) for r in rows}

    def create_token(self, token: TokenRecord) -> None:
        self._write(ops.execute, sql.INSERT_TOKEN, *sql.TOKENS.encode(token))

    def get_token(self, token_hash: str) -> TokenRecord | None:
        rows = self._read(ops.fetch, sql.GET_TOKEN, token_hash)
        return sql.TOKENS.decode(rows[0]) if rows else None

    def list_tokens(self) -> list[TokenRecord]:
        return [sql.TOKENS.decode(r) for r in self._read(ops.fetch, sql.LIST_TOKENS)]

    def revoke_token(self, token_id: str, now: float) -> bool:
        return ops.rows_changed(self._write(ops.execute, sql.REVOKE_TOKEN, token_id, float(now))) > 0

    def insert_run_once(self, run: RunRecord, key: str, body_hash: str, now: float) -> tuple[str, str, bool]:
        return self._write(ops.insert_run_once, (key, body_hash, run.run_id, float(now)),
                           sql.RUNS.as_arrays([run], keep="last"))

    def delete_runs(self, run_ids: list[str]) -> int:
        return int(self._write(ops.delete_runs, list(dict.fromkeys(run_ids)), sorted(TERMINAL_RUN_STATES)))

    def put_workflow(self, workflow: WorkflowRecord) -> None:
        self._write(ops.execute, sql.PUT_WORKFLOW, *sql.WORKFLOWS.encode(workflow))

    def get_workflow(self, name: str) -> WorkflowRecord | None:
        rows = self._read(ops.fetch, sql.GET_WORKFLOW, name)
        return sql.WORKFLOWS.decode(rows[0]) if rows else None

    def list_workflows(self) -> list[WorkflowRecord]:
        return [sql.WORKFLOWS.decode(r) for r in self._read(ops.fetch, sql.LIST_WORKFLOWS)]

    def beat_server(self, server: ServerRecord) -> float:
        row = [v for c, v in zip(sql.SERVERS.columns, sql.SERVERS.encode(server), strict=True)
               if c != "heartbeat_at"]   # the database's clock
        return float(self._write(ops.fetchval, sql.BEAT_SERVER, *row))

    def list_servers(self) -> list[ServerRecord]:
        return [sql.SERVERS.decode(r) for r in self._read(ops.fetch, sql.LIST_SERVERS)]

    def remove_server(self, server_id: str) -> None:
        self._write(ops.execute, sql.REMOVE_SERVER, server_id)
