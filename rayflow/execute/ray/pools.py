"""Actor components on Ray: a pool of actors per component, each call on its least loaded member.

Owns the pool actors (each holds one instance of the component's class, or its
function, and serves its calls), creating a pool on its component's first call, with
``concurrency`` members and the component's resources, and killing it as soon as its
last call is final, so it does not hold CPUs the rest of the run needs. Ray restarts a
member that dies and retries its calls up to the component's ``max_retries`` (Ray's
default for system failures when 0).
"""

from __future__ import annotations

import inspect
from typing import Any

import ray

from rayflow.execute.port import CheckpointTarget, Completion, LogTarget
from rayflow.execute.ray.calls import (
    RAY_DEFAULT_SYSTEM_RETRIES,
    encode_info,
    imported,
    num_returns,
    one_completion,
    resource_options,
    retry_options,
    run_call,
)
from rayflow.execute.ray.strategy import InFlight
from rayflow.plan import Plan, Task


class _PoolActor:
    """One member of an actor component's pool: holds the instance, serves calls."""

    def __init__(self, fn: Any, fn_ref: str | None, component: str, init_kwargs: dict) -> None:
        target = fn if fn is not None else imported(fn_ref or "", component)
        self._target = target(**init_kwargs) if inspect.isclass(target) else target

    def call(self, blob: bytes, *deps):
        return run_call(self._target, blob, deps)


_POOL_ACTOR = ray.remote(_PoolActor)


class _Pool:
    def __init__(self, task: Task, remaining: int) -> None:
        o = task.options
        opts = resource_options(task)
        opts.update(max_restarts=o.max_retries or RAY_DEFAULT_SYSTEM_RETRIES,
                    max_task_retries=o.max_retries or RAY_DEFAULT_SYSTEM_RETRIES)
        actor_cls = _POOL_ACTOR.options(**opts)
        fn = None if task.fn_ref and task.fn is None else task.fn
        self.actors = [actor_cls.remote(fn, task.fn_ref, task.id, dict(o.init_kwargs)) for _ in range(o.concurrency)]
        self.load = [0] * len(self.actors)
        self.remaining = remaining

    def pick(self) -> int:
        i = min(range(len(self.actors)), key=self.load.__getitem__)
        self.load[i] += 1
        return i

    def kill(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []


class PoolStrategy:
    """Calls on actor pools (rayflow.execute.ray.strategy.Strategy)."""

    def __init__(self, calls: InFlight) -> None:
        self._calls = calls
        self._checkpoints = False
        self._logs: LogTarget | None = None
        self._sizes: dict[str, int] = {}              # pool key -> its components' calls in this run
        self._pools: dict[str, _Pool] = {}
        self._pool_of: dict[str, tuple[str, int]] = {}   # component id -> (pool key, member)

    def start(self, plan: Plan, *, checkpoints: CheckpointTarget | None, logs: LogTarget | None = None) -> None:
        self._checkpoints = checkpoints is not None
        self._logs = logs
        self._sizes = {}
        for task in plan.tasks.values():
            if task.pool:
                self._sizes[task.pool] = self._sizes.get(task.pool, 0) + 1

    def submit(self, task: Task, deps: list[Any]) -> Any:
        info = encode_info(task, self._checkpoints, self._logs, self._calls.began_key)
        pool = self._pools.get(task.pool)
        if pool is None:
            pool = self._pools[task.pool] = _Pool(task, self._sizes.get(task.pool, 1))
        i = pool.pick()
        self._pool_of[task.id] = (task.pool, i)
        retry_exceptions = retry_options(task)["retry_exceptions"]  # retry count: the actor's max_task_retries
        method = pool.actors[i].call.options(num_returns=num_returns(task), retry_exceptions=retry_exceptions)
        return self._calls.started(task, method.remote(info, *deps))

    def complete(self, head: str, value: Any, value_ref: Any) -> list[Completion]:
        self._done(head)
        return one_completion(head, value, value_ref)

    def head_of(self, cid: str) -> str:
        return cid

    def stops(self, head: str, asked: set[str]) -> bool:
        return True

    def cancel(self, head: str) -> None:
        self._done(head)   # an actor call Ray cannot cancel ends with its pool

    def shutdown(self) -> None:
        for pool in self._pools.values():
            pool.kill()
        self._pools.clear()
        self._pool_of.clear()

    def _done(self, cid: str) -> None:
        """``cid``'s call is final: its member's load drops; the pool's last call kills it."""
        where = self._pool_of.pop(cid, None)
        if where is None:
            return
        pool = self._pools.get(where[0])
        if pool is None:
            return
        pool.load[where[1]] -= 1
        pool.remaining -= 1
        if pool.remaining <= 0:
            pool.kill()
            del self._pools[where[0]]
