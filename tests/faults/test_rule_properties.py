"""Properties of the KakaoTalk rules and the FriendTalk window, over inputs Hypothesis generates.

tests/test_sending_window.py already shows that a FriendTalk's `not_before` is never early and always
inside the window; tests/test_rules.py checks every limit at its edge with hand-picked requests. Here:
`not_before` is the *earliest* instant inside the window (checked against the simulator's own window
code), every text limit holds for any text, the rules return a verdict for any JSON document, and the
worker's rules agree with the simulator's independent ones (simulator/rules.py) on generated requests.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from simulator import rules as simulator_rules
from simulator.errors import SinchApiError
from simulator.kakaotalk import KakaoTalkChannel
from simulator.media import MediaProber
from simulator.send_request import ChannelIdentity
from simulator.send_request import parse_send_request as parse_sinch_body
from simulator.templates import TemplateRegistry as SimulatorTemplates
from worker.sending_window import KST, SendingWindow
from worker.sinch_body import build_send_body
from worker.templates import TemplateRegistry
from worker.verdict import CheckContext, Verdict, check_request

#: Deterministic runs: the same examples every time, no example database between runs.
PROPERTIES = settings(max_examples=300, deadline=None, derandomize=True, database=None)
NOON = datetime(2026, 11, 24, 12, 0, tzinfo=KST)
MSISDN = "010-1234-5678"
MILLISECOND = timedelta(milliseconds=1)

instants = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, KST, timezone(timedelta(hours=-5)), timezone(timedelta(hours=14))]),
)
whole_seconds = st.times().map(lambda moment: moment.replace(microsecond=0))
windows = st.tuples(whole_seconds, whole_seconds).filter(lambda bounds: bounds[0] != bounds[1])


def friendtalk(message: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"type": "friendtalk", "to": {"msisdn": MSISDN}, "message": message, **fields}


def earliest_opening(moment: datetime, start: time, end: time) -> datetime:
    """The first instant at or after `moment` inside [start, end) KST, found without the worker's code:
    `moment` itself when the simulator's window check says it is inside, else the first start of the window."""
    if simulator_rules.in_window(moment, (start, end)):
        return moment
    day = moment.astimezone(KST).date()
    starts = [datetime.combine(day + timedelta(days=offset), start, tzinfo=KST) for offset in (-1, 0, 1, 2)]
    return min(opening for opening in starts if opening >= moment)


@PROPERTIES
@given(instants, st.none() | instants, windows)
@example(datetime(2026, 11, 24, 11, 59, 59, 999600, tzinfo=UTC), None, (time(8), time(21)))  # 20:59:59.9996 KST
@example(datetime(2026, 11, 24, 11, 0, tzinfo=UTC), datetime(2026, 11, 24, 11, 59, 59, 999700, tzinfo=UTC),
         (time(8), time(21)))  # fmt: skip
def test_friendtalk_not_before_is_the_earliest_instant_inside_the_window(
    now: datetime, send_at: datetime | None, bounds: tuple[time, time]
) -> None:
    start, end = bounds
    window = SendingWindow.parse(f"{start:%H:%M:%S}-{end:%H:%M:%S}")
    request = friendtalk({"text_message": {"text": "hi"}}, **({"send_at": send_at.isoformat()} if send_at else {}))
    verdict = check_request(request, CheckContext(now=now, window=window))
    assert verdict.accepted, verdict.violations
    wanted = max(now, send_at) if send_at is not None else now
    expected = earliest_opening(wanted, start, end)
    # The job store keeps milliseconds: not_before is that instant cut (or rounded) to one, no further off.
    if verdict.not_before is None:
        assert expected - now < MILLISECOND, f"a message that must wait until {expected} was let go at {now}"
        return
    assert abs(verdict.not_before - expected) < MILLISECOND, (verdict.not_before, expected)
    assert simulator_rules.in_window(verdict.not_before, (start, end)), "not_before is outside the window"
    assert verdict.not_before > now


