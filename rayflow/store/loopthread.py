"""A private asyncio event loop in a daemon thread, for a synchronous port over async I/O.

Owns the thread, submitting coroutines to it from any other thread, and stopping it
(cancelling what still runs); ``abandon`` ends a dropped store's pool and loop without
waiting. The PostgreSQL store drives asyncpg through it. Imports no driver; no Ray.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")
CLOSE_TIMEOUT_S = 5.0    # how long stop() waits for the loop's thread


class LoopThread:
    """One asyncio event loop in a private daemon thread. ``run(coro)`` submits a coroutine
    from any other thread and waits for its result."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[T]) -> T:
        if self.loop.is_closed() or not self._thread.is_alive():
            coro.close()  # type: ignore[attr-defined]
            raise RuntimeError("the run store's event loop has stopped")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise RuntimeError("the run store was closed during the call") from None

    def stop(self) -> None:
        """Cancel what still runs on the loop, stop it and wait for the thread."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(_cancel_all_and_stop, self.loop)
        self._thread.join(CLOSE_TIMEOUT_S)
        if not self._thread.is_alive():
            self.loop.close()


def _cancel_all_and_stop(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.call_soon(loop.stop)   # after the cancelled tasks had their turn


def abandon(loop: asyncio.AbstractEventLoop, pool: Any) -> None:
    """A store dropped without close(): end its connections and its thread, without waiting
    (this may run in any thread, the loop's own included)."""
    if not loop.is_closed():
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_terminate_and_stop, loop, pool)


def _terminate_and_stop(loop: asyncio.AbstractEventLoop, pool: Any) -> None:
    pool.terminate()
    _cancel_all_and_stop(loop)
