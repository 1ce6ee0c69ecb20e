"""MESSAGE_DELIVERY receipts on a real receiver: shape, signature, echoes, retries, trigger and URL routing."""

from __future__ import annotations

from sim_client import APP, PROJECT, SECRET, SimClient, alimtalk, friendtalk
from sim_servers import WebhookReceiver

from simulator import verify

TEXT = {"text_message": {"text": "안녕하세요"}}
AUTHENTICATION = {"channel_properties": {"KAKAOTALK_AUTHENTICATION": "true"}}


def test_delivered_receipt_has_the_documented_shape(sim: SimClient, receiver: WebhookReceiver) -> None:
    answer = sim.send(friendtalk(TEXT, message_metadata="job-42", correlation_id="job-42")).json()
    (callback,) = receiver.for_message(answer["message_id"])
    document = callback.json
    assert list(document) == [
        "app_id", "accepted_time", "event_time", "project_id",
        "message_delivery_report", "message_metadata", "correlation_id",
    ]  # fmt: skip
    assert (document["app_id"], document["project_id"]) == (APP, PROJECT)
    assert document["accepted_time"] == answer["accepted_time"] and document["event_time"] >= answer["accepted_time"]
    assert document["correlation_id"] == "job-42" and document["message_metadata"] == ""
    report = document["message_delivery_report"]
    contact_id = sim.record(answer["message_id"])["contact_id"]
    assert report == {
        "message_id": answer["message_id"],
        "conversation_id": report["conversation_id"],
        "status": "DELIVERED",
        "channel_identity": {"channel": "KAKAOTALK", "identity": "+821012345678", "app_id": ""},
        "contact_id": contact_id,
        "metadata": "job-42",
        "processing_mode": "CONVERSATION",
    }
    assert len(report["conversation_id"]) == 26
    assert callback.path == "/sinch" and callback.headers["content-type"] == "application/json"


def test_failed_receipt_carries_the_reason(sim: SimClient, receiver: WebhookReceiver) -> None:
    message_id = sim.accepted(alimtalk("plain_notice", {"name": "김", "notice": "점검"}, **AUTHENTICATION))
    report = receiver.for_message(message_id)[0].json["message_delivery_report"]
    assert report["status"] == "FAILED"
    assert list(report) == [
        "message_id", "conversation_id", "status", "channel_identity", "contact_id", "reason", "metadata",
        "processing_mode",
    ]  # fmt: skip
    assert report["reason"]["code"] == "TEMPLATE_INSUFFICIENT_PARAMETERS"
    assert report["reason"]["sub_code"] == "UNSPECIFIED_SUB_CODE"
    assert report["metadata"] == ""


def test_receipts_are_signed_and_verify_with_the_webhook_secret(sim: SimClient, receiver: WebhookReceiver) -> None:
    (callback,) = receiver.for_message(sim.accepted(friendtalk(TEXT)))
    assert callback.headers["x-sinch-webhook-signature-algorithm"] == "HmacSHA256"
    assert verify(SECRET, callback.body, callback.headers)
    assert not verify("wrong-secret", callback.body, callback.headers)


def test_conversation_metadata_is_echoed_as_message_metadata(sim: SimClient, receiver: WebhookReceiver) -> None:
    message_id = sim.accepted(friendtalk(TEXT, conversation_metadata={"order": 7}))
    assert receiver.for_message(message_id)[0].json["message_metadata"] == '{"order":7}'


def test_consultation_receipt_uses_the_kakaotalkchat_identity(sim: SimClient, receiver: WebhookReceiver) -> None:
    written = sim.inbound(text="문의드립니다")
    message_id = sim.accepted({"app_id": APP, "recipient": {"contact_id": written["contact_id"]}, "message": TEXT})
    report = receiver.for_message(message_id)[0].json["message_delivery_report"]
    assert report["channel_identity"] == {"channel": "KAKAOTALKCHAT", "identity": written["identity"], "app_id": ""}
    assert report["contact_id"] == written["contact_id"]
    assert report["conversation_id"] == written["conversation_id"]


