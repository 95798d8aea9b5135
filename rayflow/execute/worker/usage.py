"""Peak memory of one component call, measured in the worker that ran it.

On Linux the kernel keeps a process's peak resident set size and lets the process
reset it (writing 5 to /proc/self/clear_refs). The peak is read with ``getrusage``
(``ru_maxrss`` follows the reset peak; a fraction of a microsecond) once a first
reading in the process has confirmed it agrees with VmHWM in /proc/self/status;
otherwise from that file.

Resetting takes the process's memory-map lock, which Ray's own threads in the worker
contend for: over thousands of tiny calls it cost more than the calls. So a call
resets the peak only when the standing peak is more than ``SLACK_BYTES`` above the
resident size at its start (an earlier call's peak would hide its own). A reported
peak is therefore exact when the call set it, and otherwise at most ``SLACK_BYTES``
above the call's true peak. Elsewhere (or where /proc is not writable) nothing is
measured and the peak is None. Set RAYFLOW_MEASURE_MEMORY=0 to turn it off. No ray.
"""

from __future__ import annotations

import os
import resource

from rayflow.core import config

AGREE_BYTES = 4 << 20   # getrusage and VmHWM this close after a reset: use getrusage
SLACK_BYTES = 16 << 20  # a standing peak this far above the resident size is reset first
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

_fd: int | None = None     # /proc/self/clear_refs, open for writing
_statm: int | None = None  # /proc/self/statm, open for reading (resident size, cheaply)
_rusage = False            # ru_maxrss follows the reset peak in this process
_off = False


def _forget() -> None:
    """In a forked child: the descriptors are the parent's; open the child's on first use."""
    global _fd, _statm
    _fd = _statm = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget)


def _open() -> int | None:
    global _fd, _off, _rusage, _statm
    if _fd is not None:
        return _fd
    if _off:
        return None
    if not config.measure_memory():
        _off = True
        return None
    try:
        fd = os.open("/proc/self/clear_refs", os.O_WRONLY)
        _statm = os.open("/proc/self/statm", os.O_RDONLY)
        os.write(fd, b"5")
        hwm = _status_peak()
    except OSError:
        _off = True
        return None
    _fd = fd
    _rusage = hwm is not None and abs(_rusage_peak() - hwm) <= AGREE_BYTES
    return _fd


_WHO = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


def _rusage_peak() -> int:
    """The process's peak RSS. Linux reports the same ``ru_maxrss`` (the memory map's high
    water mark) for RUSAGE_THREAD as for RUSAGE_SELF, without summing every thread's times."""
    return resource.getrusage(_WHO).ru_maxrss * 1024   # KiB on Linux


def _status_peak() -> int | None:
    with open("/proc/self/status", "rb") as f:
        status = f.read()
    at = status.find(b"VmHWM:")
    if at < 0:
        return None
    try:
        return int(status[at + 6:status.index(b"kB", at)]) * 1024
    except ValueError:
        return None


def _resident() -> int:
    return int(os.pread(_statm, 128, 0).split()[1]) * PAGE   # type: ignore[arg-type]


def start() -> bool:
    """Get ready to measure a call (resetting the peak when it would hide the call's);
    False when memory is not measured here."""
    fd = _open()
    if fd is None:
        return False
    try:
        if not _rusage or _rusage_peak() - _resident() > SLACK_BYTES:
            os.write(fd, b"5")
    except (OSError, ValueError, IndexError):
        return False
    return True


def peak() -> int | None:
    """The peak resident set size since ``start()`` (bytes), or None when not measured."""
    if _open() is None:
        return None
    if _rusage:
        return _rusage_peak()
    try:
        return _status_peak()
    except OSError:
        return None