def repeated(chunk: str, length: int) -> str:
    return (chunk * (length // len(chunk) + 1))[:length]


#: Any characters, Korean and emoji included (no lone surrogates: JSON cannot carry them).
texts = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
lengths = st.integers(1, 1200) | st.sampled_from([999, 1000, 1001])  # empty texts and titles: schema (test_requests)
title_lengths = st.integers(1, 30) | st.sampled_from([13, 14, 15])


@PROPERTIES
@given(texts, lengths, title_lengths)
def test_any_text_within_a_limit_passes_and_any_past_it_fails(chunk: str, length: int, title_length: int) -> None:
    text, title = repeated(chunk, length), repeated(chunk, title_length)
    cases = [
        (friendtalk({"text_message": {"text": text}}), "text.length", length > 1000),
        (friendtalk({"choice_message": {"text_message": {"text": text}, "choices": [{"text_message": {"text": "a"}}]}}),
         "choice.text_length", length > 1000),
        (friendtalk({"card_message": {"title": text[:7], "description": text[7:]}}), "card.text_length", length > 1000),
        (friendtalk({"choice_message": {"choices": [{"url_message": {"title": title, "url": "https://e.example"}}]}}),
         "choice.title_length", title_length > 14),
        (friendtalk({"card_message": {"title": "t", "choices": [{"text_message": {"text": title}}]}}),
         "card.choice_title_length", title_length > 14),
        ({"type": "consultation", "to": {"contact_id": "c-1"}, "message": {"text_message": {"text": text}}},
         "text.length", length > 1000),
    ]  # fmt: skip
    for request, rule, breaks in cases:
        verdict = check_request(request, CheckContext(now=NOON))
        assert [violation.rule for violation in verdict.violations] == ([rule] if breaks else []), (rule, length)


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16,
)  # fmt: skip
MESSAGE_KINDS = ["text_message", "media_message", "choice_message", "card_message", "carousel_message",
                 "location_message", "template_message", "list_message"]  # fmt: skip
instant_texts = st.sampled_from(["2026-11-24T22:00:00+09:00", "2026-11-24T03:00:00Z", "2026-11-24T10:00:00",
                                 "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00", "tomorrow"])  # fmt: skip
send_request_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["alimtalk", "friendtalk", "consultation", "auto"]) | json_values,
        "to": st.fixed_dictionaries({}, optional={
            "msisdn": st.sampled_from([MSISDN, "+82 2-312-3456", "12", "+1 202 555 0100", ""]) | json_values,
            "contact_id": st.text(max_size=4) | json_values}),
        "template": st.fixed_dictionaries({}, optional={
            "id": st.sampled_from(["otp", "unknown"]) | json_values,
            "parameters": st.dictionaries(st.text(max_size=6), scalars, max_size=3) | json_values,
            "language": st.sampled_from(["ko", "en"]) | json_values}),
        "message": st.dictionaries(st.sampled_from(MESSAGE_KINDS), json_values, max_size=2) | json_values,
        "authentication": st.booleans() | json_values,
        "send_at": instant_texts | json_values,
        "expires_at": instant_texts | json_values,
        "sms_fallback": st.booleans() | json_values,
        "callback_url": st.sampled_from(["https://producer.example/hook", "ftp://x"]) | json_values,
        "metadata": json_values,
        "idempotency_key": json_values,
    },
)  # fmt: skip


@settings(PROPERTIES, max_examples=1000)
@given(json_values | send_request_like)
def test_the_rules_answer_any_json_document_with_a_verdict(document: Any) -> None:
    registry = TemplateRegistry.from_mapping({"otp": {"text": "인증번호 #{code}", "language": "ko"}})
    verdict = check_request(document, CheckContext(now=NOON, templates=registry, app_id="app"))
    assert isinstance(verdict, Verdict)
    answer = json.loads(json.dumps(verdict.as_dict()))
    assert answer["verdict"] == ("accepted" if verdict.accepted else "rejected")
    if verdict.accepted:
        assert isinstance(verdict.body, dict) and verdict.type and verdict.channel
    else:
        assert verdict.body is None
        assert all(violation["rule"] and isinstance(violation["path"], str) for violation in answer["violations"])


# -- the worker's rules against the simulator's ----------------------------------------------------------------

TEMPLATES = {
    "otp": {"text": "인증번호는 [#{code}] 입니다.", "language": "ko"},
    "shipped": {"text": "#{name}님, 주문 #{order}이(가) 출발했습니다.", "language": "ko"},
    "code_en": {"text": "Your #{what} is #{code}", "language": "en"},
    "long": {"text": "공지 " + "가" * 980 + " #{tail}", "language": "ko"},
}
WORKER_TEMPLATES = TemplateRegistry.from_mapping(TEMPLATES)
SIMULATOR_TEMPLATES = SimulatorTemplates.from_mapping(TEMPLATES)
WINDOW = (time(8), time(21))

# Where the two readings of the channel document knowingly differ, the generators stay on common ground:
# - an unregistered template is accepted by the worker with a warning (Sinch's receipt will tell);
# - carousels with choices and locations are measured on each side's own text rendering (unpublished by Sinch);
# - the simulator's unreachable test numbers are a simulator fixture, not a KakaoTalk rule;
# - empty texts and titles, parameter names with spaces and language tags with regions are read differently
#   by the two sides: reported, not generated here.
words = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)


def near(limit: int) -> st.SearchStrategy[int]:
    """Lengths from 1 to past a limit, the limit and its neighbours often."""
    return st.integers(1, limit + 100) | st.sampled_from([limit - 1, limit, limit + 1])


