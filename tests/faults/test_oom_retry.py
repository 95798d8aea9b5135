"""A component killed for memory by Ray's memory monitor runs again asking for more
memory (not the same request), so it no longer runs beside the other memory hog, and the
run succeeds. A real kill, in a Ray of the test's own (tests/fns/oom_driver.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO

ROOT = REPO


@pytest.mark.slow
def test_an_oom_killed_component_is_retried_with_a_larger_request():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "fns" / "oom_driver.py")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(next(line for line in out.stdout.splitlines() if line.startswith('{"status"')))
    assert summary["status"] == "SUCCEEDED", summary
    retried = [line for line in out.stderr.splitlines() if "was killed for memory; running it again" in line]
    assert retried, out.stderr[-2000:]                     # at least one real kill, then a retry asking for more
    # twice the last request (6 GiB), or, when that was killed too (a loaded machine), the largest node's memory
    top = max(summary["requests"].values())
    assert top == 2 * 6 * 2**30 or (len(retried) > 1 and 2 * 6 * 2**30 < top <= summary["node_memory"]), (top, retried)
    assert max(summary["requests"].values()) > summary["node_memory"] / 2   # so the two no longer run side by side
