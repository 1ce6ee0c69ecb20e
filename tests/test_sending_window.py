"""The FriendTalk window in Asia/Seoul: boundaries, rollovers, other offsets, and its properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.sending_window import KST, SendingWindow
from worker.verdict import CheckContext, check_request

WINDOW = SendingWindow.parse("08:00-21:00")
FRIENDTALK = {"type": "friendtalk", "to": {"msisdn": "010-1234-5678"}, "message": {"text_message": {"text": "hi"}}}


def kst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=KST)


@pytest.mark.parametrize(
    ("now", "opening"),
    [
        ("2026-11-24 07:59:59", "2026-11-24 08:00:00"),
        ("2026-11-24 08:00:00", "2026-11-24 08:00:00"),
        ("2026-11-24 20:59:59", "2026-11-24 20:59:59"),
        ("2026-11-24 21:00:00", "2026-11-25 08:00:00"),
        ("2026-11-24 00:00:00", "2026-11-24 08:00:00"),
        ("2026-11-30 21:30:00", "2026-12-01 08:00:00"),  # month rollover
        ("2026-12-31 23:59:59", "2027-01-01 08:00:00"),  # year rollover
        ("2028-02-28 22:00:00", "2028-02-29 08:00:00"),  # leap day
    ],
)
def test_next_opening_at_the_boundaries(now: str, opening: str) -> None:
    assert WINDOW.next_opening(kst(now)) == kst(opening)


@pytest.mark.parametrize(
    ("now", "inside"),
    [
        ("2026-11-24T07:59:59+09:00", False),
        ("2026-11-24T08:00:00+09:00", True),
        ("2026-11-24T20:59:59+09:00", True),
        ("2026-11-24T21:00:00+09:00", False),
        ("2026-11-23T22:59:59Z", False),  # 07:59:59 KST
        ("2026-11-23T23:00:00Z", True),  # 08:00 KST
        ("2026-11-24T11:59:59Z", True),  # 20:59:59 KST
        ("2026-11-24T12:00:00Z", False),  # 21:00 KST
        ("2026-11-24T07:00:00-05:00", False),  # 21:00 KST
        ("2026-11-24T00:30:00+01:00", True),  # 08:30 KST
    ],
)
def test_window_reads_any_offset_in_kst(now: str, inside: bool) -> None:
    assert WINDOW.contains(datetime.fromisoformat(now)) is inside


def test_friendtalk_after_21_kst_waits_until_8() -> None:
    verdict = check_request(FRIENDTALK, CheckContext(now=datetime.fromisoformat("2026-11-24T12:00:00Z")))
    assert verdict.accepted
    assert verdict.not_before == kst("2026-11-25 08:00:00")
    assert verdict.as_dict()["not_before"] == "2026-11-25T08:00:00+09:00"


def test_friendtalk_inside_window_goes_now_and_alimtalk_ignores_window() -> None:
    inside = check_request(FRIENDTALK, CheckContext(now=kst("2026-11-24 20:59:59")))
    assert inside.accepted and inside.not_before is None
    night_alimtalk = check_request(
        {"type": "alimtalk", "to": {"msisdn": "010-1234-5678"}, "template": {"id": "t"}},
        CheckContext(now=kst("2026-11-24 23:00:00")),
    )
    assert night_alimtalk.accepted and night_alimtalk.not_before is None


def test_not_before_is_the_later_of_send_at_and_the_window() -> None:
    now = kst("2026-11-24 10:00:00")
    evening = check_request({**FRIENDTALK, "send_at": "2026-11-24T22:00:00+09:00"}, CheckContext(now=now))
    assert evening.not_before == kst("2026-11-25 08:00:00")
    noon = check_request({**FRIENDTALK, "send_at": "2026-11-24T03:00:00Z"}, CheckContext(now=now))
    assert noon.not_before == kst("2026-11-24 12:00:00")
    past = check_request({**FRIENDTALK, "send_at": "2026-11-20T12:00:00+09:00"}, CheckContext(now=now))
    assert past.not_before is None


def test_expires_at_before_the_send_time_is_a_violation() -> None:
    now = kst("2026-11-24 22:00:00")
    late = check_request({**FRIENDTALK, "expires_at": "2026-11-25T07:59:59+09:00"}, CheckContext(now=now))
    assert [v.rule for v in late.violations] == ["schedule.expires_before_send"]
    ok = check_request({**FRIENDTALK, "expires_at": "2026-11-25T08:00:01+09:00"}, CheckContext(now=now))
    assert ok.accepted
    gone = check_request({**FRIENDTALK, "expires_at": "2026-11-24T21:59:59+09:00"}, CheckContext(now=now))
    assert [v.rule for v in gone.violations] == ["schedule.expired"]


def test_window_is_configurable_and_may_span_midnight() -> None:
    night = SendingWindow.parse("22:00-06:00")
    assert night.contains(kst("2026-11-24 23:00:00"))
    assert night.contains(kst("2026-11-24 05:59:59"))
    assert not night.contains(kst("2026-11-24 06:00:00"))
    assert night.next_opening(kst("2026-11-24 12:00:00")) == kst("2026-11-24 22:00:00")
    assert str(SendingWindow.parse(" 9:30 - 24:00 ")) == "09:30-00:00"


@pytest.mark.parametrize("text", ["", "8-21", "08:00", "25:00-26:00", "08:00-08:00", "08:60-21:00"])
def test_bad_window_text_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match="sending window"):
        SendingWindow.parse(text)


def test_window_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.settings import Settings

    monkeypatch.setenv("KAKAO_DISPATCH_FRIENDTALK_WINDOW", "09:00-20:00")
    assert str(Settings().friendtalk_window) == "09:00-20:00"


instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
) | st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes))),
)
windows = st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 23), st.integers(0, 59)).filter(
    lambda hm: hm[:2] != hm[2:]
)


@given(instants, windows)
def test_next_opening_is_never_early_and_always_inside(moment: datetime, hm: tuple[int, int, int, int]) -> None:
    window = SendingWindow.parse(f"{hm[0]:02}:{hm[1]:02}-{hm[2]:02}:{hm[3]:02}")
    opening = window.next_opening(moment)
    assert opening >= moment
    assert window.contains(opening)
    assert opening - moment < timedelta(days=1)
    if window.contains(moment):
        assert opening == moment


@given(instants, st.one_of(st.none(), instants))
def test_friendtalk_not_before_never_precedes_the_request_time(now: datetime, send_at: datetime | None) -> None:
    request = FRIENDTALK if send_at is None else {**FRIENDTALK, "send_at": send_at.isoformat()}
    verdict = check_request(request, CheckContext(now=now))
    moment = verdict.not_before or now
    assert moment >= now
    # To the millisecond, the unit instants are stored in (the verdict's not_before is exactly the stored one).
    assert send_at is None or moment >= send_at - timedelta(microseconds=send_at.microsecond % 1000)
    assert WINDOW.contains(moment)
