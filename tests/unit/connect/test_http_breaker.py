"""The HTTP components' circuit breaker, on a fake clock (and once on real threads)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from rayflow.connect.http import breaker as br
from rayflow.connect.http.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, CircuitOpen
from rayflow.connect.http.errors import HttpConfigError

HOST = "https://api.example.com:443"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(clock: FakeClock, failures: int = 3, reset_s: float = 10.0) -> Breaker:
    return Breaker(HOST, failures, reset_s, clock=clock, sleep=clock.sleep)


def test_opens_after_consecutive_failures_only(clock):
    b = make(clock)
    for _ in range(2):
        assert b.acquire() is False
        b.failure()
    b.success()                      # a success starts the count again
    for _ in range(2):
        b.failure()
    assert b.state == CLOSED
    b.failure()
    assert b.state == OPEN
    assert b.stats()["opened"] == 1


def test_open_sends_nothing_and_fails_after_the_wait(clock):
    b = make(clock, reset_s=10.0)
    for _ in range(3):
        b.failure()
    with pytest.raises(CircuitOpen) as e:
        b.acquire(wait_s=2.0)
    assert clock.now == pytest.approx(102.0)          # waited its budget, no more
    msg = str(e.value)
    assert "\n" not in msg
    assert HOST in msg and "is open" in msg and "retry in 8.0s" in msg
    assert e.value.retry_in_s == pytest.approx(8.0)
    assert b.state == OPEN


def test_a_waiting_request_becomes_the_trial_after_reset_s(clock):
    b = make(clock, reset_s=10.0)
    for _ in range(3):
        b.failure()
    clock.now += 4.0
    assert b.acquire(wait_s=60.0) is True             # waited the 6 s left, then the trial
    assert clock.now == pytest.approx(110.0)
    assert b.state == HALF_OPEN


def test_default_wait_is_twice_reset_s(clock):
    b = make(clock, reset_s=10.0)
    for _ in range(3):
        b.failure()
    assert b.acquire() is True                         # 10 s < the default 20 s
    with pytest.raises(CircuitOpen) as e:              # the trial in flight: others wait, then fail
        b.acquire()
    assert "half-open" in str(e.value)
    assert clock.now == pytest.approx(130.0)


def test_half_open_lets_one_trial_through(clock):
    b = make(clock, reset_s=1.0)
    for _ in range(3):
        b.failure()
    clock.now += 1.0
    assert b.acquire(wait_s=0) is True
    with pytest.raises(CircuitOpen):
        b.acquire(wait_s=0)
    with pytest.raises(CircuitOpen):
        b.acquire(wait_s=5)
    assert b.state == HALF_OPEN


def test_trial_success_closes(clock):
    b = make(clock, reset_s=1.0)
    for _ in range(3):
        b.failure()
    clock.now += 1.0
    trial = b.acquire(wait_s=0)
    b.success(trial)
    assert b.state == CLOSED
    assert b.acquire(wait_s=0) is False
    assert b.acquire(wait_s=0) is False
    for _ in range(2):                                  # the count starts from zero again
        b.failure()
    assert b.state == CLOSED


def test_trial_failure_opens_again_for_reset_s(clock):
    b = make(clock, reset_s=5.0)
    for _ in range(3):
        b.failure()
    clock.now += 5.0
    trial = b.acquire(wait_s=0)
    b.failure(trial)
    assert b.state == OPEN
    assert b.retry_in_s() == pytest.approx(5.0)
    with pytest.raises(CircuitOpen):
        b.acquire(wait_s=0)
    assert b.acquire(wait_s=60) is True
    assert clock.now == pytest.approx(100.0 + 5.0 + 5.0)
    assert b.stats()["opened"] == 2


def test_late_results_of_requests_sent_before_opening_change_nothing(clock):
    b = make(clock, reset_s=5.0)
    for _ in range(3):
        b.failure()
    b.success()                                        # an answer to a request sent earlier
    assert b.state == OPEN
    b.failure()
    assert b.retry_in_s() == pytest.approx(5.0)        # not opened again: the same deadline
    assert b.stats()["opened"] == 1


def test_an_abandoned_trial_hands_the_trial_to_the_next_request(clock):
    b = make(clock, reset_s=1.0)
    for _ in range(3):
        b.failure()
    clock.now += 1.0
    trial = b.acquire(wait_s=0)
    b.release(trial)
    assert b.state == HALF_OPEN
    assert b.acquire(wait_s=0) is True
    b.release(False)                                   # not a trial: nothing to hand on
    with pytest.raises(CircuitOpen):
        b.acquire(wait_s=0)


def test_each_transition_is_logged_at_warning(clock, caplog):
    caplog.set_level(logging.WARNING, logger="rayflow.connect")
    b = make(clock, failures=5, reset_s=1.0)
    for _ in range(5):
        b.failure()
    clock.now += 1.0
    b.failure(b.acquire(wait_s=0))
    clock.now += 1.0
    b.success(b.acquire(wait_s=0))
    msgs = [r.getMessage() for r in caplog.records if r.name == "rayflow.connect"]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == "rayflow.connect")
    assert msgs[0] == f"circuit to {HOST}: closed -> open after 5 failures"
    assert [m.split(": ", 1)[1].split(" ", 3)[:3] for m in msgs] == [
        ["closed", "->", "open"], ["open", "->", "half-open"], ["half-open", "->", "open"],
        ["open", "->", "half-open"], ["half-open", "->", "closed"]]


def test_half_open_on_real_threads_one_trial_the_others_wait():
    b = Breaker(HOST, failures=1, reset_s=0.05)
    b.failure()
    got: list[bool] = []
    lock = threading.Lock()

    def request() -> None:
        trial = b.acquire(wait_s=10.0)
        with lock:
            got.append(trial)

    threads = [threading.Thread(target=request) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)                                    # the others had time to pass, if they could
    with lock:
        assert got == [True]
    b.success(True)
    for t in threads:
        t.join(timeout=10)
    assert sorted(got) == [False] * 7 + [True]
    assert b.state == CLOSED


def test_parse_defaults_and_errors():
    assert br.parse(None) == (5, 30.0, 60.0)
    assert br.parse({"failures": 2, "reset_s": 0.5}) == (2, 0.5, 1.0)
    assert br.parse({"failures": 2, "reset_s": 0.5, "wait_s": 3}) == (2, 0.5, 3.0)
    assert br.parse(False) is None
    for bad in ({"failure": 3}, {"failures": 0}, {"reset_s": -1}, {"failures": 2.5}, "x",
                {"wait_s": "soon"}):
        with pytest.raises(HttpConfigError):
            br.parse(bad)


def test_one_breaker_per_host_shared():
    br.reset()
    try:
        a = br.for_host(HOST, 3, 1.0)
        assert br.for_host(HOST, 3, 1.0) is a
        assert br.for_host("http://other:80", 3, 1.0) is not a
        for _ in range(3):
            a.failure()
        again = br.for_host(HOST, 4, 2.0)                 # other settings: the same breaker
        assert again is a and a.state == OPEN and (a.failures, a.reset_s) == (4, 2.0)
        assert br.stats()[HOST]["state"] == OPEN
    finally:
        br.reset()
