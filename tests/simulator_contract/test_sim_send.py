"""`messages:send` stage 1: Sinch's 400/404 with its error body, the 200 answer, and the record of every request."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sim_client import APP, SimClient, alimtalk, friendtalk, kakaotalk_recipient

TEXT = {"text_message": {"text": "안녕하세요"}}


def without(body: dict[str, Any], field: str) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != field}


MALFORMED = {
    "missing app_id": without(friendtalk(TEXT), "app_id"),
    "missing recipient": without(friendtalk(TEXT), "recipient"),
    "missing message": without(friendtalk(TEXT), "message"),
    "two message kinds": friendtalk({**TEXT, "media_message": {"url": "https://example.com/a.png"}}),
    "no message kind": friendtalk({}),
    "recipient with both shapes": {**friendtalk(TEXT), "recipient": {**kakaotalk_recipient(), "contact_id": "c"}},
    "recipient with no identity": {
        "app_id": APP,
        "recipient": {"identified_by": {"channel_identities": []}},
        "message": TEXT,
    },
    "identity without identity": {
        "app_id": APP,
        "recipient": {"identified_by": {"channel_identities": [{"channel": "KAKAOTALK"}]}},
        "message": TEXT,
    },
    "unknown channel": {
        "app_id": APP,
        "recipient": {"identified_by": {"channel_identities": [{"channel": "PIGEON", "identity": "1"}]}},
        "message": TEXT,
    },
    "channel not configured on the app": friendtalk(TEXT, channel_priority_order=["WHATSAPP"]),
    "unknown field": {**friendtalk(TEXT), "priority": "high"},
    "text is not a string": friendtalk({"text_message": {"text": 5}}),
    "template without template_id": friendtalk({"template_message": {"channel_template": {"KAKAOTALK": {}}}}),
    "non-string template parameter": alimtalk("plain_notice", {"name": 1}),
    "message_metadata too long": friendtalk(TEXT, message_metadata="x" * 1025),
    "correlation_id too long": friendtalk(TEXT, correlation_id="x" * 129),
    "choice without choices": friendtalk({"choice_message": {"choices": []}}),
    "location without coordinates": friendtalk({"location_message": {"title": "t"}}),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_request_gets_400_invalid_argument(sim: SimClient, body: dict[str, Any]) -> None:
    response = sim.send(body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT" and error["details"] == []
    assert error["message"]


def test_invalid_json_gets_400_and_is_recorded_as_text(sim: SimClient) -> None:
    response = sim.http.post("/v1/projects/sim-project/messages:send", content=b"{not json")
    assert response.status_code == 400
    (record,) = sim.messages()
    assert record["request"] == "{not json" and record["message_id"] is None and record["http_status"] == 400


def test_unknown_project_and_unknown_app_get_404_not_found(sim: SimClient) -> None:
    response = sim.http.post("/v1/projects/other-project/messages:send", json=friendtalk(TEXT))
    assert response.status_code == 404 and response.json()["error"]["status"] == "NOT_FOUND"
    response = sim.send({**friendtalk(TEXT), "app_id": "other-app"})
    assert response.status_code == 404 and response.json()["error"]["status"] == "NOT_FOUND"


def test_unknown_contact_gets_404(sim: SimClient) -> None:
    response = sim.send({"app_id": APP, "recipient": {"contact_id": "no-such-contact"}, "message": TEXT})
    assert response.status_code == 404 and response.json()["error"]["status"] == "NOT_FOUND"


def test_accepted_send_answers_message_id_and_rfc3339_accepted_time(sim: SimClient) -> None:
    response = sim.send(friendtalk(TEXT))
    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"message_id", "accepted_time"}
    assert len(answer["message_id"]) == 26 and answer["message_id"].isalnum()
    assert answer["accepted_time"].endswith("Z")
    assert datetime.fromisoformat(answer["accepted_time"]).isoformat().startswith("2026-11-24T03:00")


def test_every_send_request_is_recorded_accepted_or_not(sim: SimClient) -> None:
    good = sim.accepted(friendtalk(TEXT, message_metadata="job-1"))
    sim.send(without(friendtalk(TEXT), "recipient"))
    accepted, refused = sim.messages()
    assert accepted["message_id"] == good and accepted["http_status"] == 200
    assert accepted["outcome"] == "DELIVERED" and accepted["reason"] is None
    assert accepted["request"]["message_metadata"] == "job-1"
    assert accepted["kind"] == "friendtalk" and accepted["channel"] == "KAKAOTALK"
    assert datetime.fromisoformat(accepted["received_at"]).tzinfo is not None
    assert refused["message_id"] is None and refused["http_status"] == 400
    assert refused["outcome"] is None and refused["reason"] is None
    assert refused["error"]["status"] == "INVALID_ARGUMENT"


def test_unknown_endpoint_and_wrong_method_use_the_sinch_error_body(sim: SimClient) -> None:
    missing = sim.http.get("/v1/projects/sim-project/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    wrong = sim.http.get("/v1/projects/sim-project/messages:send")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == 405
