"""Peak memory of a call, measured in-process (Linux /proc)."""

from __future__ import annotations

import numpy as np
import pytest

from rayflow.execute.worker import usage
from rayflow.execute.worker.invoke import CallInfo, invoke


def allocate(n_bytes: int) -> int:
    block = np.ones(n_bytes // 8)
    block[:] = 2.0
    return int(block[0])


@pytest.mark.skipif(not usage.start(), reason="peak memory is measured only where /proc/self/clear_refs is writable")
def test_peak_of_a_call_is_measured_and_reset_between_calls():
    _, before = invoke(allocate, CallInfo("before", (8,), {}, has_slots=False), ())
    _, big = invoke(allocate, CallInfo("big", (80_000_000,), {}, has_slots=False), ())
    _, after = invoke(allocate, CallInfo("after", (8,), {}, has_slots=False), ())
    assert big["peak_rss_bytes"] - before["peak_rss_bytes"] >= 70_000_000
    assert after["peak_rss_bytes"] < big["peak_rss_bytes"] - 60_000_000   # the big peak was reset


@pytest.mark.skipif(not usage.start(), reason="peak memory is measured only where /proc/self/clear_refs is writable")
def test_the_fast_reading_agrees_with_vmhwm():
    usage.start()
    fast = usage.peak()
    exact = usage._status_peak()
    assert fast is not None and exact is not None
    assert abs(fast - exact) <= usage.AGREE_BYTES


def test_measurement_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(usage, "_off", False)
    monkeypatch.setattr(usage, "_fd", None)
    monkeypatch.setenv("RAYFLOW_MEASURE_MEMORY", "0")
    assert usage.start() is False
    assert usage.peak() is None