def texts_of(lengths: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    return st.builds(repeated, words, lengths)


KEYWORDS = st.sampled_from(["AUTH", "Verification", "PassWord", "비밀번호", "인증", "認証", "にんしょう", "no keyword"])
# The rendered "long" template is 984 characters before its parameter: 16 more are allowed.
parameter_values = words | texts_of(near(16)) | texts_of(near(1000)) | KEYWORDS
titles = texts_of(near(14))
choices = st.lists(
    st.builds(lambda title: {"text_message": {"text": title}}, titles)
    | st.builds(lambda title: {"url_message": {"title": title, "url": "https://shop.example"}}, titles),
    min_size=1, max_size=3,
)  # fmt: skip


def card(with_choices: bool) -> st.SearchStrategy[dict[str, Any]]:
    """A card whose title and description together are often right at the 1000-character limit."""

    def around(title_length: int) -> st.SearchStrategy[dict[str, Any]]:
        description_lengths = st.sampled_from([999 - title_length, 1000 - title_length, 1001 - title_length])
        return st.builds(
            lambda title, description, buttons: {"title": title, "description": description,
                                                 **({"choices": buttons} if buttons else {})},
            texts_of(st.just(title_length)), texts_of(description_lengths | st.integers(1, 400)),
            st.none() | choices if with_choices else st.none(),
        )  # fmt: skip

    return st.integers(1, 998).flatmap(around)


messages = st.one_of(
    st.builds(lambda text: {"text_message": {"text": text}}, texts_of(near(1000))),
    st.builds(lambda text, buttons: {"choice_message": {"text_message": {"text": text}, "choices": buttons}},
              texts_of(near(1000)), choices),
    st.builds(lambda body: {"card_message": body}, card(with_choices=True)),
    st.builds(lambda deck: {"carousel_message": {"cards": deck}},
              st.lists(card(with_choices=False), min_size=1, max_size=2)
              | st.lists(st.builds(lambda title: {"title": title}, texts_of(near(330))), min_size=1, max_size=3)),
)  # fmt: skip
msisdns = st.sampled_from([MSISDN, "+82 10 2345 6789", "01012", "+82 2-312-3456", "+1 202-555-0100"])


def alimtalk_for(template_id: str) -> st.SearchStrategy[dict[str, Any]]:
    """An AlimTalk of this template: its parameters usually all given, sometimes one missing or one extra."""
    names = WORKER_TEMPLATES[template_id].parameters
    return st.builds(
        lambda msisdn, values, left_out, extra, language, authentication: {
            "type": "alimtalk", "to": {"msisdn": msisdn}, "authentication": authentication,
            "template": {"id": template_id, "language": language,
                         "parameters": {name: value for name, value in (values | extra).items()
                                        if name not in left_out}},
        },
        msisdns, st.fixed_dictionaries(dict.fromkeys(names, parameter_values)),
        st.sets(st.sampled_from(names), max_size=1), st.dictionaries(st.just("extra"), words, max_size=1),
        st.sampled_from([None, "ko", "en"]), st.booleans(),
    )  # fmt: skip


alimtalk_requests = st.sampled_from(sorted(TEMPLATES)).flatmap(alimtalk_for)
friendtalk_requests = st.builds(lambda msisdn, message: {"type": "friendtalk", "to": {"msisdn": msisdn},
                                                         "message": message}, msisdns, messages)  # fmt: skip
consultation_requests = st.builds(lambda message: {"type": "consultation", "to": {"contact_id": "chat-1"},
                                                   "message": message}, messages)  # fmt: skip


def simulator_outcome(body: dict[str, Any], now: datetime) -> str:
    """What the simulator makes of a `messages:send` body: 400 at once, or the final receipt's status and code."""
    try:
        send = parse_sinch_body(body, ("KAKAOTALK", "KAKAOTALKCHAT"))
    except SinchApiError as error:
        return f"400 {error.message}"
    target = send.identities[0] if send.identities else ChannelIdentity("KAKAOTALKCHAT", send.contact_id or "")
    channel = KakaoTalkChannel(templates=SIMULATOR_TEMPLATES, window=WINDOW, media=MediaProber(),
                               has_written=lambda identity: True)  # fmt: skip
    decision = asyncio.run(channel.decide(send, [target], now))
    reason = decision.final.reason
    return decision.final.status + (f" {reason.code}: {reason.description}" if reason else "")


@PROPERTIES
@given(alimtalk_requests | friendtalk_requests | consultation_requests, instants)
def test_the_worker_accepts_for_now_exactly_what_the_simulator_delivers(request: dict[str, Any], now: datetime) -> None:
    """Accepted to go now by the worker ⇔ DELIVERED by the simulator, on the same `messages:send` body.

    The body is built for rejected requests too (with the worker's own builder), so a rule the worker
    enforces and the simulator lacks shows up as much as the other way round.
    """
    verdict = check_request(request, CheckContext(now=now, templates=WORKER_TEMPLATES, app_id="app", job_id="job_P"))
    assert verdict.request is not None and verdict.decision is not None, verdict.violations
    body = build_send_body(verdict.request, verdict.decision, msisdn=verdict.msisdn, app_id="app", job_id="job_P")
    outcome = simulator_outcome(body, now)
    goes_now = verdict.accepted and verdict.not_before is None
    rules = [violation.rule for violation in verdict.violations]
    assert goes_now == outcome.startswith("DELIVERED"), (rules, verdict.not_before, outcome)


def test_the_window_strategies_reach_both_sides_of_the_window() -> None:
    """The generated instants fall inside and outside 08:00-21:00 KST (else the agreement test says little)."""
    inside = [simulator_rules.in_window(datetime.combine(date(2026, 11, 24), time(hour), KST), WINDOW)
              for hour in range(24)]  # fmt: skip
    assert inside.count(True) == 13 and inside.count(False) == 11
