"""A read-only dict for the mappings a Plan and its Tasks hold (``Plan.tasks``,
``Plan.inputs``, ``Task.kwargs``).

``FrozenDict`` is a dict whose mutating methods raise ``TypeError``, so reads stay as
fast as a dict's (the control loop reads ``plan.tasks`` for every component) while
assigning into ``plan.tasks`` fails. It pickles (plans travel to Ray actors and workers),
unlike ``types.MappingProxyType``, and an unpickled copy is frozen too. A changed plan
is a new value: ``Plan.with_task`` or ``dataclasses.replace``. Pure; no Ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class FrozenDict(dict[K, V]):
    """A dict that cannot be changed after it is made."""

    __slots__ = ()

    def _readonly(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is read-only: make a new value instead")

    __setitem__ = __delitem__ = __ior__ = _readonly   # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _readonly   # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict[K, V]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict[K, V]:
        from copy import deepcopy

        return type(self)({deepcopy(k, memo): deepcopy(v, memo) for k, v in self.items()})

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


EMPTY: FrozenDict[Any, Any] = FrozenDict()


def frozen(mapping: Mapping[K, V] | None) -> FrozenDict[K, V]:
    """``mapping`` as a FrozenDict (itself when it is one; the shared EMPTY when empty)."""
    if type(mapping) is FrozenDict:
        return mapping
    return FrozenDict(mapping) if mapping else EMPTY
