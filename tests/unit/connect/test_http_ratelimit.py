"""The HTTP components' token bucket, on a fake clock."""

from __future__ import annotations

import threading

import pytest

from rayflow.connect.http import ratelimit as rl
from rayflow.connect.http.errors import HttpConfigError
from rayflow.connect.http.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_burst_is_free_then_one_token_per_interval(clock):
    b = TokenBucket(10, 3, clock=clock, sleep=clock.sleep)
    assert [b.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert clock.now == 50.0
    assert b.acquire() == pytest.approx(0.1)
    assert b.acquire() == pytest.approx(0.1)
    assert clock.now == pytest.approx(50.2)
    assert b.waited_s == pytest.approx(0.2) and b.waits == 2


def test_burst_defaults_to_per_second(clock):
    b = TokenBucket(4, clock=clock, sleep=clock.sleep)
    assert b.burst == 4
    assert [b.acquire() for _ in range(4)] == [0.0] * 4
    assert b.acquire() == pytest.approx(0.25)


def test_idle_time_saves_at_most_burst(clock):
    b = TokenBucket(10, 5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        b.acquire()
    clock.now += 100.0
    assert [b.acquire() for _ in range(5)] == [0.0] * 5
    assert b.acquire() == pytest.approx(0.1)


def test_never_more_than_burst_plus_rate_times_span(clock):
    rate, burst = 20.0, 5
    b = TokenBucket(rate, burst, clock=clock, sleep=clock.sleep)
    granted = []
    for i in range(200):
        if i % 37 == 0:
            clock.now += 0.3                      # idle now and then: saved tokens
        b.acquire()
        granted.append(clock.now)
    for i in range(len(granted)):
        for j in range(i, len(granted)):
            assert j - i + 1 <= burst + rate * (granted[j] - granted[i]) + 1e-6


def test_concurrent_callers_each_reserve_their_own_token(clock):
    """Threads on a frozen clock: every reservation is a distinct slot, none shared."""
    rate, burst = 10.0, 5
    b = TokenBucket(rate, burst, clock=clock, sleep=lambda s: None)
    delays: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [b.reserve() for _ in range(50)]
        with lock:
            delays.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = [0.0] * burst + [k / rate for k in range(1, 400 - burst + 1)]
    assert sorted(delays) == pytest.approx(expected)


def test_waits_are_counted(clock):
    b = TokenBucket(2, 1, clock=clock, sleep=clock.sleep)
    total = sum(b.acquire() for _ in range(5))
    assert total == pytest.approx(2.0)
    assert b.stats() == {"per_second": 2.0, "burst": 1.0, "waits": 4, "waited_s": pytest.approx(2.0)}


def test_configure_changes_the_rate(clock):
    b = TokenBucket(1, 1, clock=clock, sleep=clock.sleep)
    b.acquire()
    b.configure(100, 10)
    assert b.acquire() == pytest.approx(0.01)


def test_parse():
    assert rl.parse(None) is None
    assert rl.parse({"per_second": 50}) == (50.0, 50.0)
    assert rl.parse({"per_second": 5, "burst": 20}) == (5.0, 20.0)
    for bad in ({}, {"per_second": 0}, {"per_second": -1}, {"per_second": 5, "burst": 0},
                {"per_second": "fast"}, {"rate": 5}, [5]):
        with pytest.raises(HttpConfigError):
            rl.parse(bad)


def test_one_bucket_per_host_shared():
    rl.reset()
    try:
        a = rl.for_host("http://h:80", 10, 10)
        assert rl.for_host("http://h:80", 10, 10) is a
        assert rl.for_host("http://g:80", 10, 10) is not a
        assert rl.for_host("http://h:80", 20, 5) is a and (a.per_second, a.burst) == (20.0, 5.0)
        assert set(rl.stats()) == {"http://h:80", "http://g:80"}
    finally:
        rl.reset()
