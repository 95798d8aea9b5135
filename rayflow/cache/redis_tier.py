"""The Redis tier (L2): entries shared by every process that reaches one Redis server.

Owns the only import of ``redis`` in rayflow. Uses redis-py's asyncio client on a
private event-loop thread (so a caller on any thread, with or without its own loop,
gets plain blocking calls) with a bounded connection pool, short connect and read
timeouts and no client-side retries: an unreachable Redis costs one timeout, then the
circuit breaker (``rayflow.cache.breaker``) turns every call into an immediate miss or
no-op for a cool-down, logs one warning when it opens and one info line when Redis
answers again. Entries expire by Redis's own expiry (``SET ... PX``). Keys live under
``namespace`` (default ``rayflow:cache:``); ``clear`` and ``usage`` SCAN that
namespace only.

Must not decode what it stores, nor raise from get/put/delete for a backend failure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import weakref
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from rayflow.cache.breaker import CircuitBreaker
from rayflow.cache.port import TierCounters, check_ttl
from rayflow.core.errors import CacheUnavailable, ConfigError
from rayflow.core.redact import redact

log = logging.getLogger("rayflow.cache")

DEFAULT_NAMESPACE = "rayflow:cache:"
ADMIN_TIMEOUT_S = 30.0          # clear and usage walk the namespace: more than one round trip
_FAILURES = (RedisError, OSError, TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)
_BATCH = 500


class _LoopThread:
    """An asyncio loop on a daemon thread; ``run`` waits for one coroutine, bounded."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout_s: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout_s), self.loop)
        try:
            return future.result(timeout_s + 0.5)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer within {timeout_s:g}s") from None

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


