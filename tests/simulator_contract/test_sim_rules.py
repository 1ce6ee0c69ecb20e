"""The KakaoTalk rules as outcomes: AlimTalk templates, the FriendTalk window, text limits, recipients."""

from __future__ import annotations

from typing import Any

import pytest
from sim_client import APP, SimClient, alimtalk, friendtalk

from simulator.rules import AUTHENTICATION_KEYWORD_MISSING, render_carousel_text, render_location_text

AUTHENTICATION = {"channel_properties": {"KAKAOTALK_AUTHENTICATION": "true"}}
PACKAGE = {"customer": "홍길동", "package_id": "123", "expected_delivery": "내일"}


def text(characters: int) -> dict[str, Any]:
    return {"text_message": {"text": "가" * characters}}


def choice(title: str) -> dict[str, Any]:
    return {"url_message": {"title": title, "url": "https://example.com"}}


# AlimTalk ---------------------------------------------------------------------------------------


def test_registered_template_with_every_parameter_is_delivered_as_alimtalk(sim: SimClient) -> None:
    record = sim.record(sim.accepted(alimtalk("package_template", PACKAGE)))
    assert (record["outcome"], record["kind"], record["channel"]) == ("DELIVERED", "alimtalk", "KAKAOTALK")


def test_unknown_template_fails_template_not_found(sim: SimClient) -> None:
    outcome, reason = sim.outcome(alimtalk("no_such_template", {}))
    assert outcome == "FAILED" and reason is not None and reason["code"] == "TEMPLATE_NOT_FOUND"


def test_missing_parameter_fails_insufficient_parameters_naming_it(sim: SimClient) -> None:
    outcome, reason = sim.outcome(alimtalk("package_template", {"customer": "홍길동", "package_id": "1"}))
    assert outcome == "FAILED" and reason is not None
    assert reason["code"] == "TEMPLATE_INSUFFICIENT_PARAMETERS" and "expected_delivery" in reason["description"]


def test_authentication_template_without_keyword_fails_with_the_documented_description(sim: SimClient) -> None:
    outcome, reason = sim.outcome(alimtalk("plain_notice", {"name": "김", "notice": "점검"}, **AUTHENTICATION))
    assert outcome == "FAILED"
    assert reason == {
        "code": "TEMPLATE_INSUFFICIENT_PARAMETERS",
        "description": AUTHENTICATION_KEYWORD_MISSING,
        "sub_code": "UNSPECIFIED_SUB_CODE",
    }
    assert AUTHENTICATION_KEYWORD_MISSING.endswith("The content must contain auth guide ment.")


@pytest.mark.parametrize("template_id", ["sinch_template_example", "login_code_en", "password_reset", "japanese_auth"])
def test_authentication_template_with_a_keyword_is_delivered(sim: SimClient, template_id: str) -> None:
    assert sim.outcome(alimtalk(template_id, {"code": "123456"}, **AUTHENTICATION)) == ("DELIVERED", None)


def test_keyword_supplied_by_a_parameter_counts_after_substitution(sim: SimClient) -> None:
    body = alimtalk("plain_notice", {"name": "김", "notice": "인증번호 1234"}, **AUTHENTICATION)
    assert sim.outcome(body) == ("DELIVERED", None)


def test_the_same_template_without_the_authentication_property_needs_no_keyword(sim: SimClient) -> None:
    assert sim.outcome(alimtalk("plain_notice", {"name": "김", "notice": "점검"})) == ("DELIVERED", None)


def test_template_language_other_than_registered_fails(sim: SimClient) -> None:
    body = alimtalk("login_code_en", {"code": "1"})
    body["message"]["template_message"]["channel_template"]["KAKAOTALK"]["language_code"] = "ko"
    outcome, reason = sim.outcome(body)
    assert outcome == "FAILED" and reason is not None
    assert reason["code"] == "TEMPLATE_NON_EXISTING_LANGUAGE_OR_VERSION"


def test_without_a_registry_templates_are_not_checked(start_simulator: Any) -> None:
    bare = start_simulator(rate_limit=0)
    assert bare.outcome(alimtalk("anything", {}, **AUTHENTICATION)) == ("DELIVERED", None)


def test_alimtalk_is_sent_at_any_hour(sim: SimClient) -> None:
    sim.clock("2026-11-24T23:30:00+09:00")
    assert sim.outcome(alimtalk("package_template", PACKAGE)) == ("DELIVERED", None)


