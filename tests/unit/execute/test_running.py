"""rayflow.execute.worker.running: which attempts run, told once they have run a moment."""

from __future__ import annotations

import time

import pytest

from rayflow.execute.worker import running


@pytest.fixture
def sink():
    """This process's sink replaced by a list for the test (a Ray worker's is restored)."""
    told: list = []
    before = list(running._sink)
    running.set_sink(lambda key, items: told.append((key, items)))
    yield told
    running._sink[:] = before


def test_an_attempt_is_told_once_after_it_has_run_a_moment_and_a_short_one_never(sink):
    long = running.begin("k1", "slow", 1)
    short = running.begin("k1", "fast", 2)
    running.end(short)
    assert running.tell_due(time.time()) == 0                         # nothing has run half a second
    assert running.tell_due(time.time() + running.TELL_AFTER_S) == 1
    assert [(k, [(c, a) for c, a, _ in items]) for k, items in sink] == [("k1", [("slow", 1)])]
    assert abs(sink[0][1][0][2] - time.time()) < 5
    assert running.tell_due(time.time() + 10) == 0                    # told once
    running.end(long)


def test_no_key_or_no_sink_tracks_nothing(sink):
    assert running.begin(None, "c", 1) is None
    running.set_sink(None)
    assert running.begin("k", "c", 1) is None


def test_a_failing_sink_never_fails_the_caller(sink):
    def broken(key, items):
        raise RuntimeError("the board is gone")

    running.set_sink(broken)
    running.begin("k2", "c", 1)
    assert running.tell_due(time.time() + 1) == 1
