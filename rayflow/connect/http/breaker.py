"""Circuit breakers of HTTP components: one per host per process.

Owns the breaker's states and the process's registry of breakers (``for_host``), shared
by every call to a host. States:

- ``closed``: requests flow; ``failures`` consecutive failed attempts (a connection error,
  a timeout, a 5xx or a 429, as the caller reports them) open it;
- ``open``: no request is sent to the host; after ``reset_s`` the next request becomes the
  trial and the breaker goes ``half-open``;
- ``half-open``: exactly one trial request is in flight, every other request waits; the
  trial's success closes the breaker, its failure opens it again for ``reset_s``.

A request that finds the breaker open (or half-open) waits for it, at most ``wait_s``
(default ``reset_s * 2``), then fails with ``CircuitOpen``. Each transition is logged at
WARNING on ``rayflow.connect``. The clock and the sleep are parameters so that tests run
on a fake clock (give both: a fake clock with the real wait would never time out). No I/O,
no ray.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rayflow.connect.http.errors import HttpConfigError, HttpError
from rayflow.connect.http.hosts import PerHost

log = logging.getLogger("rayflow.connect")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
DEFAULTS = {"failures": 5, "reset_s": 30.0}


class CircuitOpen(HttpError):
    """No request was sent: the host's circuit breaker is open (or its trial is in flight)."""

    def __init__(self, host: str, state: str, retry_in_s: float) -> None:
        self.host, self.state, self.retry_in_s = host, state, retry_in_s
        why = " (its trial request still in flight)" if state == HALF_OPEN else ""
        super().__init__(f"circuit to {host} is {state}{why}: no request sent; "
                         f"retry in {retry_in_s:.1f}s")


class Breaker:
    """The circuit breaker of one host (module docstring)."""

    def __init__(self, host: str, failures: int = 5, reset_s: float = 30.0, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.host = host
        self.failures, self.reset_s = _checked(failures, reset_s)
        self._clock = clock
        self._sleep = sleep          # None: wait on the condition (woken by the trial's end)
        self._cond = threading.Condition()
        self._state = CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._trial_busy = False
        self.opened = 0              # times the breaker opened

    def configure(self, failures: int, reset_s: float) -> None:
        failures, reset_s = _checked(failures, reset_s)
        with self._cond:
            self.failures, self.reset_s = failures, reset_s

    @property
    def state(self) -> str:
        with self._cond:
            return self._state

    def retry_in_s(self) -> float:
        """Seconds until the next trial may start (0 when closed or half-open)."""
        with self._cond:
            return self._retry_in(self._clock())

    def _retry_in(self, now: float) -> float:
        if self._state != OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_s - now)

    def _to(self, state: str, why: str) -> None:
        log.warning("circuit to %s: %s -> %s %s", self.host, self._state, state, why)
        self._state = state
        if state == OPEN:
            self._opened_at = self._clock()
            self.opened += 1
        self._cond.notify_all()

    def _pause(self, seconds: float) -> None:
        if self._sleep is None:
            self._cond.wait(seconds)
        else:
            self._cond.release()
            try:
                self._sleep(seconds)
            finally:
                self._cond.acquire()

    def acquire(self, wait_s: float | None = None) -> bool:
        """Let one request through, waiting up to ``wait_s`` (default ``reset_s * 2``)
        while the breaker is open or its trial in flight. True: this request is the
        half-open trial, and its caller must report it (``success``, ``failure`` or
        ``release``). Raises ``CircuitOpen`` when the wait is over first."""
        budget = self.reset_s * 2 if wait_s is None else wait_s
        with self._cond:
            deadline = self._clock() + budget
            while True:
                now = self._clock()
                if self._state == CLOSED:
                    return False
                if self._state == OPEN and now >= self._opened_at + self.reset_s:
                    self._to(HALF_OPEN, f"after {self.reset_s:g}s (one trial request)")
                    self._trial_busy = True
                    return True
                if self._state == HALF_OPEN and not self._trial_busy:   # the last trial was abandoned
                    self._trial_busy = True
                    return True
                left = deadline - now
                if left <= 0:
                    retry = self._retry_in(now) if self._state == OPEN else self.reset_s
                    raise CircuitOpen(self.host, self._state, retry)
                until = self._retry_in(now) if self._state == OPEN else left
                self._pause(min(left, until))

    def success(self, trial: bool = False) -> None:
        """The host answered (any status but 5xx and 429)."""
        with self._cond:
            if trial and self._state == HALF_OPEN:
                self._trial_busy = False
                self._consecutive = 0
                self._to(CLOSED, "(the trial request succeeded)")
            elif self._state == CLOSED:
                self._consecutive = 0

    def failure(self, trial: bool = False) -> None:
        """An attempt failed: a connection error, a timeout, a 5xx or a 429."""
        with self._cond:
            if trial and self._state == HALF_OPEN:
                self._trial_busy = False
                self._to(OPEN, "(the trial request failed)")
            elif self._state == CLOSED:
                self._consecutive += 1
                if self._consecutive >= self.failures:
                    self._to(OPEN, f"after {self._consecutive} failures")
                    self._consecutive = 0
            # a late result of a request sent before the breaker opened changes nothing

    def release(self, trial: bool) -> None:
        """The trial ended without an answer either way (its caller gave up): the next
        request becomes the trial."""
        if not trial:
            return
        with self._cond:
            if self._state == HALF_OPEN and self._trial_busy:
                self._trial_busy = False
                self._cond.notify_all()

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {"state": self._state, "consecutive_failures": self._consecutive,
                    "opened": self.opened, "retry_in_s": round(self._retry_in(self._clock()), 3)}