# FriendTalk window ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "outcome"),
    [
        ("2026-11-24T07:59:59+09:00", "FAILED"),
        ("2026-11-24T08:00:00+09:00", "DELIVERED"),
        ("2026-11-24T20:59:00+09:00", "DELIVERED"),
        ("2026-11-24T21:00:00+09:00", "FAILED"),
        ("2026-11-24T13:00:00Z", "FAILED"),  # 22:00 KST
        ("2026-11-24T00:30:00Z", "DELIVERED"),  # 09:30 KST
    ],
)
def test_friendtalk_only_between_8_and_21_kst(sim: SimClient, now: str, outcome: str) -> None:
    sim.clock(now)
    result, reason = sim.outcome(friendtalk(text(10)))
    assert result == outcome
    if outcome == "FAILED":
        assert reason is not None and reason["code"] == "OUTSIDE_ALLOWED_SENDING_WINDOW"


def test_the_window_is_configurable(start_simulator: Any) -> None:
    from datetime import time

    night_owl = start_simulator(rate_limit=0, friendtalk_window=(time(22, 0), time(2, 0)))
    night_owl.clock("2026-11-24T23:00:00+09:00")
    assert night_owl.outcome(friendtalk(text(10))) == ("DELIVERED", None)
    night_owl.clock("2026-11-24T12:00:00+09:00")
    assert night_owl.outcome(friendtalk(text(10)))[0] == "FAILED"


# Text limits ------------------------------------------------------------------------------------


def assert_bad_request(sim: SimClient, body: dict[str, Any], *words: str) -> None:
    outcome, reason = sim.outcome(body)
    assert outcome == "FAILED" and reason is not None and reason["code"] == "BAD_REQUEST", reason
    for word in words:
        assert word in reason["description"], reason["description"]


def test_text_up_to_1000_characters(sim: SimClient) -> None:
    assert sim.outcome(friendtalk(text(1000))) == ("DELIVERED", None)
    assert_bad_request(sim, friendtalk(text(1001)), "1001", "1000")


def test_choice_text_up_to_1000_and_titles_up_to_14(sim: SimClient) -> None:
    good = {"choice_message": {"text_message": {"text": "가" * 1000}, "choices": [choice("가" * 14)]}}
    assert sim.outcome(friendtalk(good)) == ("DELIVERED", None)
    long_text = {"choice_message": {"text_message": {"text": "가" * 1001}, "choices": [choice("예")]}}
    assert_bad_request(sim, friendtalk(long_text), "1000")
    long_title = {"choice_message": {"choices": [{"text_message": {"text": "가" * 15}}]}}
    assert_bad_request(sim, friendtalk(long_title), "14")


def test_card_without_media_title_and_description_up_to_1000(sim: SimClient) -> None:
    card = {"card_message": {"title": "가" * 400, "description": "나" * 600}}
    assert sim.outcome(friendtalk(card)) == ("DELIVERED", None)
    card["card_message"]["description"] += "나"
    assert_bad_request(sim, friendtalk(card), "1001", "1000")


def test_card_choice_title_up_to_14(sim: SimClient) -> None:
    card = {"card_message": {"title": "t", "choices": [choice("가" * 15)]}}
    assert_bad_request(sim, friendtalk(card), "14")


def test_carousel_rendered_as_text_up_to_1000(sim: SimClient) -> None:
    cards = [{"title": "가" * 300, "description": "나" * 190} for _ in range(2)]
    carousel = {"carousel_message": {"cards": cards}}
    assert len(render_carousel_text(carousel["carousel_message"])) == 2 * 491 + 2
    assert sim.outcome(friendtalk(carousel)) == ("DELIVERED", None)
    carousel["carousel_message"]["choices"] = [choice("전체 보기")]
    assert_bad_request(sim, friendtalk(carousel), "Carousel", "1000")


def test_carousel_text_rendering_lists_cards_then_choices() -> None:
    carousel = {
        "cards": [
            {"title": "패딩", "description": "99,000원", "media_message": {"url": "https://e.com/p.png"}},
            {"title": "목도리", "choices": [{"text_message": {"text": "담기"}}]},
        ],
        "choices": [choice("전체 보기")],
    }
    assert render_carousel_text(carousel) == (
        "패딩\n99,000원\nhttps://e.com/p.png\n\n목도리\n- 담기\n\n- 전체 보기: https://example.com"
    )


def test_location_rendered_as_text_up_to_1000(sim: SimClient) -> None:
    location = {"coordinates": {"latitude": 37.4979, "longitude": 127.0276}, "title": "강남역 매장", "label": "서울"}
    assert render_location_text(location) == "강남역 매장\n서울\nhttps://maps.google.com/?q=37.4979,127.0276"
    assert sim.outcome(friendtalk({"location_message": location})) == ("DELIVERED", None)
    location["label"] = "가" * 980
    assert_bad_request(sim, friendtalk({"location_message": location}), "Location", "1000")


def test_list_message_is_not_supported_on_kakaotalk(sim: SimClient) -> None:
    assert_bad_request(sim, friendtalk({"list_message": {"title": "t", "sections": []}}), "list_message")


