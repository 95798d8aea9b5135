"""Peak memory of one component call, measured in the worker that ran it.

On Linux the kernel keeps a process's peak resident set size (VmHWM) and lets the
process reset it (writing 5 to /proc/self/clear_refs), so a call's peak is measured
exactly and cheaply (a few microseconds, on file descriptors kept open per process):
reset before, read after. Elsewhere (or where /proc is not writable) nothing is
measured and the peak is None. Set RAYFLOW_MEASURE_MEMORY=0 to turn it off. No ray.
"""

from __future__ import annotations

import os

_fds: tuple[int, int] | None = None   # (clear_refs for writing, status for reading)
_pid: int | None = None               # the process the descriptors belong to (forks re-open)
_off = False


def _open() -> tuple[int, int] | None:
    global _fds, _pid, _off
    if _off:
        return None
    if _fds is not None and _pid == os.getpid():
        return _fds
    if os.environ.get("RAYFLOW_MEASURE_MEMORY", "1") == "0":
        _off = True
        return None
    try:
        _fds = (os.open("/proc/self/clear_refs", os.O_WRONLY), os.open("/proc/self/status", os.O_RDONLY))
        _pid = os.getpid()
    except OSError:
        _off = True
        return None
    return _fds


def _field_kib(status: bytes, key: bytes) -> int | None:
    at = status.find(key)
    if at < 0:
        return None
    return int(status[at + len(key):status.index(b"kB", at)])


def start() -> int | None:
    """Reset the peak; return the resident set size now (bytes), or None when not measured."""
    fds = _open()
    if fds is None:
        return None
    try:
        os.write(fds[0], b"5")
        kib = _field_kib(os.pread(fds[1], 4096, 0), b"VmRSS:")
    except (OSError, ValueError):
        return None
    return None if kib is None else kib * 1024


def peak() -> int | None:
    """The peak resident set size since ``start()`` (bytes), or None when not measured."""
    fds = _open()
    if fds is None:
        return None
    try:
        kib = _field_kib(os.pread(fds[1], 4096, 0), b"VmHWM:")
    except (OSError, ValueError):
        return None
    return None if kib is None else kib * 1024
