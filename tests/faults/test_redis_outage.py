"""The Redis tier when Redis goes away: bounded calls, one warning, then hits again.

The fault test kills a throwaway ``redis-server`` of its own (never the shared one)
with SIGKILL mid-way, and always kills it in a finally.
"""

from __future__ import annotations

import logging
import socket
import time

import pytest

from rayflow.cache.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from rayflow.cache.redis_tier import RedisTier
from rayflow.cache.urls import open_cache
from rayflow.core.errors import CacheUnavailable
from rayflow.plan.fingerprints import entry_key
from tests.helpers import free_port
from tests.support.tiers import ThrowawayRedis

BOUND_S = 1.0      # generous: what "answers within a bounded time" means here


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def warnings_of(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "rayflow.cache" and r.levelno == level]


def test_the_breaker_opens_after_k_failures_then_probes_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, cooldown_s=5, clock=clock)
    assert [breaker.record_failure() for _ in range(3)] == [False, False, True]
    assert breaker.state == OPEN and not breaker.allow()
    clock.now = 5.0
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert not breaker.allow()                      # one probe at a time
    assert breaker.record_failure() is False        # back to open, no second "opened"
    assert breaker.state == OPEN and breaker.opened == 1
    clock.now = 10.0
    assert breaker.allow()
    assert breaker.record_success() is True and breaker.state == CLOSED
    assert breaker.record_success() is False


def test_a_lost_probe_is_given_up_after_a_cool_down() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown_s=2, clock=clock)
    breaker.record_failure()
    clock.now = 2.0
    assert breaker.allow()                          # the probe never reports back
    clock.now = 4.0
    assert breaker.allow()


def test_a_redis_nobody_listens_on_answers_misses_fast_and_warns_once(caplog) -> None:
    caplog.set_level(logging.INFO, logger="rayflow.cache")
    tier = RedisTier(f"redis://127.0.0.1:{free_port()}/0", cooldown_s=60)
    try:
        for i in range(10):
            started = time.monotonic()
            assert tier.get(f"k:{i}") is None
            tier.put(f"k:{i}", b"v", 10)
            assert time.monotonic() - started < BOUND_S
        assert tier.breaker.state == OPEN
        assert tier.stats()["errors"] == 3                 # then the breaker answered alone
        assert len(warnings_of(caplog)) == 1 and "unreachable" in warnings_of(caplog)[0]
        with pytest.raises(CacheUnavailable, match="could not be cleared"):
            tier.clear()
    finally:
        tier.close()


def test_a_redis_that_never_answers_costs_one_timeout_per_call_until_the_breaker_opens(caplog) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)                       # connects complete; nothing ever replies
    tier = RedisTier(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", timeout_s=0.2, cooldown_s=60)
    try:
        durations = []
        for i in range(6):
            started = time.monotonic()
            assert tier.get(f"k:{i}") is None
            durations.append(time.monotonic() - started)
        assert max(durations) < BOUND_S
        assert tier.breaker.state == OPEN
        assert tier.stats()["errors"] == 3     # the last three never reached the socket
    finally:
        tier.close()
        listener.close()


@pytest.mark.slow
def test_the_cache_survives_redis_being_killed_and_hits_come_back(caplog) -> None:
    caplog.set_level(logging.INFO, logger="rayflow.cache")
    server = ThrowawayRedis(free_port())
    try:
        server.start()
        cache = open_cache(f"memory://,{server.url}?cooldown=0.5&failures=3")
        memory = cache.tiers[0]
        keys = [entry_key("step", f"{i:064x}") for i in range(30)]
        for key in keys:
            cache.put(key, {"key": key}, ttl_s=600)
        memory.clear()
        assert cache.get(keys[0]).tier == "redis"

        server.kill()
        for key in keys[1:21]:               # L1 does not hold these: each asks Redis
            started = time.monotonic()
            assert cache.get(key).hit is False
            cache.put(key, {"key": key}, ttl_s=600)
            memory.delete(key)
            assert time.monotonic() - started < BOUND_S, "a call waited on the dead Redis"
        stats = cache.stats()["tiers"]["redis"]
        assert stats["breaker"] in (OPEN, HALF_OPEN) and stats["breaker_opened"] == 1
        assert len(warnings_of(caplog)) == 1
        assert cache.get(keys[0]) == (True, {"key": keys[0]}, "memory")   # L1 still answers

        server.start()                       # empty: it kept nothing (--save "")
        deadline = time.monotonic() + 10
        while True:
            cache.put(keys[25], "back", ttl_s=600)
            memory.delete(keys[25])
            if cache.get(keys[25]).tier == "redis":
                break
            assert time.monotonic() < deadline, "hits did not come back after Redis restarted"
            time.sleep(0.1)
        assert cache.stats()["tiers"]["redis"]["breaker"] == CLOSED
        assert any("reachable again" in m for m in warnings_of(caplog, logging.INFO))
        assert len(warnings_of(caplog)) == 1
        cache.close()
    finally:
        server.kill()