# Recipients -------------------------------------------------------------------------------------


@pytest.mark.parametrize("identity", ["+821099990000", "821099990999", "+821099990500"])
def test_test_numbers_are_not_reachable(sim: SimClient, identity: str) -> None:
    outcome, reason = sim.outcome(friendtalk(text(5), msisdn=identity))
    assert outcome == "FAILED" and reason is not None and reason["code"] == "RECIPIENT_NOT_REACHABLE"


@pytest.mark.parametrize("identity", ["+821099991000", "821099989999", "821012345678"])
def test_numbers_outside_the_test_range_are_delivered(sim: SimClient, identity: str) -> None:
    assert sim.outcome(friendtalk(text(5), msisdn=identity)) == ("DELIVERED", None)


def test_alimtalk_to_a_test_number_fails_not_reachable(sim: SimClient) -> None:
    body = alimtalk("package_template", PACKAGE, recipient=friendtalk(text(1), "+821099990001")["recipient"])
    outcome, reason = sim.outcome(body)
    assert outcome == "FAILED" and reason is not None and reason["code"] == "RECIPIENT_NOT_REACHABLE"


@pytest.mark.parametrize("identity", ["010-1234-5678", "+8210123", "hello"])
def test_kakaotalk_identity_must_be_a_valid_msisdn(sim: SimClient, identity: str) -> None:
    outcome, reason = sim.outcome(friendtalk(text(5), msisdn=identity))
    assert outcome == "FAILED" and reason is not None and reason["code"] == "RECIPIENT_INVALID_CHANNEL_IDENTITY"


# ConsultationTalk -------------------------------------------------------------------------------


def test_reply_to_a_user_who_wrote_is_consultationtalk_on_kakaotalkchat(sim: SimClient) -> None:
    contact_id = sim.inbound(text="안녕하세요")["contact_id"]
    sim.clock("2026-11-24T23:30:00+09:00")  # no window for ConsultationTalk
    body = {"app_id": APP, "recipient": {"contact_id": contact_id}, "message": text(20)}
    record = sim.record(sim.accepted(body))
    assert (record["outcome"], record["kind"], record["channel"]) == ("DELIVERED", "consultation", "KAKAOTALKCHAT")


def test_template_as_consultationtalk_reply_fails_bad_request(sim: SimClient) -> None:
    contact_id = sim.inbound(text="안녕하세요")["contact_id"]
    body = alimtalk("package_template", PACKAGE, recipient={"contact_id": contact_id})
    outcome, reason = sim.outcome(body)
    assert outcome == "FAILED" and reason is not None and reason["code"] == "BAD_REQUEST"
    assert "ConsultationTalk" in reason["description"]


def test_chat_identity_that_never_wrote_is_not_reachable(sim: SimClient) -> None:
    recipient = {"identified_by": {"channel_identities": [{"channel": "KAKAOTALKCHAT", "identity": "nobody"}]}}
    outcome, reason = sim.outcome({"app_id": APP, "recipient": recipient, "message": text(5)})
    assert outcome == "FAILED" and reason is not None and reason["code"] == "RECIPIENT_NOT_REACHABLE"


def test_consultation_text_limit_applies_too(sim: SimClient) -> None:
    contact_id = sim.inbound(text="hi")["contact_id"]
    assert_bad_request(sim, {"app_id": APP, "recipient": {"contact_id": contact_id}, "message": text(1001)}, "1000")


# Channel fallback -------------------------------------------------------------------------------


def test_sms_fallback_after_a_kakaotalk_failure_switches_channel(sim: SimClient) -> None:
    app = sim.api("GET", f"/apps/{APP}").json()
    credentials = [
        *app["channel_credentials"],
        {"channel": "SMS", "static_bearer": {"claimed_identity": "1", "token": "t"}},
    ]
    patched = sim.api("PATCH", f"/apps/{APP}", params={"update_mask": "channel_credentials"},
                      json={"channel_credentials": credentials})  # fmt: skip
    assert patched.status_code == 200, patched.text
    identities = [
        {"channel": "KAKAOTALK", "identity": "+821099990007"},
        {"channel": "SMS", "identity": "+821099990007"},
    ]
    body = {
        "app_id": APP,
        "recipient": {"identified_by": {"channel_identities": identities}},
        "message": text(5),
        "channel_priority_order": ["KAKAOTALK", "SMS"],
    }
    record = sim.record(sim.accepted(body))
    assert record["outcome"] == "DELIVERED" and record["channel"] == "SMS"
    assert [(step["channel"], step["status"]) for step in record["receipts"]] == [
        ("KAKAOTALK", "SWITCHING_CHANNEL"),
        ("SMS", "DELIVERED"),
    ]
    assert record["receipts"][0]["reason"]["code"] == "RECIPIENT_NOT_REACHABLE"
