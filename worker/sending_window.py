"""The FriendTalk sending window: local hours (Asia/Seoul) inside which a message may be sent."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

KST = ZoneInfo("Asia/Seoul")
#: KakaoTalk's FriendTalk hours (the channel document): the default of KAKAO_DISPATCH_FRIENDTALK_WINDOW.
FRIENDTALK_HOURS = "08:00-21:00"
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*-\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


@dataclass(frozen=True)
class SendingWindow:
    """`start <= local time < end`; a window whose end is before its start spans midnight."""

    start: time
    end: time
    zone: ZoneInfo = field(default=KST)

    @classmethod
    def parse(cls, text: str, zone: ZoneInfo = KST) -> SendingWindow:
        """Parse `HH:MM-HH:MM` (seconds optional: `HH:MM:SS`; end `24:00` means midnight)."""
        match = _WINDOW.match(text)
        if not match:
            raise ValueError(f"sending window {text!r} is not of the form HH:MM-HH:MM, e.g. 08:00-21:00")
        h1, m1, s1, h2, m2, s2 = (int(part or 0) for part in match.groups())
        if h2 == 24 and m2 == 0 and s2 == 0:
            h2 = 0
        if not (0 <= h1 < 24 and 0 <= h2 < 24 and m1 < 60 and m2 < 60 and s1 < 60 and s2 < 60):
            raise ValueError(f"sending window {text!r} has an hour, minute or second out of range")
        start, end = time(h1, m1, s1), time(h2, m2, s2)
        if start == end:
            raise ValueError(f"sending window {text!r} is empty: start and end are the same time")
        return cls(start, end, zone)

    def __str__(self) -> str:
        def hhmm(moment: time) -> str:
            return f"{moment:%H:%M:%S}" if moment.second else f"{moment:%H:%M}"

        return f"{hhmm(self.start)}-{hhmm(self.end)}"

    def contains(self, moment: datetime) -> bool:
        """Whether an aware datetime falls inside the window."""
        local = moment.astimezone(self.zone).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_opening(self, moment: datetime) -> datetime:
        """The earliest instant at or after `moment` inside the window (in the window's zone)."""
        local = moment.astimezone(self.zone)
        if self.contains(local):
            return local
        opening = datetime.combine(local.date(), self.start, tzinfo=self.zone)
        if opening <= local:
            opening = datetime.combine(local.date() + timedelta(days=1), self.start, tzinfo=self.zone)
        return opening
