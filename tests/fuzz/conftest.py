"""Shared pieces of the fuzz suite: the count of generated examples (printed at the end of
the run), a folder for spec files, and limits lowered for a block."""

from __future__ import annotations

import contextlib
import os
from collections import Counter

import pytest

GENERATED: Counter[str] = Counter()   # test -> examples it ran
OUTCOMES: Counter[str] = Counter()    # "entry point: ok|SpecError" -> calls


RAY_CALLS: list[str] = []   # ray.init / ray.is_initialized calls made while a fuzz test ran


@pytest.fixture(autouse=True)
def no_ray_calls(monkeypatch):
    """Record every ``ray.init`` and ``ray.is_initialized`` call a fuzz test makes (the
    second is the first thing rayflow's ``ensure_ray`` asks, so a session reused from an
    earlier test of the run is caught too, whatever order the tests run in)."""
    ray = pytest.importorskip("ray")
    for name in ("init", "is_initialized"):
        real = getattr(ray, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            RAY_CALLS.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(ray, name, spy)
    yield


@pytest.fixture(scope="session")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@contextlib.contextmanager
def limits(**values: str):
    """Set these RAYFLOW_* limits for the block (not monkeypatch: Hypothesis runs many
    examples inside one test call), then put back what was there."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def pytest_terminal_summary(terminalreporter):
    if GENERATED:
        parts = ", ".join(f"{name} {n}" for name, n in sorted(GENERATED.items()))
        terminalreporter.write_line(f"fuzz: {sum(GENERATED.values())} generated specs and documents ({parts})")
        outcomes = ", ".join(f"{name} {n}" for name, n in sorted(OUTCOMES.items()))
        terminalreporter.write_line(f"fuzz outcomes: {outcomes}")
