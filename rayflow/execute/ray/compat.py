"""Every use of Ray's private API in rayflow, each behind one small shim.

Tested with Ray 2.60 (the installed version). Each shim degrades to a public path (or a
neutral answer) where the private name it reads is missing; rayflow.execute.ray.submit's
fast path additionally checks, once per process, that Ray's task submission is the code
it was written against (``matches_ray``).

- ``task_attempt()``: the attempt number of the task running in this worker (the core
  worker's ``get_current_task_attempt_number``); 0 where unknown.
- ``runs_ray_here()``: whether this process started the Ray processes it is connected
  to (``ray._private.worker._global_node`` and its processes).
- ``core_worker()``: the driver's current core worker (a new ``ray.init`` makes another).
- ``learn_call(remote_fn, options)``: the arguments of the core worker's ``submit_task``
  call that ``RemoteFunction._remote`` makes for a remote function with these options,
  other than the call's own arguments; None where they cannot be known for certain.
- ``submit_learned(call, args)``: submit through a learned call; None where the driver's
  state rules it out now (a debugger breakpoint, a placement group capturing child tasks).
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

_worker = ray._private.worker

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


def task_attempt() -> int:
    """The attempt number of the task this worker runs (0 where unknown)."""
    try:
        return _worker.global_worker.core_worker.get_current_task_attempt_number()
    except Exception:  # private API; timings stay right without it
        return 0


def runs_ray_here() -> bool:
    """Whether this process runs the Ray processes it is connected to (a local session)."""
    node = getattr(_worker, "_global_node", None)
    return node is not None and bool(getattr(node, "all_processes", None))


def core_worker() -> Any:
    return getattr(_worker.global_worker, "core_worker", None)


@functools.cache
def matches_ray() -> bool:
    """The installed Ray submits tasks with exactly the call ``submit_learned`` makes."""
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


def learn_call(base: Any, options: dict[str, Any]) -> tuple | None:
    """(head, tail) of the ``submit_task`` call around the arguments, for the remote
    function ``base`` (exported already) with ``options``; None: only ``.remote()`` is sure."""
    worker = _worker.global_worker
    if not matches_ray():
        return None
    options = {**getattr(base, "_default_options", {}), **options}
    if (set(options) - PLAIN_OPTIONS or base._is_cross_language or base._is_generator
            or remote_function._task_launch_hook is not None
            or getattr(base, "_decorator", None) is not None
            or base._last_export_cluster_and_job != worker.current_cluster_and_job
            or worker.should_capture_child_tasks_in_placement_group
            or _tracing_on()):
        return None
    task_options = _with_defaults(options)
    retry = task_options["retry_exceptions"]
    allowlist = tuple(retry) if isinstance(retry, (list, tuple)) else None
    num_returns = task_options["num_returns"]
    if not isinstance(num_returns, int) or num_returns < 1:
        return None
    head = (base._language, base._function_descriptor)
    tail = ("", num_returns, ray._common.utils.resources_from_ray_options(task_options), task_options["max_retries"],
            True if allowlist is not None else bool(retry), allowlist, "DEFAULT", b"",
            base._serialized_base_runtime_env_info or "{}", -1, 1, None, None, None, None)
    return head, tail


def submit_learned(call: tuple, args: tuple) -> Any:
    """The refs of a call submitted through ``call`` (from ``learn_call``); None where the
    driver's state rules the learned call out now (use ``.remote()``)."""
    worker = _worker.global_worker
    if worker.debugger_breakpoint or worker.should_capture_child_tasks_in_placement_group:
        return None
    refs = worker.core_worker.submit_task(*call[0], flat_args(args), *call[1])
    return refs[0] if len(refs) == 1 else refs


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