def test_receipt_is_retried_until_the_receiver_answers_2xx(sim: SimClient, receiver: WebhookReceiver) -> None:
    receiver.fail_next(2, status=503)
    message_id = sim.accepted(friendtalk(TEXT))
    attempts = receiver.for_message(message_id, count=3)
    assert [attempt.answered for attempt in attempts] == [503, 503, 200]
    assert len({attempt.headers["x-sinch-webhook-signature-nonce"] for attempt in attempts}) == 3
    receipts = sim.stats_when(lambda stats: stats["receipts"]["pending"] == 0)["receipts"]
    assert (receipts["retried"], receipts["sent"], receipts["failed"]) == (2, 1, 0)


def test_receipt_is_given_up_after_the_last_attempt(sim: SimClient, receiver: WebhookReceiver) -> None:
    receiver.fail_next(100)
    message_id = sim.accepted(friendtalk(TEXT))
    receiver.for_message(message_id, count=4)  # webhook_max_attempts=4 in conftest
    receipts = sim.stats_when(lambda stats: stats["receipts"]["pending"] == 0)["receipts"]
    receiver.fail_next(0)
    assert (receipts["retried"], receipts["failed"], receipts["sent"]) == (3, 1, 0)


def test_registered_webhook_receives_the_triggers_it_lists(sim: SimClient, receiver: WebhookReceiver) -> None:
    created = sim.api(
        "POST",
        "/webhooks",
        json={"app_id": APP, "target": receiver.url + "/inbound-only", "triggers": ["MESSAGE_INBOUND"]},
    )
    assert created.status_code == 200
    unsigned = sim.api(
        "POST", "/webhooks", json={"app_id": APP, "target": receiver.url + "/plain", "triggers": ["MESSAGE_DELIVERY"]}
    )
    assert unsigned.status_code == 200
    message_id = sim.accepted(friendtalk(TEXT))
    callbacks = receiver.for_message(message_id, count=2)
    assert sorted(callback.path for callback in callbacks) == ["/plain", "/sinch"]
    plain = next(callback for callback in callbacks if callback.path == "/plain")
    assert "x-sinch-webhook-signature" not in plain.headers
    inbound_id = sim.inbound(text="hi")["message_id"]
    assert sorted(callback.path for callback in receiver.for_message(inbound_id, count=2)) == [
        "/inbound-only",
        "/sinch",
    ]


def test_callback_url_overrides_webhooks_and_uses_the_app_callback_secret(
    sim: SimClient, receiver: WebhookReceiver
) -> None:
    settings = {"callback_settings": {"secret_for_overridden_callback_urls": "override-secret"}}
    assert (
        sim.api("PATCH", f"/apps/{APP}", params={"update_mask": "callback_settings"}, json=settings).status_code == 200
    )
    message_id = sim.accepted(friendtalk(TEXT, callback_url=receiver.url + "/per-message"))
    (callback,) = receiver.for_message(message_id)
    assert callback.path == "/per-message"
    assert verify("override-secret", callback.body, callback.headers)
    assert [c.path for c in receiver.callbacks if c.message_id == message_id] == ["/per-message"]


def test_receipts_never_block_the_send_answer(sim: SimClient, receiver: WebhookReceiver) -> None:
    sim.faults(receipt_delay_ms=[400, 400])
    response = sim.send(friendtalk(TEXT))
    message_id = response.json()["message_id"]
    assert response.elapsed.total_seconds() < 0.3
    assert all(callback.message_id != message_id for callback in receiver.callbacks)
    receiver.for_message(message_id)


def test_a_dismiss_webhook_gets_nothing(sim: SimClient, receiver: WebhookReceiver) -> None:
    body = {"app_id": APP, "target": receiver.url + "/dismissed", "target_type": "DISMISS",
            "triggers": ["MESSAGE_DELIVERY"]}  # fmt: skip
    assert sim.api("POST", "/webhooks", json=body).status_code == 200
    message_id = sim.accepted(friendtalk(TEXT))
    receipts = sim.stats_when(lambda stats: stats["receipts"]["pending"] == 0)["receipts"]
    assert receipts["sent"] == 1
    assert [callback.path for callback in receiver.for_message(message_id)] == ["/sinch"]
