"""Pausing Python's cyclic garbage collector around short, allocation-heavy steps.

Tracing and planning a workflow of thousands of components allocates tens of
thousands of small objects; each allocation burst can trigger a full collection
that walks every object of the process (Ray, numpy, pyarrow: hundreds of
thousands), which costs more than the step itself. ``paused()`` turns collection
off for the step and back on after it (nesting and threads are counted, so the
collector comes back on only when the last pauser leaves, and only if it was on).
Nothing is lost: garbage made meanwhile is collected at the next collection.

``freeze_once()`` (at a process's first run) moves every object alive at that moment
(Ray's, pyarrow's, numpy's, the user's imports: ~150,000 with Ray loaded) out of the
collector's sight with ``gc.freeze()``: a full collection then walks only what was made
since, well under a millisecond instead of 50-150 ms, which on a run of a few hundred
milliseconds was the largest single stall. Reference counting still frees those
objects; only a reference cycle among them would no longer be collected (the pattern
the Python docs give for long-lived servers). ``RAYFLOW_GC_FREEZE=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_depth = 0
_was_enabled = False
_frozen = False
FREEZE_ENV_VAR = "RAYFLOW_GC_FREEZE"


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


def freeze_once() -> bool:
    """``gc.freeze()`` once per process (see the module doc); whether it froze now."""
    global _frozen
    with _lock:
        if _frozen or os.environ.get(FREEZE_ENV_VAR, "1") == "0":
            return False
        _frozen = True
    gc.freeze()
    return True