class RedisTier:
    """L2 on ``url`` (``redis://[user:password@]host:port/db``, or ``rediss://``)."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, namespace: str = DEFAULT_NAMESPACE,
                 timeout_s: float = 0.2, connect_timeout_s: float = 0.2, max_connections: int = 16,
                 failures: int = 3, cooldown_s: float = 5.0, name: str = "redis") -> None:
        _check_url(url, namespace)
        self.name = name
        self.namespace = namespace
        self.where = _redacted(url)
        self.counters = TierCounters()
        self.breaker = CircuitBreaker(failures=failures, cooldown_s=cooldown_s)
        self._deadline = connect_timeout_s + timeout_s
        self._closed = False
        self._loop = _LoopThread(f"rayflow-cache-{name}")
        pool_args = {"socket_timeout": timeout_s, "socket_connect_timeout": connect_timeout_s,
                     "max_connections": max_connections, "timeout": self._deadline,
                     "retry": Retry(NoBackoff(), 0)}
        self._client = self._loop.run(self._open(url, pool_args), timeout_s=5.0)
        # closes the pool and ends the thread when the tier is closed, collected, or at exit
        self._finalizer = weakref.finalize(self, _shut_down, self._loop, self._client)

    @staticmethod
    async def _open(url: str, pool_args: dict[str, Any]) -> aioredis.Redis:
        pool = aioredis.BlockingConnectionPool.from_url(url, **pool_args)
        return aioredis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))

    def __reduce__(self) -> Any:
        raise TypeError(f"cache tier {self.name!r} holds a connection pool and a thread; "
                        "pass its URL to the other process and open_cache() there")

    # -- the port ----------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        blob = self._call("get", self._client.get(self.namespace + key), None)
        self.counters.add(**({"misses": 1} if blob is None else {"hits": 1, "bytes_out": len(blob)}))
        return blob

    def put(self, key: str, blob: bytes, ttl_s: float | None = None, *, cost_s: float = 0.0) -> None:
        ttl = check_ttl(ttl_s, where=f"cache tier {self.name!r}, key {key!r}")
        if ttl is not None and ttl * 1000 < 1:     # expires at once: store nothing
            self.delete(key)
            return
        px = None if ttl is None else int(ttl * 1000)
        if self._call("put", self._client.set(self.namespace + key, bytes(blob), px=px), False):
            self.counters.add(puts=1, bytes_in=len(blob))

    def delete(self, key: str) -> None:
        if self._call("delete", self._client.unlink(self.namespace + key), 0):
            self.counters.add(deletes=1)

    def clear(self, prefix: str | None = None) -> int:
        pattern = _glob_escape(self.namespace + (prefix or "")) + "*"
        dropped = self._call("clear", self._clear(pattern), None, timeout_s=ADMIN_TIMEOUT_S)
        if dropped is None:
            why = "the tier is closed" if self._closed else f"Redis did not answer (breaker {self.breaker.state})"
            raise CacheUnavailable(f"cache tier {self.name!r} ({self.where}) could not be cleared: {why}")
        self.counters.add(deletes=dropped)
        return dropped

    def stats(self) -> dict[str, Any]:
        return {**self.counters.snapshot(), "tier": "redis", "url": self.where, "namespace": self.namespace,
                "breaker": self.breaker.state, "breaker_opened": self.breaker.opened}

    def usage(self) -> dict[str, Any]:
        found = self._call("usage", self._usage(_glob_escape(self.namespace) + "*"), None,
                           timeout_s=ADMIN_TIMEOUT_S)
        return found or {"entries": None, "bytes": None}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._finalizer()

    # -- internals ---------------------------------------------------------------------

    def _call(self, op: str, coro: Coroutine[Any, Any, Any], default: Any, *,
              timeout_s: float | None = None) -> Any:
        """Run one command under the breaker; a failure or timeout answers ``default``."""
        if self._closed or not self.breaker.allow():
            coro.close()
            return default
        try:
            result = self._loop.run(coro, timeout_s or self._deadline)
        except ResponseError as exc:      # Redis answered, and refused: not an outage
            self.counters.add(errors=1)
            log.debug("cache tier %s: %s refused: %s", self.name, op, exc)
            return default
        except _FAILURES as exc:
            self.counters.add(errors=1)
            if self.breaker.record_failure():
                log.warning("cache tier %r (%s) unreachable after %d consecutive failures (%s: %s); "
                            "answering misses for %gs, then probing", self.name, self.where,
                            self.breaker.failures, type(exc).__name__, exc, self.breaker.cooldown_s)
            return default
        if self.breaker.record_success():
            log.info("cache tier %r (%s) reachable again; circuit closed", self.name, self.where)
        return result

    async def _clear(self, pattern: str) -> int:
        dropped, batch = 0, []
        async for key in self._client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= _BATCH:
                dropped += await self._client.unlink(*batch)
                batch = []
        if batch:
            dropped += await self._client.unlink(*batch)
        return dropped

    async def _usage(self, pattern: str) -> dict[str, int]:
        entries = size = 0
        batch: list[bytes] = []
        async for key in self._client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= _BATCH:
                size += await self._strlen(batch)
                entries, batch = entries + len(batch), []
        size += await self._strlen(batch)
        return {"entries": entries + len(batch), "bytes": size}

    async def _strlen(self, keys: list[bytes]) -> int:
        if not keys:
            return 0
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.strlen(key)
        return sum(await pipe.execute())


def _shut_down(loop: _LoopThread, client: aioredis.Redis) -> None:
    try:
        loop.run(client.aclose(close_connection_pool=True), timeout_s=1.0)
    except _FAILURES:
        pass
    loop.stop()


def _check_url(url: str, namespace: str) -> None:
    parts = urlsplit(url)
    url = redact(url)   # for the messages
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if not port_ok:
        raise ConfigError(f"cache URL {url!r}: the port must be a number from 1 to 65535")
    db = parts.path.strip("/")
    if parts.scheme not in ("redis", "rediss") or (db and not db.isdigit()):
        raise ConfigError(f"cache URL {url!r}: expected redis://[user:password@]HOST:PORT/DB with DB a number")
    if not namespace:
        raise ConfigError(f"cache URL {url!r}: the key prefix must not be empty (clear() would empty the whole database)")


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _redacted(url: str) -> str:
    """``url`` without its password, for logs and stats."""
    return redact(url)
