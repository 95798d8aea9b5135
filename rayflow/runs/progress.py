"""Following a run while it runs: one polling loop (``poll``), and the tqdm renderer of
the Python API (``rf.run(..., progress=True)``, ``h.wait(progress=True)``).

``poll`` waits for a run in short steps and hands a ``Snapshot`` (component counts,
finished / running / failed, the streams' progress) to a renderer after each; the
tqdm renderer here and the CLI's rich one (``rayflow.cli.render``) are two renderers
of the same loop. Owns following a run with tqdm (``tqdm.auto``: a widget in Jupyter,
text in a terminal): a bar of finished components, and, while a stream (a chain of
batch components run as a pipeline) runs, one bar per stream of the input rows whose
batches left its last stage, with rows/s and the total when the input tells it
(``RunHandle.stream_progress()``). Where several bars cannot be drawn at once (plain
text that is not a terminal: a notebook without ipywidgets, a log file), the streams'
rows go in the component bar's postfix instead. ``progress=None`` means: show it in a
notebook or when stderr is a terminal. Follows anything with ``run_id``, ``wait``,
``progress`` and ``stream_progress`` (a ``RunHandle``); must not import
rayflow.runs.handle (it imports this), rayflow.service or rayflow.server, nor ray.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rayflow.core.states import FAILED_COMPONENT_STATES, FINAL_COMPONENT_STATES, QUEUED

FINAL = FINAL_COMPONENT_STATES
BAD = FAILED_COMPONENT_STATES


class Followed(Protocol):
    """What ``poll`` follows (a ``RunHandle``)."""

    @property
    def run_id(self) -> str: ...

    def wait(self, timeout: float | None = None) -> str: ...

    def progress(self) -> dict[str, int]: ...


@dataclass
class Snapshot:
    """What a renderer draws after each poll."""

    counts: dict[str, int]
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return sum(v for k, v in self.counts.items() if k in FINAL)

    @property
    def running(self) -> int:
        return self.counts.get("RUNNING", 0)

    @property
    def queued(self) -> int:
        """Handed to the executor, not begun yet (waiting for resources)."""
        return self.counts.get(QUEUED, 0)

    @property
    def failed(self) -> int:
        return sum(v for k, v in self.counts.items() if k in BAD)


def snapshot(handle: Any) -> Snapshot:
    return Snapshot(handle.progress(), _stream_progress(handle))


def poll(handle: Followed, render: Callable[[Snapshot], None], timeout: float | None = None, *,
         poll_s: float = 0.2) -> str:
    """Wait for ``handle`` in steps of ``poll_s``, calling ``render`` with a snapshot after
    each; return the run status (TimeoutError once ``timeout`` passes)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic()))
        try:
            status = handle.wait(timeout=step)
        except TimeoutError:
            status = None
        render(snapshot(handle))
        if status is not None:
            return status
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"run {handle.run_id} still running after {timeout}s")


def in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def wanted(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return in_notebook() or sys.stderr.isatty()


def _tqdm_class():
    """The notebook widget where ipywidgets is installed, else plain text (no warning)."""
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm
            return tqdm
        except ImportError:
            pass
    from tqdm.std import tqdm
    return tqdm


def _nested_ok(tqdm: Any) -> bool:
    """Several bars at once: notebook widgets or a terminal. Text elsewhere would fill with
    cursor-movement codes."""
    return getattr(tqdm, "__module__", "").startswith("tqdm.notebook") or sys.stderr.isatty()


def follow(handle: Followed, timeout: float | None = None, *, poll_s: float = 0.2) -> str:
    """Wait for ``handle`` with a bar of finished/total components (and one per stream);
    return the run status."""
    tqdm = _tqdm_class()
    total = sum(handle.progress().values())
    streams = StreamBars(tqdm) if _nested_ok(tqdm) else None
    with tqdm(total=total, desc=handle.run_id, unit="comp", dynamic_ncols=True, leave=True) as bar:

        def render(snap: Snapshot) -> None:
            postfix: dict[str, Any] = {"running": snap.running, "queued": snap.queued, "failed": snap.failed}
            if streams is not None:
                streams.update(snap.streams)
            else:
                postfix.update(stream_postfix(snap.streams))
            bar.set_postfix(refresh=False, **postfix)
            bar.update(snap.done - bar.n)

        try:
            return poll(handle, render, timeout, poll_s=poll_s)
        finally:
            if streams is not None:
                streams.close()


def _stream_progress(handle: Any) -> dict[str, dict[str, Any]]:
    read = getattr(handle, "stream_progress", None)
    return read() if read is not None else {}


def stream_postfix(snapshots: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each stream's rows as one postfix entry: ``{"aggregate": "12.3M/33.6M rows @ 2.71M/s (96 batches)"}``."""
    from tqdm.std import tqdm

    out = {}
    for last, snap in snapshots.items():
        rows, total = tqdm.format_sizeof(snap.get("rows", 0)), snap.get("total_rows")
        done = f"{rows}/{tqdm.format_sizeof(total)}" if total is not None else rows
        out[last] = (f"{done} rows @ {tqdm.format_sizeof(snap.get('rows_per_s') or 0)}/s "
                     f"({snap.get('batches', 0)} batches)")
    return out


def stream_label(snapshot: dict[str, Any]) -> str:
    """``parse -> transform -> aggregate`` (the first and last two of a longer stream)."""
    stages = list(snapshot.get("stages") or ["stream"])
    if len(stages) > 4:
        stages = [stages[0], "...", *stages[-2:]]
    return " -> ".join(stages)


class StreamBars:
    """One bar per stream, made on its first snapshot: input rows through the last stage
    (``unit_scale``: 33.6M/33.6M, with rows/s), the batches as a postfix; the total
    appears when the input tells it."""

    def __init__(self, tqdm: Any) -> None:
        self._tqdm = tqdm
        self._bars: dict[str, Any] = {}

    def update(self, snapshots: dict[str, dict[str, Any]]) -> None:
        for last, snap in snapshots.items():
            bar = self._bars.get(last)
            if bar is None:
                bar = self._bars[last] = self._tqdm(
                    total=snap.get("total_rows"), desc=stream_label(snap), unit="rows", unit_scale=True,
                    dynamic_ncols=True, leave=True, position=len(self._bars) + 1)
            if bar.total is None and snap.get("total_rows") is not None:
                bar.total = snap["total_rows"]
            bar.set_postfix(batches=snap.get("batches", 0), refresh=False)
            bar.update(max(0, snap.get("rows", 0) - bar.n))

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
