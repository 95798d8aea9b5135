"""Progress bars for the Python API: ``rf.run(..., progress=True)`` and ``h.wait(progress=True)``.

Owns following a run with tqdm (``tqdm.auto``: a widget in Jupyter, text in a
terminal). ``progress=None`` means: show it in a notebook or when stderr is a terminal.
The CLI draws its own bar with rich. Must not import ray.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rayflow.runs import RunHandle

FINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED", "SKIPPED", "UPSTREAM_FAILED", "CACHED"})
BAD = frozenset({"FAILED", "TIMED_OUT", "UPSTREAM_FAILED"})


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


def follow(handle: RunHandle, timeout: float | None = None, *, poll_s: float = 0.2) -> str:
    """Wait for ``handle`` with a bar of finished/total components; return the run status."""
    import time

    tqdm = _tqdm_class()

    deadline = None if timeout is None else time.monotonic() + timeout
    counts = handle.progress()
    total = sum(counts.values())
    with tqdm(total=total, desc=handle.run_id, unit="comp", dynamic_ncols=True, leave=True) as bar:
        while True:
            step = poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic()))
            try:
                status = handle.wait(timeout=step)
            except TimeoutError:
                status = None
            counts = handle.progress()
            done = sum(v for k, v in counts.items() if k in FINAL)
            bar.set_postfix(running=counts.get("RUNNING", 0), failed=sum(v for k, v in counts.items() if k in BAD),
                            refresh=False)
            bar.update(done - bar.n)
            if status is not None:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {handle.run_id} still running after {timeout}s")
