"""``@rf.component``: a function or class plus its options.

Inside a ``@rf.workflow`` function, calling a component records a node and returns
a NodeHandle; anywhere else it calls the plain function, so components stay
unit-testable. Owns option overrides (``.options``); must not import ray.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from rayflow.core.options import ComponentOptions, normalize
from rayflow.dsl.tracing import current_builder


class Component:
    """A callable with declared resources, retries, timeout and kind."""

    rayflow_component = True   # how code below the DSL (core.resolve) recognises one

    def __init__(self, fn: Callable[..., Any], options: ComponentOptions) -> None:
        self._fn = fn
        self._options = options
        functools.update_wrapper(self, fn, updated=())

    @property
    def fn(self) -> Callable[..., Any]:
        return self._fn

    @property
    def default_options(self) -> ComponentOptions:
        return self._options

    @property
    def base_name(self) -> str:
        return getattr(self._fn, "__name__", "component")

    def options(self, **overrides: Any) -> Component:
        """A configured copy, as Ray's ``.options``: id, resources, retries, timeout, ..."""
        return Component(self._fn, self._options.merged(overrides, component=overrides.get("id") or self.base_name))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = current_builder()
        if builder is not None:
            return builder.add(self, args, kwargs)
        if inspect.isclass(self._fn):
            return self._fn(**self._options.init_kwargs)(*args, **kwargs)
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<rayflow component {self.base_name} {self._options.describe()}>"


def component(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a component. Use bare (``@rf.component``) or with options.

    Options, with Ray's names and units: ``num_cpus`` (default 1), ``num_gpus``,
    ``memory`` (bytes or "512MiB"), ``resources`` (custom, dict), ``max_retries``,
    ``retry_exceptions``, ``timeout_s``, ``cache``, ``kind`` ("task", "actor", "batch"; a batch
    component is ``fn(batch, **config)`` over every ``pa.RecordBatch`` of its first argument,
    ``batch_size`` rows at most),
    ``concurrency`` (actor pool size), ``init_kwargs`` (actor class constructor),
    ``id``, ``version`` and ``fuse`` (True: may run inside one Ray task with neighbouring tiny
    components; False: never; None, the default: when its history says it takes under a few
    milliseconds; see docs/fusion.md).
    """

    def wrap(f: Callable[..., Any]) -> Component:
        name = getattr(f, "__name__", "component")
        if inspect.isclass(f) and "kind" not in options:
            opts = ComponentOptions(kind="actor")
        else:
            opts = ComponentOptions()
        opts = opts.merged(options, component=options.get("id") or name) if options else normalize(opts, component=name)
        if inspect.isclass(f) and opts.kind != "actor":
            raise TypeError(f"component {name!r}: a class must be an actor component (kind='actor'), got kind={opts.kind!r}")
        return Component(f, opts)

    if fn is not None:
        return wrap(fn)
    return wrap
