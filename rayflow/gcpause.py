"""Pausing Python's cyclic garbage collector around short, allocation-heavy steps.

Tracing and planning a workflow of thousands of components allocates tens of
thousands of small objects; each allocation burst can trigger a full collection
that walks every object of the process (Ray, numpy, pyarrow: hundreds of
thousands), which costs more than the step itself. ``paused()`` turns collection
off for the step and back on after it (nesting and threads are counted, so the
collector comes back on only when the last pauser leaves, and only if it was on).
Nothing is lost: garbage made meanwhile is collected at the next collection.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextlib.contextmanager
def paused() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
