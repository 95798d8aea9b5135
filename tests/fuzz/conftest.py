"""Shared pieces of the fuzz suite: the count of generated examples (printed at the end of
the run), a folder for spec files, and limits lowered for a block."""

from __future__ import annotations

import contextlib
import os
from collections import Counter

import pytest

GENERATED: Counter[str] = Counter()   # test -> examples it ran
OUTCOMES: Counter[str] = Counter()    # "entry point: ok|SpecError" -> calls


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
