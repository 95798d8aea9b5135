"""Figures a component's code reports about one call, beside its value: the connectors'
retries, requests, pool and circuit breaker states.

Code that runs inside a component (a SQL or HTTP connector, on any of its threads) calls
``add(component, section, sums=..., latest=...)``: numbers under ``sums`` add up over the
call, values under ``latest`` replace the earlier ones. The worker's ``invoke`` takes them
(``take``) when the call ends and puts them in the call's outcome (``meta["outcome"]``),
so they reach the run store (``ComponentRecord.outcome``), ``h.metrics()`` and the
server's ``/metrics``. Keyed by component id in the process: Ray runs one call of a
component at a time in a worker process. Pure; thread-safe; no ray.
"""

from __future__ import annotations

import threading
from typing import Any

_NOTES: dict[str, dict[str, dict[str, Any]]] = {}
_LOCK = threading.Lock()
MAX_KEYS = 64     # per section: a call cannot grow the outcome without bound


def add(component: str, section: str, *, sums: dict[str, float] | None = None,
        latest: dict[str, Any] | None = None) -> None:
    if not component:
        return
    with _LOCK:
        part = _NOTES.setdefault(component, {}).setdefault(section, {})
        for key, value in (sums or {}).items():
            if key in part or len(part) < MAX_KEYS:
                part[key] = part.get(key, 0) + value
        for key, value in (latest or {}).items():
            if key in part or len(part) < MAX_KEYS:
                part[key] = value


def take(component: str) -> dict[str, dict[str, Any]] | None:
    """What ``component``'s current call reported, forgotten here (None: nothing). Every
    call of every component asks: with nothing reported in the process it takes no lock."""
    if not _NOTES:
        return None
    with _LOCK:
        return _NOTES.pop(component, None)


def merge(into: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """``more``'s sections added to ``into``'s (numbers summed, the rest replaced): the
    batches of one stream stage make one outcome."""
    for section, values in more.items():
        if not isinstance(values, dict):
            into[section] = values
            continue
        part = into.setdefault(section, {})
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(part.get(key), (int, float)):
                part[key] = part[key] + value
            else:
                part[key] = value
    return into
