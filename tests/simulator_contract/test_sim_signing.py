"""The callback signature against Sinch's published test vector (Python SDK unit test), and verification."""

from __future__ import annotations

from simulator import sign, signature_headers, verify

# From sinch/sinch-sdk-python tests/unit/domains/conversation/v1/sinch_events/test_conversation_sinch_event.py
SDK_SECRET = "foo_secret1234"
SDK_BODY = (
    b'{"app_id":"01EB37HMH1M6SV18BSNS3G135H","accepted_time":"2020-11-17T15:09:11.659Z",'
    b'"project_id":"c36f3d3d-1513-2edd-ae42-11995557ff61",'
    b'"message_delivery_report":{"message_id":"01EQBC1A3BEK731GY4YXEN0C2R",'
    b'"conversation_id":"01EPYATA64TMNZ1FV02JKF12JF","status":"QUEUED_ON_CHANNEL",'
    b'"contact_id":"01EXA07N79THJ20WSN6AS30TMW"}}'
)
SDK_NONCE = "01FJA8B4A7BM43YGWSG9GBV067"
SDK_TIMESTAMP = "1634579353"
SDK_SIGNATURE = "Yc+3R1pIS78xLASybulhs8BsSo9BPB3Pr92QCUoczfk="


def test_signature_matches_the_sinch_sdk_test_vector() -> None:
    assert sign(SDK_SECRET, SDK_BODY, SDK_NONCE, SDK_TIMESTAMP) == SDK_SIGNATURE


def test_verify_accepts_the_sdk_headers_and_refuses_a_changed_body_or_secret() -> None:
    headers = {
        "X-Sinch-Webhook-Signature": SDK_SIGNATURE,
        "x-sinch-webhook-signature-nonce": SDK_NONCE,
        "x-sinch-webhook-signature-timestamp": SDK_TIMESTAMP,
    }
    assert verify(SDK_SECRET, SDK_BODY, headers)
    assert not verify(SDK_SECRET, SDK_BODY.replace(b"QUEUED_ON_CHANNEL", b"DELIVERED"), headers)
    assert not verify("other-secret", SDK_BODY, headers)
    assert not verify(SDK_SECRET, SDK_BODY, {})


def test_signature_headers_carry_a_fresh_nonce_unix_seconds_and_the_algorithm() -> None:
    first, second = signature_headers("s", b"{}"), signature_headers("s", b"{}")
    assert first["x-sinch-webhook-signature-algorithm"] == "HmacSHA256"
    assert first["x-sinch-webhook-signature-timestamp"].isdigit()
    assert first["x-sinch-webhook-signature-nonce"] != second["x-sinch-webhook-signature-nonce"]
    assert verify("s", b"{}", first)
