"""Tuning Python's cyclic garbage collector, in the processes where rayflow may.

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
the Python docs give for long-lived servers).

The two differ in reach, so their defaults differ. A pause is bounded: it lasts one
step (tens to hundreds of milliseconds), restores the collector as it found it, and loses
nothing, so it applies in every process, a user's script or notebook included (there it
was the largest part of a fused run's driver time: 10,000 tiny components planned in
about 40 us each with the collector off and 75 us with it on). The freeze outlives the
step, so it applies only where that is rayflow's to decide: in processes rayflow owns
(the run tracker actor, the ``rayflow`` command, the server), which call
``own_process()`` at start, or where the user asks with ``RAYFLOW_GC=tune``.
``RAYFLOW_GC=off`` turns both off everywhere (``paused()`` is then a shared no-op
context); ``RAYFLOW_GC_FREEZE=0`` keeps the pauses but never freezes. A caveat of any
pause: a thread of the user's that turns the collector off while rayflow pauses it finds
it on again when the pause ends. Owns no other state of the interpreter; must not import
anything of rayflow but ``rayflow.core.config``.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager

from rayflow.core import config

_lock = threading.Lock()
_depth = 0
_was_enabled = False
_frozen = False
_owned = False
_NOOP = contextlib.nullcontext()
FREEZE_ENV_VAR = config.GC_FREEZE_VAR
GC_ENV_VAR = config.GC_VAR


def own_process() -> None:
    """Mark this process as one rayflow owns (tracker, CLI, server): tuning defaults to on."""
    global _owned
    _owned = True


def owned() -> bool:
    return _owned


def pausing() -> bool:
    """Whether ``paused()`` pauses the collector: unless $RAYFLOW_GC is ``off``."""
    return config.gc_mode() != "off"


def tuning() -> bool:
    """Whether this process tunes the collector fully (pauses and the freeze):
    $RAYFLOW_GC when set, else ownership."""
    mode = config.gc_mode()
    return _owned if mode is None else mode == "tune"


def paused() -> AbstractContextManager[None]:
    """Collection off for the ``with`` block (unless $RAYFLOW_GC is ``off``: then a cheap
    no-op context)."""
    return _paused() if pausing() else _NOOP


@contextlib.contextmanager
def _paused() -> Iterator[None]:
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
    """``gc.freeze()`` once per process where it tunes the collector (see the module doc);
    whether it froze now."""
    global _frozen
    if not tuning() or not config.gc_freeze():
        return False
    with _lock:
        if _frozen:
            return False
        _frozen = True
    gc.freeze()
    return True
