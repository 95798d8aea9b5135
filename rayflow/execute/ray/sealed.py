"""Values that hold a secret and must still reach another Ray process: a URL with its
password, an object that names one (a cache sink's tiers, a checkpoint location).

Ray keeps what a task or an actor call is given: an actor's creation arguments in the
GCS (to restart it), a call's arguments in its task spec (inlined, and shown by Ray's
tools). ``Sealed(value)`` puts ``value`` in the object store and travels as a reference
inside the argument (not a top-level one, which Ray would resolve and inline), so the
arguments hold an object id only; ``open()``, in the receiving process, fetches the
value. The submitting process owns the object: open it while that process lives (a
call it waits for), then keep the value, not the seal. Must not be used for large
values, nor log what it holds.
"""

from __future__ import annotations

from typing import Any

import ray


class Sealed:
    """``value`` in the object store; pickles as its object reference alone."""

    __slots__ = ("_ref",)

    def __init__(self, value: Any) -> None:
        self._ref = ray.put(value)

    def open(self) -> Any:
        return ray.get(self._ref)

    def __repr__(self) -> str:
        return "Sealed(<in the object store>)"


def unsealed(value: Any) -> Any:
    """``value`` opened when it is ``Sealed``, else itself."""
    return value.open() if isinstance(value, Sealed) else value
