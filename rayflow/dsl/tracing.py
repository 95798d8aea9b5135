"""The tracing context: which workflow, if any, is being traced in this context.

Owns the context variable that ``@rf.workflow`` sets while it traces its function, and
that a component's call reads to decide between recording itself (inside a trace) and
calling its function (outside one). Kept apart from ``dsl.workflow`` so that components,
dynamic maps and groups read it without importing the tracer. Pure; must not import ray.
"""

from __future__ import annotations

import contextvars
from typing import Any

BUILDER: contextvars.ContextVar[Any] = contextvars.ContextVar("rayflow_builder", default=None)


def current_builder() -> Any:
    """The builder of the workflow being traced here, or None outside a trace."""
    return BUILDER.get()
