"""Connections of SQL components, pooled per URL per process.

Ray reuses a worker process for the tasks it runs, so the connections a component opened
serve the next SQL component of that worker: a node holds at most (its workers x
``RAYFLOW_SQL_POOL_MAX``) sessions per URL. ``checkout(url)`` lends an idle connection (or
opens one, waiting when the pool is full), ``checkin`` takes it back rolled back and
clean, ``discard`` drops one that failed at the connection level. Idle connections older
than ``RAYFLOW_SQL_POOL_IDLE_S`` are closed instead of lent. ``stats()`` reports, per
URL (shown redacted), the same figures as the run store's pool: size, idle, opened,
reused, discarded and waits. No ray.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from rayflow.connect.sql.drivers import Connection, connect
from rayflow.connect.sql.errors import is_connection_lost
from rayflow.connect.sql.urls import SqlUrl

POOL_MAX_VAR = "RAYFLOW_SQL_POOL_MAX"
POOL_IDLE_VAR = "RAYFLOW_SQL_POOL_IDLE_S"


def _setting(var: str, default: float) -> float:
    try:
        return float(os.environ.get(var, default))
    except ValueError:
        return default


@dataclass
class _Pool:
    url: SqlUrl
    size: int = 0
    idle: deque = field(default_factory=deque)      # (connection, idle since)
    counts: dict = field(default_factory=lambda: {"opened": 0, "reused": 0, "discarded": 0, "waits": 0})
    cond: threading.Condition = field(default_factory=threading.Condition)


_POOLS: dict[str, _Pool] = {}
_LOCK = threading.Lock()


def _pool(u: SqlUrl) -> _Pool:
    with _LOCK:
        pool = _POOLS.get(u.url)
        if pool is None:
            pool = _POOLS[u.url] = _Pool(u)
        return pool


def checkout(u: SqlUrl, timeout_s: float = 60.0) -> Connection:
    """An idle connection to ``u`` (or a new one); waits while ``RAYFLOW_SQL_POOL_MAX`` are lent."""
    pool = _pool(u)
    limit = max(1, int(_setting(POOL_MAX_VAR, 4)))
    idle_s = _setting(POOL_IDLE_VAR, 300.0)
    deadline = time.monotonic() + timeout_s
    with pool.cond:
        while True:
            while pool.idle:
                conn, since = pool.idle.pop()
                if time.monotonic() - since > idle_s:
                    pool.size -= 1
                    conn.close()
                    continue
                pool.counts["reused"] += 1
                return conn
            if pool.size < limit:
                pool.size += 1
                break
            pool.counts["waits"] += 1
            left = deadline - time.monotonic()
            if left <= 0 or not pool.cond.wait(left):
                raise TimeoutError(f"no free connection to {u.shown} within {timeout_s:g} s "
                                   f"({limit} in use; ${POOL_MAX_VAR})")
    try:
        conn = connect(u)
    except BaseException:
        with pool.cond:
            pool.size -= 1
            pool.cond.notify()
        raise
    with pool.cond:
        pool.counts["opened"] += 1
    return conn


def checkin(u: SqlUrl, conn: Connection) -> None:
    pool = _pool(u)
    try:
        conn.rollback()
    except Exception:  # noqa: BLE001 - a connection that cannot roll back is not lent again
        discard(u, conn)
        return
    with pool.cond:
        pool.idle.append((conn, time.monotonic()))
        pool.cond.notify()


def discard(u: SqlUrl, conn: Connection) -> None:
    pool = _pool(u)
    conn.close()
    with pool.cond:
        pool.size -= 1
        pool.counts["discarded"] += 1
        pool.cond.notify()


@contextlib.contextmanager
def lent(u: SqlUrl) -> Iterator[Connection]:
    """A pooled connection for the ``with`` block; one that failed at the connection level
    (``rayflow.connect.sql.errors.is_connection_lost``) leaves the pool."""
    conn = checkout(u)
    try:
        yield conn
    except BaseException as exc:
        if is_connection_lost(exc) or not isinstance(exc, Exception):
            discard(u, conn)
        else:
            checkin(u, conn)
        raise
    else:
        checkin(u, conn)


def stats_of(u: SqlUrl) -> dict:
    """``u``'s pool in this process: size, idle, and the counts since the start."""
    p = _pool(u)
    with p.cond:
        return {"size": p.size, "idle": len(p.idle), **p.counts}


def stats() -> dict[str, dict]:
    """Per URL (redacted): size (open connections), idle, and the counts since the start."""
    with _LOCK:
        pools = list(_POOLS.values())
    return {p.url.shown: {"size": p.size, "idle": len(p.idle), **p.counts} for p in pools}


def close_all() -> None:
    """Close every idle connection (a process about to end, or a test)."""
    with _LOCK:
        pools = list(_POOLS.values())
    for p in pools:
        with p.cond:
            while p.idle:
                conn, _ = p.idle.pop()
                p.size -= 1
                conn.close()


atexit.register(close_all)   # before the interpreter tears the drivers down
