"""Submitting a configured remote function without redoing its option handling per call.

Owns the driver's per-call submission path. Ray's ``.remote()`` re-derives, on every
call, what is fixed for a configured function: its ~25 task options with their
defaults, the resource dict, the placement-group context, the binding of the
arguments to the signature. Over thousands of tiny components that costs about as
much driver CPU as the submission itself (~25 of ~55 us per call on this machine).
All of it ends in one call on Ray's core worker, ``submit_task(language, descriptor,
list_args, ...)``, whose arguments other than ``list_args`` are the same for every
call of a configured function.

A ``Configured`` function submits its first call through the public ``.remote()``
(which exports the function), then works out the rest of that call once, with Ray's
own helpers (``resources_from_ray_options``, the retry options), and passes it with
each later call's arguments. It does so only where the outcome is certain to match:

- the installed Ray's ``RemoteFunction._remote`` makes exactly the ``submit_task``
  call this module was written against (its source is compared, once per process);
- the options are the plain ones rayflow sets (resources, returns, retries): no
  name, placement group, scheduling strategy, runtime env or labels; no generator;
- the driver is not inside a placement group that captures child tasks, no task
  launch hook or tracing is installed, and the core worker is the one it learned with
  (a new ``ray.init`` relearns).

Anything else takes the public ``.remote()``. ``RAYFLOW_FAST_SUBMIT=0`` turns it off. What
reads or calls Ray's internals (the comparison, the learned call, the submission) is in
rayflow.execute.ray.compat; this module decides when to use it.
"""

from __future__ import annotations

from typing import Any

from rayflow.core import config
from rayflow.execute.ray import compat

ENV_VAR = "RAYFLOW_FAST_SUBMIT"


def enabled() -> bool:
    return config.fast_submit()


class Configured:
    """A remote function with rayflow's options: ``remote(*args)`` as ``.options(...).remote``."""

    __slots__ = ("base", "options", "wrapper", "_call", "_worker")

    def __init__(self, base: Any, options: dict[str, Any]) -> None:
        self.base = base
        self.options = options
        self.wrapper = base.options(**options)
        self._call: tuple | None = None    # (head, tail) of the learned submit_task call; None: .remote()
        self._worker: Any = None           # the core worker that decision was made with

    def remote(self, *args: Any) -> Any:
        if self._worker is not None and self._worker is compat.core_worker():
            call = self._call   # decided for this core worker: the learned call, or .remote() for good
            if call is not None:
                refs = compat.submit_learned(call, args)
                if refs is not None:
                    return refs
            return self.wrapper.remote(*args)
        refs = self.wrapper.remote(*args)
        self._learn()
        return refs

    def _learn(self) -> None:
        """Decide, once per core worker, between the learned call and ``.remote()``."""
        self._worker = compat.core_worker()
        self._call = compat.learn_call(self.base, self.options) if enabled() else None