def _checked(failures: Any, reset_s: Any) -> tuple[int, float]:
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
        raise HttpConfigError(f"breaker: failures must be an integer >= 1, not {failures!r}")
    try:
        reset = float(reset_s)
    except (TypeError, ValueError):
        raise HttpConfigError(f"breaker: reset_s must be a number of seconds, not {reset_s!r}") from None
    if not reset > 0:
        raise HttpConfigError(f"breaker: reset_s must be > 0, not {reset_s!r}")
    return failures, reset


def parse(config: dict | bool | None) -> tuple[int, float, float] | None:
    """``{"failures": 5, "reset_s": 30, "wait_s": 60}`` as (failures, reset_s, wait_s);
    None (defaults) or True: the defaults; False: no breaker."""
    if config is False:
        return None
    if config is None or config is True:
        config = {}
    if not isinstance(config, dict):
        raise HttpConfigError(f"breaker: expected a mapping like {{failures: 5, reset_s: 30}}, not {config!r}")
    unknown = set(config) - {"failures", "reset_s", "wait_s"}
    if unknown:
        raise HttpConfigError(f"breaker: unknown keys {sorted(unknown)} (expected failures, reset_s, wait_s)")
    failures, reset_s = _checked(config.get("failures", DEFAULTS["failures"]),
                                 config.get("reset_s", DEFAULTS["reset_s"]))
    wait_s = config.get("wait_s")
    if wait_s is None:
        wait_s = reset_s * 2
    try:
        wait_s = float(wait_s)
    except (TypeError, ValueError):
        raise HttpConfigError(f"breaker: wait_s must be a number of seconds, not {wait_s!r}") from None
    if wait_s < 0:
        raise HttpConfigError(f"breaker: wait_s must be >= 0, not {wait_s!r}")
    return failures, reset_s, wait_s


_BREAKERS: PerHost[Breaker] = PerHost()


def for_host(host: str, failures: int = 5, reset_s: float = 30.0) -> Breaker:
    """The breaker of ``host`` in this process, created on first use; a call that asks for
    other settings changes them for every call after it (the state is kept)."""
    b = _BREAKERS.get(host, lambda: Breaker(host, failures, reset_s))
    if (b.failures, b.reset_s) != (failures, reset_s):
        b.configure(failures, reset_s)
    return b


def stats() -> dict[str, dict[str, Any]]:
    return _BREAKERS.stats()


def reset() -> None:
    """Forget every breaker (tests)."""
    _BREAKERS.reset()
