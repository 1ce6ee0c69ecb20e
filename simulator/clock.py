"""The simulator's clock: real time, optionally shifted (`PUT /_sim/clock`) to test the FriendTalk window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class SimClock:
    """Real time plus an offset; time keeps running after the clock is set.

    Only what KakaoTalk would see follows this clock (the FriendTalk window, `accepted_time`,
    `event_time`, `received_at`). Token expiry, rate limits and webhook signature timestamps use
    real time, so that shifting the clock does not expire every token or make receivers refuse
    signatures as stale.
    """

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    @property
    def offset_seconds(self) -> float:
        return self._offset.total_seconds()

    def set_now(self, moment: datetime) -> None:
        self._offset = moment - datetime.now(UTC)

    def set_offset(self, seconds: float) -> None:
        self._offset = timedelta(seconds=seconds)

    def reset(self) -> None:
        self._offset = timedelta(0)


def rfc3339(moment: datetime) -> str:
    """`2026-11-24T03:04:05.678Z`: UTC with milliseconds, as in Sinch's callbacks."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
