"""Stopping the runs a process drives because the process was told to stop (SIGINT, SIGTERM).

Owns what a front end's signal handler may do for the runs driven here, and how such a
run ends. ``ask_to_stop`` only sets flags (each run's error and its cancel event: no I/O,
so it is safe inside a signal handler); the run's loop then cancels what is in flight,
as ``rayflow cancel`` would. ``in_component`` says whether the interrupted thread is
inside a component's call: the local executor runs components in the caller's thread,
where only an exception stops one (``ActiveRun`` records such a KeyboardInterrupt, once
asked to stop, as CANCELLED). ``settle`` waits for the stopped runs' final writes and
releases their leases, or asks a run driven elsewhere (the cluster's tracker) to cancel.

A run stopped so ends CANCELLED, its error naming the signal; ``rayflow resume`` finishes
it from its checkpoints. Installs no signal handler itself (``rayflow.cli.interrupts``
does) and must not import ray.
"""

from __future__ import annotations

import logging
from types import FrameType
from typing import Any

from rayflow.core.errors import RayflowError
from rayflow.execute.worker import capture
from rayflow.execute.worker.invoke import invoke
from rayflow.runs.active import ActiveRun

log = logging.getLogger("rayflow")

ELSEWHERE_WAIT_S = 30.0   # how long a run driven elsewhere is given to end once asked to cancel


def ask_to_stop(service: Any, reason: str) -> list[ActiveRun]:
    """Ask every run this process drives to stop, ``reason`` kept as its error; the runs."""
    runs = service.active()
    for run in runs:
        if not run.cancel_event.is_set():
            run.error = reason
            run.cancel_event.set()
    return runs


def release_output() -> None:
    """Send this thread's prints to the terminal again: a signal handler runs in the thread it
    interrupted, maybe a component's, whose output is captured into its log."""
    capture.bind(None)


def in_component(frame: FrameType | None) -> bool:
    """Whether ``frame`` (a signal handler's) is inside a component's call in this thread."""
    while frame is not None:
        if frame.f_code is invoke.__code__:
            return True
        frame = frame.f_back
    return False


def settle(service: Any, stopped: list[ActiveRun], handle: Any = None) -> str | None:
    """After ``ask_to_stop``: wait for each stopped run's end and release its lease (its row
    keeps no owner), or ask ``handle``'s run, driven elsewhere, to cancel and give it
    ELSEWHERE_WAIT_S to end. The status of ``handle``'s run (of the first stopped when
    None); None when there was no run."""
    for run in stopped:
        run.done.wait()
        _release(service, run)
    if handle is None:
        return stopped[0].status if stopped else None
    if any(run.run.run_id == handle.run_id for run in stopped):
        return handle.status()
    try:
        handle.cancel()
        return handle.wait(ELSEWHERE_WAIT_S)
    except TimeoutError:
        return handle.status()
    except RayflowError as exc:
        log.warning("run %s: could not ask it to cancel: %s", handle.run_id, exc)
        return handle.status()


def _release(service: Any, run: ActiveRun) -> None:
    if run.lease is None or run.status not in ("SUCCEEDED", "FAILED", "CANCELLED"):
        return   # lost or handed back: its next owner holds the run now
    try:
        service.store.release_lease(run.lease)
    except Exception as exc:  # noqa: BLE001 - the run is final already; its lease would lapse by itself
        log.warning("run %s: could not release its lease (%s)", run.run.run_id, type(exc).__name__)
