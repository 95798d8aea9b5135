"""The run and component state names, and the sets of them that mean "over".

Owns the one definition of each state name as the run store writes it, and of the
final/terminal sets every layer tests against. The enums subclass ``str``, so a
member equals (and hashes like) the stored string: ``"FAILED" in TERMINAL_RUN_STATES``.
Must not import anything of rayflow; plain data only.
"""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    """A run's state (``RunRecord.status``)."""

    __str__ = str.__str__

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class ComponentState(str, Enum):
    """A component's state (``ComponentRecord.state``)."""

    __str__ = str.__str__

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"
    UPSTREAM_FAILED = "UPSTREAM_FAILED"
    CACHED = "CACHED"


# The sets hold the plain strings (what the stores read back), so membership tests of a
# stored state cost one string hash, and an enum member tests the same way.
TERMINAL_RUN_STATES: frozenset[str] = frozenset(s.value for s in (RunStatus.SUCCEEDED, RunStatus.FAILED,
                                                                  RunStatus.CANCELLED))
FINAL_COMPONENT_STATES: frozenset[str] = frozenset(s.value for s in ComponentState
                                                   if s not in (ComponentState.PENDING, ComponentState.RUNNING))
# a component's own failure (its error and traceback are its own, not an upstream's)
OWN_FAILURE_STATES: frozenset[str] = frozenset(s.value for s in (ComponentState.FAILED, ComponentState.TIMED_OUT))
FAILED_COMPONENT_STATES: frozenset[str] = frozenset(s.value for s in (ComponentState.FAILED, ComponentState.TIMED_OUT,
                                                                      ComponentState.UPSTREAM_FAILED))

# Shown, never stored: a RUNNING component whose call has not begun yet (handed to the
# executor, waiting for a CPU, a worker or a slot). Progress counts and the web UI show it.
QUEUED = "QUEUED"


def shown_state(state: str, started_at: float | None) -> str:
    """What to show for a component: QUEUED while it is RUNNING but has not begun."""
    return QUEUED if state == ComponentState.RUNNING and started_at is None else state
