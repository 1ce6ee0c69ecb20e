"""Malformed and forged Sinch callbacks against the real gateway: each refused as documented, nothing stored.

tests/test_gateway.py covers a wrong secret, a replayed nonce, stale and future timestamps, missing
headers, another algorithm, a body that is not a JSON object and a body over a lowered limit. Here: a
body, nonce or timestamp changed after signing, malformed nonces and timestamps, garbage that is no JSON
at all, other content types, the default body limit at its edge and far past it, and a replay sent to a
second gateway replica. "Nothing stored" means Redis holds no callback message, no nonce and no record:
only the rejection counters.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from system import gateways

from worker import keys
from worker.redis_server import RedisServer
from worker.settings import Settings
from worker.signing import signed_headers

SECRET = "whsec-faults"
WEBHOOK = "/webhooks/sinch"
DEFAULT_MAX_BODY = Settings.model_fields["webhook_max_body_bytes"].default
REPORT = {
    "app_id": "app", "project_id": "project", "accepted_time": "2026-11-24T03:00:00Z",
    "event_time": "2026-11-24T03:00:01Z", "correlation_id": "job_X", "message_metadata": "",
    "message_delivery_report": {"message_id": "m-1", "conversation_id": "", "status": "DELIVERED",
                                "channel_identity": {"channel": "KAKAOTALK", "identity": "821012345678", "app_id": ""},
                                "contact_id": "", "metadata": "job_X", "processing_mode": "DISPATCH"},
}  # fmt: skip

Serve = Callable[[], str]


@pytest.fixture
def serve(redis_server: RedisServer, redis_client: redis.Redis) -> Iterator[Serve]:
    """Start gateways with the documented defaults and a webhook secret, all on the test's Redis."""
    with gateways(redis_url=redis_server.url, broker_url_override=None, sinch_webhook_secret=SECRET) as start:
        yield start


@pytest.fixture
def gateway(serve: Serve) -> str:
    return serve()


def encoded(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def post(url: str, body: bytes, headers: dict[str, str], content_type: str = "application/json") -> httpx.Response:
    return httpx.post(url + WEBHOOK, content=body, headers={"Content-Type": content_type, **headers}, timeout=30)


def stored(client: redis.Redis) -> list[str]:
    """Every key but the counters (and the metrics others keep): a refused callback leaves none."""
    names = [str(key) for key in client.keys("*")]
    return sorted(name for name in names if name != keys.COUNTERS and not name.startswith("kd:metrics:"))


def rejections(client: redis.Redis) -> dict[str, int]:
    counters = {str(name): int(count) for name, count in client.hgetall(keys.COUNTERS).items()}
    return {name: count for name, count in counters.items() if not name.startswith("callbacks:")}


def assert_refused(response: httpx.Response, status: int, reason: str) -> None:
    assert (response.status_code, response.json()["reason"]) == (status, reason), response.text


@pytest.mark.parametrize("changed", ["body", "nonce", "timestamp"])
def test_a_callback_changed_after_signing_is_refused(gateway: str, redis_client: redis.Redis, changed: str) -> None:
    body = encoded(REPORT)
    headers = signed_headers(SECRET, body)
    if changed == "body":
        body = encoded(REPORT | {"correlation_id": "job_Y"})
    elif changed == "nonce":
        headers["x-sinch-webhook-signature-nonce"] += "0"
    else:
        headers["x-sinch-webhook-signature-timestamp"] = str(int(headers["x-sinch-webhook-signature-timestamp"]) - 1)
    assert_refused(post(gateway, body, headers), 401, "bad_signature")
    assert stored(redis_client) == []
    assert rejections(redis_client) == {"webhook_rejected:bad_signature": 1}


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("nonce", "n" * 129, "malformed_nonce"),
        ("nonce", "tab\there", "malformed_nonce"),
        ("timestamp", "1764000000.5", "malformed_timestamp"),
        ("timestamp", "-60", "malformed_timestamp"),
        ("timestamp", "1e9", "malformed_timestamp"),
        ("timestamp", "9" * 13, "malformed_timestamp"),
    ],
)
def test_malformed_nonces_and_timestamps_are_refused(
    gateway: str, redis_client: redis.Redis, header: str, value: str, reason: str
) -> None:
    body = encoded(REPORT)
    headers = signed_headers(SECRET, body) | {f"x-sinch-webhook-signature-{header}": value}
    assert_refused(post(gateway, body, headers), 401, reason)
    assert stored(redis_client) == []


