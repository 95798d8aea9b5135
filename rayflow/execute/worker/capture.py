"""What one attempt prints and logs, captured in the process that runs it.

Owns the per-attempt log: ``sys.stdout`` and ``sys.stderr`` are replaced once per process
by routers that send a write made in a thread running an attempt to that attempt's log
(and every other write where it went before), and one handler on the root logger adds
that thread's ``logging`` records (level, time, logger, message). Each log keeps its last
``max_bytes`` (the tail; the cut is marked at the top). What happens to a log at the end
of its attempt (``end``):

- a small one (up to ``inline_bytes``) rides back with the call's metadata
  (``meta["log"]``), and the driver keeps it with the run (rayflow/store/logs.py);
- a larger one, one that was followed while it ran, and a failed attempt's (Ray may retry
  the call and drop its metadata) are written from here to the run's log location
  (``meta["log_saved"]``), never pulled through the driver; the metadata carries the tail;
- with no location a worker may write to (one whose URL holds a secret), the tail up to
  ``inline_bytes`` rides back instead.

A daemon thread writes the log of every attempt running longer than ``FLUSH_S`` to the
location every ``FLUSH_S`` while it runs, so it can be followed. Output of threads a
component starts itself, and of C code writing to file descriptor 1 or 2, is not captured.
Pure Python; must not import ray.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from typing import Any, NamedTuple

FLUSH_S = 2.0            # a running attempt's log is written to the location this often
TAIL_LINES = 40          # lines of a log the metadata carries when the whole log is elsewhere
_local = threading.local()
_active: dict[int, Tail] = {}   # id -> the logs of attempts now running, for the flusher
_active_lock = threading.Lock()
_flusher: threading.Thread | None = None
_stores: dict[str, Any] = {}


class LogTarget(NamedTuple):
    """Where a run's attempts' logs go (plain data sent with every call; None: no capture).
    ``url``: the location workers write to (None: workers write none)."""

    url: str | None
    run_id: str
    max_bytes: int = 1 << 20
    inline_bytes: int = 16 * 1024   # 0: every log is written here (a map's items: no driver sees their meta)
    echo: bool = False


class Tail:
    """One attempt's log: the last ``max_bytes`` written to it, and how much was cut."""

    __slots__ = ("target", "component", "attempt", "started", "_chunks", "_size", "cut", "_changed", "saved",
                 "outer")

    def __init__(self, target: LogTarget, component: str, attempt: int) -> None:
        self.target = target
        self.component = component
        self.attempt = attempt       # from 1
        self.started = time.monotonic()
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self.cut = 0                 # bytes dropped from the head
        self._changed = False        # written to since the flusher last saved it
        self.saved = False           # the location has a copy (the final one must go there too)
        self.outer: Tail | None = None   # the log this thread wrote to before (a map's, around its items)

    def write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        if not data:
            return
        self._chunks.append(data)
        self._size += len(data)
        self._changed = True
        if self._size > 2 * self.target.max_bytes:   # trimmed now and then, not at every write
            self._trim()

    def _trim(self) -> None:
        keep, chunks = self.target.max_bytes, self._chunks
        while chunks and self._size - len(chunks[0]) >= keep:
            self._size -= len(chunks[0])
            self.cut += len(chunks.popleft())
        if self._size > keep:   # the head chunk straddles the bound
            extra = self._size - keep
            chunks[0] = chunks[0][extra:]
            self._size, self.cut = keep, self.cut + extra

    def empty(self) -> bool:
        return not self._size

    def text(self) -> str:
        """The kept tail as text, starting at a line when some was cut (reads a snapshot:
        the flusher calls it while the attempt writes)."""
        data, cut = b"".join(list(self._chunks)), self.cut
        if len(data) > self.target.max_bytes:
            extra = len(data) - self.target.max_bytes
            data, cut = data[extra:], cut + extra
        if cut:
            nl = data.find(b"\n")
            if 0 <= nl < len(data) - 1:
                data, cut = data[nl + 1:], cut + nl + 1
            head = f"[rayflow: the first {cut:,} bytes of this log were cut; the last {len(data):,} are kept]\n"
            return head + data.decode("utf-8", "replace")
        return data.decode("utf-8", "replace")


def tail_lines(text: str, n: int = TAIL_LINES) -> str:
    """The last ``n`` lines of ``text``."""
    lines = text.splitlines()
    return "\n".join(lines[-n:])


