"""Request shapes, recipients per message type, channel choice and the exact `messages:send` body."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from worker.recipients import InvalidMsisdn, parse_msisdn
from worker.sending_window import KST
from worker.templates import TemplateRegistry
from worker.verdict import PLACEHOLDER_JOB_ID, CheckContext, check_request

NOON = datetime(2026, 11, 24, 12, 0, tzinfo=KST)
TEXT = {"text_message": {"text": "안녕하세요"}}


def check(request: dict[str, Any], **context: Any) -> Any:
    return check_request(request, CheckContext(now=NOON, app_id="app-1", job_id="job-1", **context))


def rules(request: dict[str, Any], **context: Any) -> list[str]:
    return [violation.rule for violation in check(request, **context).violations]


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("010-1234-5678", "+821012345678"),
        ("01012345678", "+821012345678"),
        ("+82 10-1234-5678", "+821012345678"),
        ("821012345678", "+821012345678"),
        ("(010) 1234 5678", "+821012345678"),
        ("+81 90-1234-5678", "+819012345678"),
    ],
)
def test_msisdn_is_normalised_to_e164(raw: str, e164: str) -> None:
    assert parse_msisdn(raw).e164 == e164


@pytest.mark.parametrize("raw", ["010-12", "hello", "+82 10-1234-56789012", "", "+1 555"])
def test_invalid_msisdn_is_refused(raw: str) -> None:
    with pytest.raises(InvalidMsisdn):
        parse_msisdn(raw)


def test_landline_is_accepted_with_a_warning() -> None:
    verdict = check({"type": "friendtalk", "to": {"msisdn": "02-312-3456"}, "message": TEXT})
    assert verdict.accepted and [w.rule for w in verdict.warnings] == ["recipient.not_mobile"]
    assert "3456" in verdict.warnings[0].message and "312" not in verdict.warnings[0].message


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (
            {"type": "alimtalk", "to": {"contact_id": "c"}, "template": {"id": "t"}},
            ["recipient.msisdn_required"],
        ),
        ({"type": "friendtalk", "to": {"contact_id": "c"}, "message": TEXT}, ["recipient.msisdn_required"]),
        (
            {"type": "consultation", "to": {"msisdn": "010-1234-5678"}, "message": TEXT},
            ["recipient.contact_id_required"],
        ),
        ({"type": "alimtalk", "to": {"msisdn": "010-1234-5678"}}, ["template.required"]),
        (
            {"type": "alimtalk", "to": {"msisdn": "010-1234-5678"}, "template": {"id": "t"}, "message": TEXT},
            ["alimtalk.message_not_allowed"],
        ),
        ({"type": "friendtalk", "to": {"msisdn": "010-1234-5678"}}, ["message.required"]),
        (
            {
                "type": "friendtalk",
                "to": {"msisdn": "010-1234-5678"},
                "template": {"id": "t"},
                "message": TEXT,
            },
            ["template.alimtalk_only"],
        ),
        (
            {
                "type": "friendtalk",
                "to": {"msisdn": "010-1234-5678"},
                "message": TEXT,
                "authentication": True,
            },
            ["authentication.alimtalk_only"],
        ),
        (
            {"type": "consultation", "to": {"contact_id": "c"}, "template": {"id": "t"}, "message": TEXT},
            ["template.alimtalk_only"],
        ),
        (
            {
                "type": "consultation",
                "to": {"contact_id": "c"},
                "message": {"template_message": {"omni_template": {"template_id": "w", "version": "latest"}}},
            },
            ["consultation.template_not_allowed"],
        ),
        (
            {
                "type": "friendtalk",
                "to": {"msisdn": "010-1234-5678"},
                "message": {"template_message": {"channel_template": {"KAKAOTALK": {"template_id": "w"}}}},
            },
            ["friendtalk.channel_template_not_allowed"],
        ),
        (
            {"type": "consultation", "to": {"contact_id": "c"}, "message": TEXT, "sms_fallback": True},
            ["sms_fallback.needs_msisdn"],
        ),
        (
            {
                "type": "alimtalk",
                "to": {"msisdn": "010-1234-5678"},
                "template": {"id": "t"},
                "sms_fallback": True,
            },
            ["sms_fallback.template_text_unknown"],
        ),
        ({"type": "alimtalk", "to": {"msisdn": "12"}, "template": {"id": "t"}}, ["recipient.msisdn_invalid"]),
    ],
)
def test_each_kind_gets_its_recipient_and_content(request_: dict[str, Any], expected: list[str]) -> None:
    assert rules(request_) == expected


@pytest.mark.parametrize(
    ("request_", "path"),
    [
        ({"type": "sms", "to": {"msisdn": "1"}, "message": TEXT}, "type"),
        ({"type": "friendtalk", "to": {}, "message": TEXT}, "to"),
        ({"type": "friendtalk", "to": {"msisdn": "1", "contact_id": "c"}, "message": TEXT}, "to"),
        ({"type": "friendtalk", "to": {"msisdn": "1"}, "message": {"video_message": {}}}, "message"),
        ({"type": "friendtalk", "to": {"msisdn": "1"}, "message": {}}, "message"),
        (
            {
                "type": "friendtalk",
                "to": {"msisdn": "1"},
                "message": {"text_message": {"text": "a", "bold": True}},
            },
            "message.text_message.bold",
        ),
        (
            {"type": "friendtalk", "to": {"msisdn": "1"}, "message": TEXT, "send_at": "2026-11-24T10:00:00"},
            "send_at",
        ),
        ({"type": "friendtalk", "to": {"msisdn": "1"}, "message": TEXT, "priority": "high"}, "priority"),
        (
            {
                "type": "friendtalk",
                "to": {"msisdn": "1"},
                "message": {"template_message": {"omni_template": {"template_id": "w"}}},
            },
            "message.template_message",
        ),
        (
            {
                "type": "friendtalk",
                "to": {"msisdn": "1"},
                "message": {
                    "choice_message": {
                        "choices": [{"text_message": {"text": "a"}, "url_message": {"title": "b", "url": "u"}}]
                    }
                },
            },
            "message.choice_message.choices[0]",
        ),
        # Sinch refuses empty texts and choice titles: caught here, not by a failed send.
        ({"type": "friendtalk", "to": {"msisdn": "1"}, "message": {"text_message": {"text": ""}}},
         "message.text_message.text"),
        ({"type": "friendtalk", "to": {"msisdn": "1"},
          "message": {"choice_message": {"text_message": {"text": "a"},
                                         "choices": [{"url_message": {"title": "", "url": "https://e.kr"}}]}}},
         "message.choice_message.choices[0].url_message.title"),
    ],
)  # fmt: skip
def test_unknown_or_malformed_shapes_are_schema_violations(request_: dict[str, Any], path: str) -> None:
    verdict = check(request_)
    assert not verdict.accepted and verdict.body is None
    assert [(v.rule, v.path) for v in verdict.violations] == [("schema", path)]
    assert all(v.message for v in verdict.violations)


def test_not_a_json_object_is_a_schema_violation() -> None:
    assert rules([1, 2]) == ["schema"]  # type: ignore[arg-type]


def test_alimtalk_body_is_exact() -> None:
    verdict = check(
        {
            "type": "alimtalk",
            "to": {"msisdn": "010-1234-5678"},
            "template": {
                "id": "package_template",
                "parameters": {"package_id": "P1", "n": 3},
                "language": "ko",
            },
        }
    )
    assert verdict.body == {
        "app_id": "app-1",
        "recipient": {"identified_by": {"channel_identities": [{"channel": "KAKAOTALK", "identity": "+821012345678"}]}},
        "message": {
            "template_message": {
                "channel_template": {
                    "KAKAOTALK": {
                        "template_id": "package_template",
                        "parameters": {"package_id": "P1", "n": "3"},
                        "language_code": "ko",
                    }
                }
            }
        },
        "channel_priority_order": ["KAKAOTALK"],
        "message_metadata": "job-1",
        "correlation_id": "job-1",
    }


def test_authentication_alimtalk_sets_the_channel_property() -> None:
    verdict = check(
        {
            "type": "alimtalk",
            "to": {"msisdn": "010-1234-5678"},
            "authentication": True,
            "template": {"id": "sinch_template_example", "parameters": {"password": "magical password"}},
        }
    )
    assert verdict.body is not None
    assert verdict.body["channel_properties"] == {"KAKAOTALK_AUTHENTICATION": "true"}
    assert verdict.body["message"]["template_message"]["channel_template"]["KAKAOTALK"] == {
        "template_id": "sinch_template_example",
        "parameters": {"password": "magical password"},
    }


def test_friendtalk_and_consultation_bodies_are_exact() -> None:
    friend = check({"type": "friendtalk", "to": {"msisdn": "+82 10 9876 5432"}, "message": TEXT})
    assert friend.body == {
        "app_id": "app-1",
        "recipient": {"identified_by": {"channel_identities": [{"channel": "KAKAOTALK", "identity": "+821098765432"}]}},
        "message": TEXT,
        "channel_priority_order": ["KAKAOTALK"],
        "message_metadata": "job-1",
        "correlation_id": "job-1",
    }
    reply = check({"type": "consultation", "to": {"contact_id": "01HZX"}, "message": TEXT})
    assert (reply.type, reply.channel) == ("consultation", "KAKAOTALKCHAT")
    assert reply.body == {
        "app_id": "app-1",
        "recipient": {"contact_id": "01HZX"},
        "message": TEXT,
        "channel_priority_order": ["KAKAOTALKCHAT"],
        "message_metadata": "job-1",
        "correlation_id": "job-1",
    }


def test_sms_fallback_adds_the_sms_identity_and_text() -> None:
    registry = TemplateRegistry.from_mapping({"t": {"text": "코드 #{c}"}})
    verdict = check(
        {
            "type": "alimtalk",
            "to": {"msisdn": "010-1234-5678"},
            "sms_fallback": True,
            "template": {"id": "t", "parameters": {"c": "9"}},
        },
        templates=registry,
    )
    assert verdict.body is not None
    assert verdict.body["channel_priority_order"] == ["KAKAOTALK", "SMS"]
    assert verdict.body["recipient"]["identified_by"]["channel_identities"][1] == {
        "channel": "SMS",
        "identity": "+821012345678",
    }
    assert verdict.body["message"]["explicit_channel_message"] == {"SMS": "코드 9"}


def test_auto_chooses_by_content_recipient_and_session() -> None:
    template = {"type": "auto", "to": {"msisdn": "010-1234-5678"}, "template": {"id": "t"}}
    assert (check(template).type, check(template).channel) == ("alimtalk", "KAKAOTALK")
    to_contact = check({"type": "auto", "to": {"contact_id": "c1"}, "message": TEXT})
    assert (to_contact.type, to_contact.channel) == ("consultation", "KAKAOTALKCHAT")
    message = {"type": "auto", "to": {"msisdn": "010-1234-5678"}, "message": TEXT}
    assert check(message).type == "friendtalk"
    sessions = {"+821012345678": "chat-contact-9"}
    in_session = check(message, sessions=sessions.get)
    assert (in_session.type, in_session.channel) == ("consultation", "KAKAOTALKCHAT")
    assert in_session.body is not None and in_session.body["recipient"] == {"contact_id": "chat-contact-9"}
    assert in_session.not_before is None  # ConsultationTalk has no window
    assert check(message, sessions={}.get).type == "friendtalk"


def test_rejected_verdict_has_no_body_and_check_uses_a_placeholder_job_id() -> None:
    rejected = check(
        {
            "type": "friendtalk",
            "to": {"msisdn": "010-1234-5678"},
            "message": {"text_message": {"text": "x" * 1001}},
        }
    )
    assert rejected.as_dict()["request"] is None and rejected.as_dict()["verdict"] == "rejected"
    placeholder = check_request(
        {"type": "alimtalk", "to": {"msisdn": "010-1234-5678"}, "template": {"id": "t"}},
        CheckContext(now=NOON),
    )
    assert placeholder.body is not None and placeholder.body["correlation_id"] == PLACEHOLDER_JOB_ID
