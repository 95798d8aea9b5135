"""Resolving names in a spec: ``module:callable`` functions and exception classes.

Owns importing what a spec or a worker names (the spec converter and both executors use it), with errors that say which component asked for
what and why it failed. Must not import ray.
"""

from __future__ import annotations

import builtins
import importlib
from collections.abc import Callable
from typing import Any

from rayflow.core.errors import FunctionImportError, SpecError


def import_object(ref: str, *, component: str, field: str = "function") -> Any:
    """Import ``module:attr.path`` (or ``module.attr``) for ``component``."""
    module_name, sep, attr = ref.partition(":")
    if not sep:
        module_name, _, attr = ref.rpartition(".")
    if not module_name or not attr:
        raise FunctionImportError(
            f"component {component!r} field {field!r}: expected 'module:callable', got {ref!r}",
            component=component,
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise FunctionImportError(
            f"component {component!r}: cannot import {field} {ref!r}: {exc}", component=component
        ) from None
    except Exception as exc:  # a module that fails while importing
        raise FunctionImportError(
            f"component {component!r}: importing module {module_name!r} for {field} {ref!r} raised "
            f"{type(exc).__name__}: {exc}",
            component=component,
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise FunctionImportError(
                f"component {component!r}: cannot import {field} {ref!r}: "
                f"module {module_name!r} has no attribute {attr!r}",
                component=component,
            ) from None
    return obj


def import_callable(ref: str, *, component: str) -> Callable[..., Any]:
    obj = import_object(ref, component=component)
    obj = getattr(obj, "fn", obj) if _is_component(obj) else obj
    if not callable(obj):
        raise FunctionImportError(
            f"component {component!r} field 'function': {ref!r} is a {type(obj).__name__}, not callable",
            component=component,
        )
    return obj


def import_exception(name: str, *, component: str) -> type[BaseException]:
    """``ValueError`` (a builtin) or ``module:Class``."""
    obj = getattr(builtins, name, None) if ":" not in name and "." not in name else None
    if obj is None:
        obj = import_object(name, component=component, field="retry_exceptions")
    if not (isinstance(obj, type) and issubclass(obj, BaseException)):
        raise SpecError(
            f"component {component!r} field 'retry_exceptions': {name!r} is not an exception class",
            component=component,
        )
    return obj


def _is_component(obj: Any) -> bool:
    """A declared component (``@rf.component``): its class says so (core knows no dsl)."""
    return getattr(type(obj), "rayflow_component", False) is True
