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

Anything else takes the public ``.remote()``. ``RAYFLOW_FAST_SUBMIT=0`` turns it off.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from typing import Any

import ray
from ray import remote_function

try:   # private: a Ray without it keeps the public path
    from ray._common.signature import DUMMY_TYPE
except ImportError:  # pragma: no cover - depends on the installed Ray
    DUMMY_TYPE = None

ENV_VAR = "RAYFLOW_FAST_SUBMIT"
# The options rayflow sets; a configured function with any other goes through .remote().
PLAIN_OPTIONS = frozenset({"num_returns", "num_cpus", "num_gpus", "memory", "resources", "max_retries",
                           "retry_exceptions", "max_calls"})
# What RemoteFunction._remote passes to the core worker, in order (whitespace-normalised).
EXPECTED_CALL = (
    'self._language, self._function_descriptor, list_args, name if name is not None else "", num_returns, '
    "resources, max_retries, retry_exceptions, retry_exception_allowlist, scheduling_strategy, "
    'worker.debugger_breakpoint, serialized_runtime_env_info or "{}", generator_backpressure_num_objects, '
    "num_objects_per_yield, enable_task_events, labels, label_selector, fallback_strategy,"
)


def enabled() -> bool:
    return os.environ.get(ENV_VAR, "1") != "0"


@functools.cache
def matches_ray() -> bool:
    """The installed Ray submits tasks with exactly the call this module makes."""
    if DUMMY_TYPE is None:
        return False
    try:
        source = inspect.getsource(remote_function.RemoteFunction._remote)
    except (OSError, TypeError):
        return False
    found = re.search(r"worker\.core_worker\.submit_task\((.*?)\)", source, re.S)
    return found is not None and " ".join(found.group(1).split()) == EXPECTED_CALL


def flat_args(args: tuple) -> list[Any]:
    """Positional arguments as the core worker takes them."""
    out: list[Any] = []
    for value in args:
        out += (DUMMY_TYPE, value)
    return out


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
        worker = ray._private.worker.global_worker
        if self._worker is not None and self._worker is getattr(worker, "core_worker", None):
            call = self._call   # decided for this core worker: the learned call, or .remote() for good
            if (call is not None and not worker.debugger_breakpoint
                    and not worker.should_capture_child_tasks_in_placement_group):
                refs = worker.core_worker.submit_task(*call[0], flat_args(args), *call[1])
                return refs[0] if len(refs) == 1 else refs
            return self.wrapper.remote(*args)
        refs = self.wrapper.remote(*args)
        self._learn()
        return refs

    def _learn(self) -> None:
        """Decide, once per core worker, between the learned call and ``.remote()``."""
        worker = ray._private.worker.global_worker
        self._call, self._worker = None, getattr(worker, "core_worker", None)
        if not (enabled() and matches_ray()):
            return
        base = self.base
        options = {**getattr(base, "_default_options", {}), **self.options}
        if (set(options) - PLAIN_OPTIONS or base._is_cross_language or base._is_generator
                or remote_function._task_launch_hook is not None
                or getattr(base, "_decorator", None) is not None
                or base._last_export_cluster_and_job != worker.current_cluster_and_job
                or worker.should_capture_child_tasks_in_placement_group
                or _tracing_on()):
            return
        task_options = _with_defaults(options)
        retry = task_options["retry_exceptions"]
        allowlist = tuple(retry) if isinstance(retry, (list, tuple)) else None
        num_returns = task_options["num_returns"]
        if not isinstance(num_returns, int) or num_returns < 1:
            return
        head = (base._language, base._function_descriptor)
        tail = ("", num_returns, ray._common.utils.resources_from_ray_options(task_options), task_options["max_retries"],
                True if allowlist is not None else bool(retry), allowlist, "DEFAULT", b"",
                base._serialized_base_runtime_env_info or "{}", -1, 1, None, None, None, None)
        self._call = (head, tail)


def _with_defaults(options: dict[str, Any]) -> dict[str, Any]:
    """Ray's task options with their defaults, as ``_remote`` fills them."""
    out = {}
    for key, option in remote_function.ray_option_utils.task_options.items():
        default = option.default_value
        if key == "max_retries":
            default = int(os.environ.get("RAY_TASK_MAX_RETRIES", default))
        out[key] = options.get(key, default)
    return out


def _tracing_on() -> bool:
    try:
        from ray.util.tracing.tracing_helper import _is_tracing_enabled
    except ImportError:
        return True
    return bool(_is_tracing_enabled())
