"""A circuit breaker: stop calling a backend that keeps failing, probe it now and then.

Owns the three states and their transitions, on an injectable monotonic clock:

- ``closed``: calls go through; ``failures`` consecutive failures open it.
- ``open``: calls are refused (the caller answers a miss or does nothing) for
  ``cooldown_s``; then the next call is let through as a probe (``half_open``).
- ``half_open``: one probe at a time; its success closes the breaker, its failure
  opens it again for another cool-down. A probe that never reports back is given up
  after one cool-down so the breaker cannot stay stuck.

``record_failure`` returns True only when the breaker opens from ``closed`` and
``record_success`` only when it closes again, so the caller logs one warning per
outage and one line when it ends. Pure and thread-safe; must not log nor do I/O.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    def __init__(self, *, failures: int = 3, cooldown_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1 or cooldown_s < 0:
            raise ValueError(f"circuit breaker needs failures >= 1 and cooldown_s >= 0, got {failures}, {cooldown_s}")
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._consecutive = 0
        self._since = 0.0          # when it last opened, or when the probe went out
        self.opened = 0            # how many times it opened from closed

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def allow(self) -> bool:
        """Whether a call may go out now (in ``open`` past the cool-down: as the probe)."""
        with self._lock:
            if self._state == CLOSED:
                return True
            if self._clock() - self._since < self.cooldown_s:
                return False
            self._state = HALF_OPEN
            self._since = self._clock()
            return True

    def record_success(self) -> bool:
        """A call succeeded; True when this closed a breaker that was open or probing."""
        with self._lock:
            self._consecutive = 0
            was_open = self._state != CLOSED
            self._state = CLOSED
            return was_open

    def record_failure(self) -> bool:
        """A call failed or timed out; True when this opened a closed breaker."""
        with self._lock:
            self._consecutive += 1
            if self._state == HALF_OPEN or (self._state == CLOSED and self._consecutive >= self.failures):
                opening = self._state == CLOSED
                self._state = OPEN
                self._since = self._clock()
                self.opened += int(opening)
                return opening
            return False
