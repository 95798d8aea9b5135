"""RAYFLOW_WARM_WORKERS: how many idle workers a local Ray that rayflow starts keeps."""

from __future__ import annotations

import pytest

from rayflow.core import config
from rayflow.core.errors import ConfigError


def test_the_default_keeps_four_workers_a_cpu_and_at_least_sixteen(monkeypatch):
    monkeypatch.delenv(config.WARM_WORKERS_VAR, raising=False)
    assert config.warm_workers(2) == 16
    assert config.warm_workers(8) == 32


def test_zero_leaves_rays_defaults_and_nonsense_is_one_line(monkeypatch):
    monkeypatch.setenv(config.WARM_WORKERS_VAR, "0")
    assert config.warm_workers(2) == 0
    monkeypatch.setenv(config.WARM_WORKERS_VAR, "lots")
    with pytest.raises(ConfigError, match="RAYFLOW_WARM_WORKERS: expected a whole number"):
        config.warm_workers(2)


def test_a_local_ray_rayflow_starts_gets_them(monkeypatch):
    from rayflow.execute.ray import session

    seen = {}
    monkeypatch.setattr(session.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(session.ray, "init", lambda **kw: seen.update(kw))
    monkeypatch.setattr(session.keyring, "ensure", lambda: None)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv(config.WARM_WORKERS_VAR, raising=False)
    session.ensure_ray(num_cpus=2)
    assert seen["_system_config"] == {"num_workers_soft_limit": 16, "worker_maximum_startup_concurrency": 16}
    seen.clear()   # a cluster started elsewhere keeps its own settings
    monkeypatch.setattr(session, "_check_reachable", lambda address: None)
    session.ensure_ray("10.0.0.1:6379")
    assert "_system_config" not in seen
    session._started_here = False
