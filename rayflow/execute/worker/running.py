"""Which attempts run in this process now, told to the process driving their run.

A component handed to an executor may wait (for a CPU, a worker, a slot) before it runs;
only the worker knows when it starts. Owns the worker's side of telling it: ``begin``
(an attempt of a component starts, under its run's channel ``key``) and ``end``, and one
daemon thread that, every ``TICK_S``, hands the attempts that have run ``TELL_AFTER_S`` or
longer and were not told yet to the sink of their key, one call per key with a list of
``(component, attempt, started_at)``. An attempt that ends sooner is never told: its start
comes back with its metadata. The sink is the executor's, set once per process
(``set_sink``; a Ray worker's is a fire-and-forget call to the cluster's progress board).
A sink's error is dropped: telling is best effort and never fails a call. Pure Python;
must not import ray.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

TELL_AFTER_S = 0.5
TICK_S = 0.25
Began = tuple[str, int, float]            # (component, attempt, started_at)
Sink = Callable[[str, list[Began]], None]

_running: dict[int, tuple[str, str, int, float]] = {}   # token -> (key, component, attempt, started_at)
_sink: list[Sink] = []   # the process's sink (none: nothing is tracked)
_ids = itertools.count(1)
_lock = threading.Lock()
_thread: threading.Thread | None = None


def set_sink(sink: Sink | None) -> None:
    """Tell ``sink`` of the attempts begun in this process (None: track none)."""
    _sink[:] = [] if sink is None else [sink]


def begin(key: str | None, component: str, attempt: int) -> int | None:
    """An attempt (from 1) of ``component`` starts now; a token for ``end``, or None when
    nobody listens under ``key``."""
    if key is None or not _sink:
        return None
    token = next(_ids)
    _running[token] = (key, component, attempt, time.time())
    if _thread is None:
        _start()
    return token


def end(token: int | None) -> None:
    if token is not None:
        _running.pop(token, None)


def tell_due(now: float | None = None) -> int:
    """Hand the attempts due (running ``TELL_AFTER_S`` or longer, not told yet) to their
    sinks; how many were told. The thread calls it every ``TICK_S``."""
    now = time.time() if now is None else now
    due: dict[str, list[Began]] = {}
    with _lock:
        for token, (key, component, attempt, started) in list(_running.items()):
            if now - started >= TELL_AFTER_S and _running.pop(token, None) is not None:
                due.setdefault(key, []).append((component, attempt, started))
    for key, items in due.items():
        try:
            _sink[0](key, items)
        except Exception:  # noqa: BLE001 - best effort (or the sink was unset): a start not told shows at the end
            pass
    return sum(len(v) for v in due.values())


def _start() -> None:
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_tell_forever, name="rayflow-running", daemon=True)
            _thread.start()


def _tell_forever() -> None:
    while True:
        time.sleep(TICK_S)
        tell_due()
