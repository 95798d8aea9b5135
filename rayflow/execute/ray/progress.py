"""The progress channel on Ray: streams' coordinators and workers report, the driver reads.

One small named actor per cluster (``progress`` in namespace ``rayflow``, detached, no
CPU) keeps the latest snapshot of every running stream (see rayflow/data/progress.py
for what one holds), and the components that began running, per run (a worker tells a
call's start once it has run half a second: rayflow/execute/worker/running.py; the
driver takes them with ``BeganWatch.take``, never blocking). A stream's coordinator
sends it one fire-and-forget call at most every ``REPORT_EVERY_S`` (never a blocking
call per batch); the process driving
the run reads it without blocking: ``StreamWatch.latest()`` returns what the last read
brought and starts the next one. A finished stream's last snapshot comes back with its
timings (no race with the channel), and its entry is dropped from the actor.

``RAYFLOW_STREAM_PROGRESS=0`` turns the channel off (no actor, no reports: a component
then shows as running from its submission). One of the modules importing ray.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from typing import Any

import ray

from rayflow.core import config

NAME = "progress"
NAMESPACE = "rayflow"
KEEP = 1000                 # snapshots kept at most (streams whose driver never said they ended)
ENV_VAR = "RAYFLOW_STREAM_PROGRESS"
FINAL_KEY = "__progress__"   # the key of the last snapshot in a stream's timings dict
KEEP_BEGAN = 100_000        # starts kept per run until its driver takes them
TAKE_EVERY_S = 0.5          # the driver reads the starts at most this often


class ProgressBoard:
    """The latest snapshot per stream key."""

    def __init__(self) -> None:
        self._latest: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._began: collections.OrderedDict[str, list[Any]] = collections.OrderedDict()

    def report(self, key: str, snapshot: dict[str, Any]) -> None:
        self._latest[key] = snapshot
        self._latest.move_to_end(key)
        while len(self._latest) > KEEP:
            self._latest.popitem(last=False)

    def read(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        return {k: self._latest[k] for k in keys if k in self._latest}

    def forget(self, keys: list[str]) -> None:
        for k in keys:
            self._latest.pop(k, None)
            self._began.pop(k, None)

    def began(self, key: str, items: list[Any]) -> None:
        """Components of the run under ``key`` that began running: (component, attempt, started_at)."""
        kept = self._began.setdefault(key, [])
        kept.extend(items)
        del kept[:-KEEP_BEGAN]
        self._began.move_to_end(key)
        while len(self._began) > KEEP:
            self._began.popitem(last=False)

    def take_began(self, key: str) -> list[Any]:
        return self._began.pop(key, [])


_BOARD = ray.remote(ProgressBoard).options(name=NAME, namespace=NAMESPACE, lifetime="detached",
                                           get_if_exists=True, num_cpus=0)


def enabled() -> bool:
    return config.stream_progress()


def board() -> Any:
    """The cluster's board, created on first use."""
    return _BOARD.remote()


class Channel:
    """Where one stream's coordinator reports: the board and the stream's key (picklable)."""

    def __init__(self, board: Any, key: str) -> None:
        self.board = board
        self.key = key

    def send(self, snapshot: dict[str, Any]) -> None:
        """Fire and forget: the coordinator never waits on the board."""
        self.board.report.remote(self.key, snapshot)


class StreamWatch:
    """The driver's side: one per run (its executor's), keyed by each stream's last stage."""

    def __init__(self) -> None:
        self._board: Any = None
        self._keys: dict[str, str] = {}              # last stage -> key, while the stream runs
        self._latest: dict[str, dict[str, Any]] = {}   # last stage -> snapshot
        self._pending: tuple[Any, dict[str, str]] | None = None   # the read in flight, and for which keys
        self._lock = threading.Lock()

    def channel(self, stream: tuple[str, ...]) -> Channel | None:
        """The channel of a stream about to start; None when progress is turned off."""
        if not enabled():
            return None
        if self._board is None:
            self._board = board()
        key = f"{uuid.uuid4().hex}:{stream[-1]}"
        with self._lock:
            self._keys[stream[-1]] = key
        return Channel(self._board, key)

    def finished(self, stream: tuple[str, ...], timings: Any) -> None:
        """A stream ended: keep the last snapshot its coordinator returned, if any."""
        last = stream[-1]
        with self._lock:
            key = self._keys.pop(last, None)
            if isinstance(timings, dict) and isinstance(timings.get(FINAL_KEY), dict):
                self._latest[last] = timings[FINAL_KEY]
        if key is not None and self._board is not None:
            self._board.forget.remote([key])

    def latest(self) -> dict[str, dict[str, Any]]:
        """The snapshots known now, by last stage; takes the read in flight if it has
        arrived and starts the next (never waits)."""
        with self._lock:
            if self._pending is not None:
                ready, _ = ray.wait([self._pending[0]], timeout=0)
                if ready:
                    self._take(self._pending)
            if self._pending is None and self._keys:
                self._pending = (self._board.read.remote(list(self._keys.values())), dict(self._keys))
            return {k: dict(v) for k, v in self._latest.items()}

    def _take(self, pending: tuple[Any, dict[str, str]]) -> None:
        ref, keys = pending
        self._pending = None
        try:
            got = ray.get(ref)
        except Exception:  # noqa: BLE001 - progress is best effort; the run goes on
            return
        for last, key in keys.items():
            if key in got and self._keys.get(last) == key:   # a finished stream keeps its final snapshot
                self._latest[last] = got[key]


class BeganWatch:
    """The driver's side of the starts of one run's calls: ``key`` goes into each call's
    CallInfo (``running``); ``take`` returns what the last read brought and starts the next
    one (at most every ``TAKE_EVERY_S``; never waits)."""

    def __init__(self) -> None:
        self.key: str | None = None
        self._board: Any = None
        self._pending: Any = None
        self._last = 0.0

    def begin(self) -> None:
        """A run starts: a new key, or None when the channel is off."""
        self.end()
        if enabled():
            self._board = _shared_board()
            self.key = uuid.uuid4().hex

    def take(self) -> list[tuple[str, int, float]]:
        if self.key is None:
            return []
        got: list[Any] = []
        if self._pending is not None:
            ready, _ = ray.wait([self._pending], timeout=0)
            if ready:
                try:
                    got = ray.get(self._pending)
                except Exception:  # noqa: BLE001 - best effort: the starts come back with the calls
                    got = []
                    _SHARED.clear()   # the board may be gone: the next run looks it up again
                self._pending = None
        now = time.monotonic()
        if self._pending is None and now - self._last >= TAKE_EVERY_S:
            self._last = now
            try:
                self._pending = self._board.take_began.remote(self.key)
            except Exception:  # noqa: BLE001 - a handle of an earlier Ray session: look it up again next run
                _SHARED.clear()
                self.key = None
        return [(str(c), int(a), float(t)) for c, a, t in got]

    def end(self) -> None:
        if self.key is not None and self._board is not None:
            try:
                self._board.forget.remote([self.key])
            except Exception:  # noqa: BLE001 - the board is gone with its session: nothing to forget
                _SHARED.clear()
        self.key, self._pending = None, None


_SHARED: list[Any] = []   # this process's handle on the board (a driver's or a worker's), looked up once


def _shared_board() -> Any:
    if not _SHARED:
        _SHARED.append(board())
    return _SHARED[0]


def tell_began(key: str, items: list[tuple[str, int, float]]) -> None:
    """A worker's sink (rayflow/execute/worker/running.py): fire and forget to the board."""
    _shared_board().began.remote(key, items)
