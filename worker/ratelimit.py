"""One rate limit for the whole cluster: GCRA in Redis per Sinch app and per project, on Redis' clock."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import redis

from worker import keys

_SCRIPT = (Path(__file__).with_name("lua") / "gcra.lua").read_text()


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

    def __init__(self, client: redis.Redis, scopes: list[Scope], *, burst: int = 0) -> None:
        if not scopes:
            raise ValueError("a rate limiter needs at least one scope")
        self.scopes = scopes
        self._script = client.register_script(_SCRIPT)
        self._keys = [keys.rate(scope.name) for scope in scopes]
        self._burst_us = burst * min(scope.interval_us for scope in scopes)

    def acquire(self) -> Decision:
        """Take one slot if every scope allows it now; else say how long to wait."""
        args = [scope.interval_us for scope in self.scopes] + [self._burst_us, 0]
        allowed, wait_us = self._script(keys=self._keys, args=args)
        return Decision(bool(allowed), int(wait_us) / 1_000_000)

    def slow_down(self, seconds: float) -> None:
        """Grant nothing to anyone for `seconds` (Sinch answered 429): every worker waits, not only one."""
        args = [scope.interval_us for scope in self.scopes] + [self._burst_us, max(1, round(seconds * 1_000_000))]
        self._script(keys=self._keys, args=args)
