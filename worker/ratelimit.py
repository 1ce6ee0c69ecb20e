"""One rate limit for the whole cluster: GCRA in Redis per Sinch app and per project, on Redis' clock."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import redis

from worker import keys, metrics

_SCRIPT = (Path(__file__).with_name("lua") / "gcra.lua").read_text()
#: The longest pause a 429 may impose on the cluster (KAKAO_DISPATCH_MAX_RETRY_AFTER): a Retry-After of a day,
#: or a malformed one, must not stop every worker for that long.
DEFAULT_MAX_PAUSE_SECONDS = 300.0


@dataclass(frozen=True)
class Scope:
    """A thing Sinch limits (an app, a project) and its rate in messages per second."""

    name: str
    per_second: float

    @property
    def interval_us(self) -> int:
        return max(1, round(1_000_000 / self.per_second))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    wait_seconds: float  # how long until a request would be allowed (0 when allowed)


class RateLimiter:
    """GCRA over several scopes at once: a send is granted only when every scope has room.

    With no burst tolerance requests are spaced exactly one interval apart, which is what keeps a
    per-second limiter on Sinch's side from answering 429.
    """

    def __init__(
        self,
        client: redis.Redis,
        scopes: list[Scope],
        *,
        burst: int = 0,
        max_pause_seconds: float = DEFAULT_MAX_PAUSE_SECONDS,
    ) -> None:
        if not scopes:
            raise ValueError("a rate limiter needs at least one scope")
        self.scopes = scopes
        self.max_pause_seconds = max_pause_seconds
        self._script = client.register_script(_SCRIPT)
        self._keys = [keys.rate(scope.name) for scope in scopes]
        self._burst_us = burst * min(scope.interval_us for scope in scopes)

    def acquire(self) -> Decision:
        """Take one slot if every scope allows it now; else say how long to wait."""
        args = [scope.interval_us for scope in self.scopes] + [self._burst_us, 0]
        allowed, wait_us = self._script(keys=self._keys, args=args)
        return Decision(bool(allowed), int(wait_us) / 1_000_000)

    def slow_down(self, seconds: float) -> None:
        """Grant nothing to anyone for `seconds` (Sinch answered 429): every worker waits, not only one.

        The pause is clamped to `max_pause_seconds`, so a huge (or infinite) Retry-After cannot stop the cluster.
        """
        pause = clamp_pause(seconds, self.max_pause_seconds)
        args = [scope.interval_us for scope in self.scopes] + [self._burst_us, max(1, round(pause * 1_000_000))]
        self._script(keys=self._keys, args=args)
        metrics.rate_limit_paused(pause)


def clamp_pause(seconds: float, maximum: float) -> float:
    """`seconds` within [0, maximum]; NaN counts as the maximum."""
    return maximum if math.isnan(seconds) else max(0.0, min(seconds, maximum))
