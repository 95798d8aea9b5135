"""Shared fixtures: one Ray session for the whole test run, and a fresh run store per test."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.support.ledger import durable_svc, ledger  # noqa: F401 - shared fixtures
from tests.support.postgres import postgres_schema, postgres_server, postgres_url  # noqa: F401 - shared fixtures
from tests.support.redis import redis_namespace, redis_url, tier  # noqa: F401 - shared fixtures

ROOT = Path(__file__).resolve().parents[1]

# Checkpoints, logs and the signing key of the whole test run live in one temporary folder,
# never in ~/.rayflow nor in a RAYFLOW_HOME the developer set; set before Ray starts, so
# workers and subprocesses inherit it.
_HOME = tempfile.mkdtemp(prefix="rayflow-tests-")
os.environ["RAYFLOW_HOME"] = _HOME
os.environ["RAYFLOW_CHECKPOINTS"] = os.path.join(_HOME, "checkpoints")
# The CLI never goes to a `rayflow server` it finds on this machine's 8470 (a developer's):
# the tests that use a server name it (--server), or unset this themselves.
os.environ.setdefault("RAYFLOW_SERVER", "local")


@pytest.fixture(scope="session")
def ray_session():
    """Local Ray, started once (about 4 s); workers can import the tests package."""
    import ray

    if not ray.is_initialized():
        pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        ray.init(address="local", num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
                 logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(params=["local", "ray"])
def executor(request):
    """Each executor in turn (Ray's session started for the "ray" case)."""
    if request.param == "ray":
        request.getfixturevalue("ray_session")
    return request.param


@pytest.fixture
def store_url(tmp_path):
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def service(store_url):
    """The process's Service pointed at a fresh SQLite store for this test."""
    from rayflow.service import get_service

    svc = get_service()
    svc.configure(store=store_url)
    yield svc
    svc.flush()
