"""Helpers shared by every test package: service availability, free ports, waiting.

One home for what several suites need, so none writes it again: ``unavailable`` (skip a
test, or fail it where ``RAYFLOW_REQUIRE_SERVICES=1``, as CI sets), ``free_port``
(a loopback port nothing listens on), ``wait_until`` (poll a condition with a deadline).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]   # the repository root


def services_required() -> bool:
    return os.environ.get("RAYFLOW_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    """Skip the test, or fail it where services are required."""
    if services_required():
        pytest.fail(f"{reason} (RAYFLOW_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float, *, poll_s: float = 0.05,
               what: str = "condition") -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll_s)
