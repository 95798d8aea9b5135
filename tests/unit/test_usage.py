"""Peak memory of a call, measured in-process (Linux /proc)."""

from __future__ import annotations

import numpy as np
import pytest

from rayflow.execute import usage
from rayflow.execute.invoke import CallInfo, invoke


def allocate(n_bytes: int) -> int:
    block = np.ones(n_bytes // 8)
    block[:] = 2.0
    return int(block[0])


@pytest.mark.skipif(usage.start() is None, reason="peak memory is measured only where /proc/self/clear_refs is writable")
def test_peak_of_a_call_is_measured_and_reset_between_calls():
    _, big = invoke(allocate, CallInfo("big", (80_000_000,), {}, has_slots=False), ())
    _, small = invoke(allocate, CallInfo("small", (8,), {}, has_slots=False), ())
    grew_big = big["peak_rss_bytes"] - big["rss_start_bytes"]
    grew_small = small["peak_rss_bytes"] - small["rss_start_bytes"]
    assert grew_big >= 70_000_000
    assert grew_small < 10_000_000          # the earlier peak was reset
    assert small["peak_rss_bytes"] < big["peak_rss_bytes"]