class _Router:
    """Stands in for ``sys.stdout`` or ``sys.stderr``: a thread running an attempt writes
    to its log (and, with echo, also here); every other write goes to ``stream``."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        log = getattr(_local, "log", None)
        if log is None:
            return self._stream.write(text)
        log.write(text)
        if log.target.echo:
            self._stream.write(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if getattr(_local, "log", None) is None or _local.log.target.echo:
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:   # encoding, fileno, isatty, buffer, ...
        return getattr(self._stream, name)


class _Handler(logging.Handler):
    """On the root logger: a record logged by a thread running an attempt goes to its log.
    Other records are left to the other handlers; with none anywhere, a warning or worse
    is printed to stderr, as Python does without this handler (``logging.lastResort``)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        log = getattr(_local, "log", None)
        if log is not None:
            try:
                log.write(self.format(record) + "\n")
            except Exception:  # noqa: BLE001 - a record that cannot be formatted is dropped, as logging does
                self.handleError(record)
            return
        if record.levelno >= logging.WARNING and not _handled_elsewhere(record):
            logging.lastResort.handle(record)


def _handled_elsewhere(record: logging.LogRecord) -> bool:
    logger: Any = logging.getLogger(record.name)
    while logger is not None:
        if any(h is not _HANDLER for h in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


_HANDLER = _Handler()


def _install() -> None:
    """Route this process's output through the routers (again if someone replaced them)."""
    if type(sys.stdout) is not _Router:
        sys.stdout = _Router(sys.stdout)
    if type(sys.stderr) is not _Router:
        sys.stderr = _Router(sys.stderr)
    root = logging.getLogger()
    if _HANDLER not in root.handlers:
        root.addHandler(_HANDLER)


def begin(target: LogTarget, component: str, attempt: int) -> Tail:
    """Start capturing ``component``'s attempt (from 1) in this thread."""
    log = start(target, component, attempt)
    log.outer = getattr(_local, "log", None)
    _local.log = log
    return log


def start(target: LogTarget, component: str, attempt: int) -> Tail:
    """A new log for ``component``'s attempt, followed by the flusher; no thread writes to it
    until one is ``bind``-ed to it (a stream stage binds it around each batch)."""
    _install()
    log = Tail(target, component, attempt)
    if target.url is not None:
        with _active_lock:
            _active[id(log)] = log
        _start_flusher()
    return log


def current() -> Tail | None:
    """The log this thread writes to (None: not capturing)."""
    return getattr(_local, "log", None)


def bind(log: Tail | None) -> None:
    """Capture this thread's output into ``log`` (a helper thread running the attempt)."""
    _local.log = log


def end(log: Tail, meta: dict[str, Any], *, failed: bool) -> None:
    """Stop capturing; put what the driver needs of the log in ``meta`` (see the module's
    docstring), writing it to the location when it goes there."""
    _local.log = log.outer
    with _active_lock:
        _active.pop(id(log), None)
    if log.empty() and not log.saved:
        return
    target, text = log.target, log.text()
    small = len(text) <= target.inline_bytes
    if target.url is not None and (log.saved or failed or not small):
        if _save(log, text):
            meta["log"], meta["log_saved"] = (text if small else tail_lines(text)), True
            return
    meta["log"] = text if small else _last_bytes(text, target.inline_bytes)


def _last_bytes(text: str, n: int) -> str:
    kept = tail_lines(text[-n:], TAIL_LINES * 4)
    return f"[rayflow: this log was cut to its last {len(kept):,} characters]\n{kept}"


def _save(log: Tail, text: str) -> bool:
    """Write ``log`` to its location; False (and a warning on stderr) when it cannot."""
    from rayflow.store.logs import AttemptLog, LogStore

    target = log.target
    try:
        store = _stores.get(target.url)   # type: ignore[arg-type]
        if store is None:
            store = _stores[target.url] = LogStore(target.url)   # type: ignore[index,arg-type]
        store.write_attempt(target.run_id, AttemptLog(log.component, log.attempt, text))
    except Exception as exc:  # noqa: BLE001 - a log that cannot be kept never fails the component
        sys.__stderr__.write(f"rayflow: the log of {log.component!r} was not written: {exc}\n")
        return False
    log.saved = True
    return True


def _start_flusher() -> None:
    global _flusher
    if _flusher is not None and _flusher.is_alive():
        return
    with _active_lock:
        if _flusher is None or not _flusher.is_alive():
            _flusher = threading.Thread(target=_flush_forever, name="rayflow-log-flush", daemon=True)
            _flusher.start()


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_S)
        now = time.monotonic()
        with _active_lock:
            due = [log for log in _active.values() if log._changed and now - log.started >= FLUSH_S]
        for log in due:
            log._changed = False
            _save(log, log.text())
