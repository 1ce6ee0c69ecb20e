"""The per-app message rate limit of `messages:send` (token bucket, real time)."""

from __future__ import annotations

import time
from collections.abc import Callable


class AppRateLimiter:
    """A bucket of `rate` tokens per app, refilled at `rate` per second: one second of burst, then `rate`/s.

    A rate of 0 means unlimited.
    """

    def __init__(self, rate_per_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self._capacity = max(rate_per_s, 1.0)
        self._monotonic = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}  # app id → (tokens, last refill time)

    def try_acquire(self, app_id: str) -> bool:
        if self.rate_per_s <= 0:
            return True
        now = self._monotonic()
        tokens, last = self._buckets.get(app_id, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - last) * self.rate_per_s)
        if tokens < 1.0:
            self._buckets[app_id] = (tokens, now)
            return False
        self._buckets[app_id] = (tokens - 1.0, now)
        return True

    def reset(self) -> None:
        self._buckets.clear()
