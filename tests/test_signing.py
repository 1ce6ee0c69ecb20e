"""Sinch's webhook signature scheme: the SDK test vector, the receiver's checks, and our own outgoing headers."""

from __future__ import annotations

import pytest

import simulator
from worker.signing import (
    ALGORITHM,
    SINCH_HEADERS,
    SignatureHeaders,
    SignatureRejected,
    check_signed_request,
    sign,
    signed_headers,
    verify,
)

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
SDK_HEADERS = {
    "X-Sinch-Webhook-Signature": SDK_SIGNATURE,
    "X-Sinch-Webhook-Signature-Nonce": SDK_NONCE,
    "X-Sinch-Webhook-Signature-Timestamp": SDK_TIMESTAMP,
    "X-Sinch-Webhook-Signature-Algorithm": "HmacSHA256",
}
SDK_NOW = float(SDK_TIMESTAMP) + 10


def check(headers: dict[str, str], body: bytes = SDK_BODY, now: float = SDK_NOW) -> str:
    return check_signed_request(SDK_SECRET, body, headers, max_age_seconds=300, now=now)


def reason_of(headers: dict[str, str], body: bytes = SDK_BODY, now: float = SDK_NOW) -> str:
    with pytest.raises(SignatureRejected) as caught:
        check(headers, body, now)
    return caught.value.reason


def test_signature_matches_the_sinch_sdk_test_vector() -> None:
    assert sign(SDK_SECRET, SDK_BODY, SDK_NONCE, SDK_TIMESTAMP) == SDK_SIGNATURE


def test_verify_refuses_a_changed_body_secret_nonce_or_timestamp() -> None:
    assert verify(SDK_SECRET, SDK_BODY, SDK_NONCE, SDK_TIMESTAMP, SDK_SIGNATURE)
    changed = SDK_BODY.replace(b"QUEUED_ON_CHANNEL", b"DELIVERED")
    assert not verify(SDK_SECRET, changed, SDK_NONCE, SDK_TIMESTAMP, SDK_SIGNATURE)
    assert not verify("other-secret", SDK_BODY, SDK_NONCE, SDK_TIMESTAMP, SDK_SIGNATURE)
    assert not verify(SDK_SECRET, SDK_BODY, SDK_NONCE + "x", SDK_TIMESTAMP, SDK_SIGNATURE)
    assert not verify(SDK_SECRET, SDK_BODY, SDK_NONCE, "1634579354", SDK_SIGNATURE)


def test_verify_is_over_the_raw_bytes_not_a_reserialisation() -> None:
    spaced = SDK_BODY.replace(b'":', b'": ')
    assert not verify(SDK_SECRET, spaced, SDK_NONCE, SDK_TIMESTAMP, SDK_SIGNATURE)


def test_verify_tolerates_garbage_signatures_without_raising() -> None:
    assert not verify(SDK_SECRET, SDK_BODY, SDK_NONCE, SDK_TIMESTAMP, "")
    assert not verify(SDK_SECRET, SDK_BODY, SDK_NONCE, SDK_TIMESTAMP, "é€ not base64")


def test_a_correctly_signed_request_yields_its_nonce_whatever_the_header_case() -> None:
    assert check(SDK_HEADERS) == SDK_NONCE
    assert check({name.lower(): value for name, value in SDK_HEADERS.items()}) == SDK_NONCE


@pytest.mark.parametrize("dropped", list(SDK_HEADERS))
def test_each_missing_header_is_refused(dropped: str) -> None:
    headers = {name: value for name, value in SDK_HEADERS.items() if name != dropped}
    assert reason_of(headers) == "missing_headers"


def test_another_algorithm_is_refused() -> None:
    assert reason_of(SDK_HEADERS | {"X-Sinch-Webhook-Signature-Algorithm": "HmacSHA1"}) == "unsupported_algorithm"


def test_timestamps_outside_the_window_are_refused_both_ways() -> None:
    assert check(SDK_HEADERS, now=float(SDK_TIMESTAMP) + 300) == SDK_NONCE
    assert check(SDK_HEADERS, now=float(SDK_TIMESTAMP) - 300) == SDK_NONCE
    assert reason_of(SDK_HEADERS, now=float(SDK_TIMESTAMP) + 301) == "stale_timestamp"
    assert reason_of(SDK_HEADERS, now=float(SDK_TIMESTAMP) - 301) == "future_timestamp"


@pytest.mark.parametrize("timestamp", ["2021-10-18T17:49:13Z", "1634579353.5", "-1", "1e9"])
def test_a_timestamp_that_is_not_unix_seconds_is_refused(timestamp: str) -> None:
    assert reason_of(SDK_HEADERS | {"X-Sinch-Webhook-Signature-Timestamp": timestamp}) == "malformed_timestamp"


def test_an_overlong_nonce_is_refused() -> None:
    assert reason_of(SDK_HEADERS | {"X-Sinch-Webhook-Signature-Nonce": "n" * 129}) == "malformed_nonce"


def test_a_forged_signature_or_changed_body_is_refused() -> None:
    forged = sign("guess", SDK_BODY, SDK_NONCE, SDK_TIMESTAMP)
    assert reason_of(SDK_HEADERS | {"X-Sinch-Webhook-Signature": forged}) == "bad_signature"
    assert reason_of(SDK_HEADERS, body=SDK_BODY + b" ") == "bad_signature"


def test_signed_headers_carry_a_fresh_nonce_unix_seconds_and_the_algorithm() -> None:
    first, second = signed_headers("s", b"{}", now=1700000000.9), signed_headers("s", b"{}")
    assert first["x-sinch-webhook-signature-timestamp"] == "1700000000"
    assert first["x-sinch-webhook-signature-algorithm"] == ALGORITHM
    assert first["x-sinch-webhook-signature-nonce"] != second["x-sinch-webhook-signature-nonce"]
    assert check_signed_request("s", b"{}", second, max_age_seconds=5) == second["x-sinch-webhook-signature-nonce"]


def test_our_own_callbacks_can_use_other_header_names() -> None:
    names = SignatureHeaders.with_prefix("X-Kakao-Dispatch-Signature")
    assert names.timestamp == "x-kakao-dispatch-signature-timestamp"
    headers = signed_headers("s", b"{}", names=names, nonce="n1")
    assert set(headers) == {names.signature, names.nonce, names.timestamp, names.algorithm}
    assert check_signed_request("s", b"{}", headers, max_age_seconds=5, names=names) == "n1"
    with pytest.raises(SignatureRejected):
        check_signed_request("s", b"{}", headers, max_age_seconds=5, names=SINCH_HEADERS)


def test_the_simulators_independent_signing_verifies_here_and_ours_there() -> None:
    body = b'{"message":{"id":"m1"}}'
    theirs = simulator.signature_headers("whsec", body)
    assert check_signed_request("whsec", body, theirs, max_age_seconds=5) == theirs[SINCH_HEADERS.nonce]
    assert simulator.verify("whsec", body, signed_headers("whsec", body))
