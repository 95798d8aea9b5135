"""``import ray`` before rayflow, with a Ray auth token on the machine (left by any
``ray start``): rayflow must not switch Ray's token mode on after Ray loaded, which made
the local Ray it starts refuse this very process ("Failed to start GCS")."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

SCRIPT = """
import sys
import ray
import rayflow as rf
from tests.fns.engine import cached
print(rf.run(cached, folder=sys.argv[1], timeout=120))
"""


def test_a_local_run_works_when_ray_was_imported_first(tmp_path) -> None:
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAYFLOW_STORE="memory://", PYTHONPATH=os.getcwd())
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True,
                         timeout=300, cwd=os.getcwd())
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "60"
