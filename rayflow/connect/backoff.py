"""Retry delays of the connectors: exponential backoff with full jitter, capped.

Pure: no I/O, no ray. ``delay(attempt)`` for attempt 1, 2, ... is uniform in
[top / 2, top] with top = min(cap, base * 2 ** (attempt - 1)) ("equal jitter"): retries
from many workers spread out instead of arriving together, and the whole policy still
waits at least half its nominal time (so ``retries`` tries outlast a restart as long as
half their sum).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """``retries`` tries after the first, waiting ``delay(n)`` before try n+1."""

    retries: int = 5
    base_s: float = 0.1
    cap_s: float = 10.0
    jitter: bool = True

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        top = min(self.cap_s, self.base_s * (2 ** max(0, attempt - 1)))
        if not self.jitter:
            return top
        return (rng or random).uniform(top / 2, top)
