"""One object per host in the process (a circuit breaker, a rate-limit bucket), shared by
every call to that host: made on first use, counted in ``stats()``, forgotten by
``reset()`` (tests). No ray."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar


class _Kept(Protocol):
    def stats(self) -> dict[str, Any]: ...


T = TypeVar("T", bound=_Kept)


class PerHost(Generic[T]):
    def __init__(self) -> None:
        self._items: dict[str, T] = {}
        self._lock = threading.Lock()

    def get(self, host: str, make: Callable[[], T]) -> T:
        """``host``'s object, ``make()`` on first use."""
        with self._lock:
            item = self._items.get(host)
            if item is None:
                item = self._items[host] = make()
            return item

    def stats(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            items = dict(self._items)
        return {host: item.stats() for host, item in items.items()}

    def reset(self) -> None:
        with self._lock:
            self._items.clear()
