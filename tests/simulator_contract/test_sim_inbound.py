"""A KakaoTalk user writes (`POST /_sim/inbound`): MESSAGE_INBOUND callbacks shaped like the channel document."""

from __future__ import annotations

from typing import Any

import pytest
from sim_client import APP, PROJECT, SECRET, SimClient, friendtalk
from sim_servers import WebhookReceiver

from simulator import verify


def inbound_callback(sim: SimClient, receiver: WebhookReceiver, **body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    answer = sim.inbound(**body)
    (callback,) = receiver.for_message(answer["message_id"])
    assert verify(SECRET, callback.body, callback.headers)
    return answer, callback.json


def test_text_from_a_new_user_creates_a_kakaotalkchat_contact(sim: SimClient, receiver: WebhookReceiver) -> None:
    answer, document = inbound_callback(sim, receiver, text="Hello")
    assert list(document) == ["app_id", "accepted_time", "event_time", "project_id", "message", "message_metadata"]
    assert (document["app_id"], document["project_id"], document["message_metadata"]) == (APP, PROJECT, "")
    message = document["message"]
    assert message == {
        "id": answer["message_id"],
        "direction": "TO_APP",
        "contact_message": {"text_message": {"text": "Hello"}},
        "channel_identity": {"channel": "KAKAOTALKCHAT", "identity": answer["identity"], "app_id": ""},
        "conversation_id": answer["conversation_id"],
        "contact_id": answer["contact_id"],
        "metadata": "",
        "accept_time": document["accepted_time"],
        "sender_id": "",
        "processing_mode": "CONVERSATION",
    }
    contact = sim.api("GET", f"/contacts/{answer['contact_id']}").json()
    assert contact["channel_identities"] == [{"channel": "KAKAOTALKCHAT", "identity": answer["identity"], "app_id": ""}]
    assert contact["channel_priority"] == ["KAKAOTALKCHAT"] and contact["display_name"] == "Unknown"


def test_media_message_from_a_user(sim: SimClient, receiver: WebhookReceiver) -> None:
    _, document = inbound_callback(sim, receiver, media_url="https://example.com/photo.jpg")
    assert document["message"]["contact_message"] == {
        "media_message": {"url": "https://example.com/photo.jpg", "thumbnail_url": ""}
    }


def test_choice_response_from_a_user(sim: SimClient, receiver: WebhookReceiver) -> None:
    mt_message_id = sim.accepted(friendtalk({"choice_message": {"choices": [{"text_message": {"text": "예"}}]}}))
    choice = {"message_id": mt_message_id, "postback_data": f"{mt_message_id}_Reply"}
    _, document = inbound_callback(sim, receiver, choice_response=choice)
    assert document["message"]["contact_message"] == {"choice_response_message": choice}


def test_the_same_user_writing_again_keeps_contact_and_conversation(sim: SimClient, receiver: WebhookReceiver) -> None:
    first, _ = inbound_callback(sim, receiver, text="하나")
    second, document = inbound_callback(sim, receiver, text="둘", contact_id=first["contact_id"])
    assert second["contact_id"] == first["contact_id"] and second["identity"] == first["identity"]
    assert document["message"]["conversation_id"] == first["conversation_id"]
    assert sim.stats()["inbound"]["received"] == 2


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": "a", "media_url": "https://e.com/a.png"},
        {"text": "a", "extra": 1},
        {"choice_response": {"message_id": "m"}},
    ],
)
def test_inbound_body_needs_exactly_one_content(sim: SimClient, body: dict[str, Any]) -> None:
    response = sim.http.post("/_sim/inbound", json=body)
    assert response.status_code == 400 and response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_inbound_for_an_unknown_contact_is_404(sim: SimClient) -> None:
    assert sim.http.post("/_sim/inbound", json={"text": "a", "contact_id": "nobody"}).status_code == 404


def test_inbound_from_a_contact_without_a_chat_identity_is_400(sim: SimClient) -> None:
    contact_id = sim.record(sim.accepted(friendtalk({"text_message": {"text": "a"}})))["contact_id"]
    assert sim.http.post("/_sim/inbound", json={"text": "a", "contact_id": contact_id}).status_code == 400