GARBAGE = {
    "empty": (b"", "malformed_json"),
    "not UTF-8": (b'{"app_id": "\xc3\x28"}', "malformed_json"),
    "truncated": (encoded(REPORT)[:-7], "malformed_json"),
    "nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "malformed_json"),
    "an object nested deep": (b'{"message_delivery_report": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "malformed_json"),
    "null": (b"null", "not_an_object"),
    "a string": (b'"DELIVERED"', "not_an_object"),
    "a number": (b"42", "not_an_object"),
}


@pytest.mark.parametrize("name", list(GARBAGE))
def test_garbage_signed_with_the_right_secret_is_a_bad_request(
    gateway: str, redis_client: redis.Redis, name: str
) -> None:
    body, reason = GARBAGE[name]
    assert_refused(post(gateway, body, signed_headers(SECRET, body)), 400, reason)
    assert stored(redis_client) == []
    assert rejections(redis_client) == {f"webhook_rejected:{reason}": 1}


def test_other_content_types_are_judged_by_their_bytes(gateway: str, redis_client: redis.Redis) -> None:
    """No status is documented for a content type: the signed bytes decide. A form or a multipart body is
    no JSON object (400), a forged one is refused before it is read (401), and JSON with a charset is JSON."""
    form = b"message_id=m-1&status=DELIVERED"
    assert_refused(post(gateway, form, signed_headers(SECRET, form), "application/x-www-form-urlencoded"),
                   400, "malformed_json")  # fmt: skip
    multipart = httpx.Request("POST", gateway, files={"report": ("report.json", encoded(REPORT))})
    multipart_body = multipart.read()
    assert_refused(post(gateway, multipart_body, signed_headers(SECRET, multipart_body),
                        multipart.headers["Content-Type"]), 400, "malformed_json")  # fmt: skip
    forged = encoded(REPORT)
    assert_refused(post(gateway, forged, signed_headers("guessed", forged), "text/plain"), 401, "bad_signature")
    assert stored(redis_client) == []
    body = encoded(REPORT)
    accepted = post(gateway, body, signed_headers(SECRET, body), "application/json; charset=utf-8")
    assert accepted.json() == {"status": "accepted"}


def test_the_default_body_limit_holds_at_its_edge_and_far_past_it(gateway: str, redis_client: redis.Redis) -> None:
    def padded(size: int) -> bytes:
        body = encoded(REPORT | {"padding": ""})
        return encoded(REPORT | {"padding": "x" * (size - len(body))})

    too_large = padded(DEFAULT_MAX_BODY + 1)
    assert_refused(post(gateway, too_large, signed_headers(SECRET, too_large)), 413, "body_too_large")

    def twenty_megabytes() -> Iterator[bytes]:  # streamed, no Content-Length: refused while reading
        yield encoded(REPORT)[:-1] + b',"padding":"'
        for _ in range(20 * 16):
            yield b"x" * 65536
        yield b'"}'

    started = time.monotonic()
    headers = {"Content-Type": "application/json", **signed_headers(SECRET, b"signed before it was known")}
    streamed = httpx.post(gateway + WEBHOOK, content=twenty_megabytes(), headers=headers, timeout=30)
    assert_refused(streamed, 413, "body_too_large")
    assert time.monotonic() - started < 20
    assert stored(redis_client) == []
    assert rejections(redis_client) == {"webhook_rejected:body_too_large": 2}

    at_limit = padded(DEFAULT_MAX_BODY)
    assert len(at_limit) == DEFAULT_MAX_BODY
    assert post(gateway, at_limit, signed_headers(SECRET, at_limit)).json() == {"status": "accepted"}


def test_a_replay_sent_to_another_gateway_replica_is_refused(serve: Serve, redis_client: redis.Redis) -> None:
    first, second = serve(), serve()
    body = encoded(REPORT)
    headers = signed_headers(SECRET, body)
    assert post(first, body, headers).json() == {"status": "accepted"}
    before = stored(redis_client)
    assert_refused(post(second, body, headers), 401, "replayed_nonce")
    assert stored(redis_client) == before
    assert redis_client.llen("callbacks") == 1
