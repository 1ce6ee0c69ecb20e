"""The producer HTTP API over real HTTP: uvicorn serving the gateway, the real redis-server behind it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
import redis
from system import gateways

from producers.api import BATCH_BODY_LIMIT, MESSAGE_BODY_LIMIT, JobRecord, JobStatus
from worker import keys
from worker.jobs import STATUSES, JobStore
from worker.redis_server import RedisServer, free_port

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
KEY = "test-key-1"
OTHER_KEY = "test-key-2"
AUTH = {"Authorization": f"Bearer {KEY}"}

Serve = Callable[..., str]


def example(name: str) -> dict[str, Any]:
    """An example request from examples/requests; images on a public URL (the producer does not probe them)."""
    text = (EXAMPLES / "requests" / f"{name}.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text.replace("$MEDIA", "https://cdn.example.com/kakao"))
    return document


def in_an_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


@pytest.fixture
def serve(redis_server: RedisServer) -> Iterator[Serve]:
    """Start a gateway on a free port; keys KEY and OTHER_KEY and the example templates unless overridden."""
    with gateways(
        redis_url=redis_server.url,
        broker_url_override=None,
        sinch_webhook_secret=None,
        api_keys_csv=f"{KEY}, {OTHER_KEY}",
        templates_path=EXAMPLES / "templates.json",
    ) as start:
        yield start


@pytest.fixture
def api(serve: Serve, redis_client: redis.Redis) -> str:
    return serve()


def send(url: str, document: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url + "/v1/messages", json=document, headers=AUTH | (headers or {}))


def send_raw(url: str, body: bytes) -> httpx.Response:
    return httpx.post(url + "/v1/messages", content=body, headers=AUTH | {"Content-Type": "application/json"})


def batch(url: str, messages: list[Any]) -> httpx.Response:
    return httpx.post(url + "/v1/messages:batch", json={"messages": messages}, headers=AUTH)


def get_job(url: str, job_id: str) -> httpx.Response:
    return httpx.get(f"{url}/v1/jobs/{job_id}", headers=AUTH)


def cancel(url: str, job_id: str) -> httpx.Response:
    return httpx.delete(f"{url}/v1/jobs/{job_id}", headers=AUTH)


def rules(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.text
    assert set(response.json()) == {"violations"}
    return [(violation["rule"], violation["path"]) for violation in response.json()["violations"]]


def dispatch_queue(client: redis.Redis) -> list[str]:
    """Job ids published to the Celery `dispatch` queue (a Redis list), oldest first."""
    import base64

    return [
        json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0]
        for raw in reversed(client.lrange("dispatch", 0, -1))
    ]


# -- enqueuing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "channel"),
    [
        ("alimtalk-generic", "alimtalk", "KAKAOTALK"),
        ("alimtalk-authentication", "alimtalk", "KAKAOTALK"),
        ("friendtalk-text", "friendtalk", "KAKAOTALK"),
        ("friendtalk-media", "friendtalk", "KAKAOTALK"),
        ("friendtalk-choice", "friendtalk", "KAKAOTALK"),
        ("friendtalk-card", "friendtalk", "KAKAOTALK"),
        ("friendtalk-carousel", "friendtalk", "KAKAOTALK"),
        ("friendtalk-location", "friendtalk", "KAKAOTALK"),
        ("consultation-text", "consultation", "KAKAOTALKCHAT"),
        ("consultation-gif", "consultation", "KAKAOTALKCHAT"),
        ("auto-template", "alimtalk", "KAKAOTALK"),
    ],
)
def test_every_kind_of_message_is_enqueued_with_202(
    api: str, redis_client: redis.Redis, name: str, kind: str, channel: str
) -> None:
    document = example(name)
    if "expires_at" in document:  # the file pins a date for `check --at`; today it must lie ahead
        document["expires_at"] = in_an_hour()
    response = send(api, document)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert set(answer) == {"id", "status", "not_before"}
    assert response.headers["location"] == f"/v1/jobs/{answer['id']}"
    job = get_job(api, answer["id"]).json()
    assert (job["type"], job["channel"], job["status"]) == (kind, channel, answer["status"])
    if answer["status"] == "queued":  # saved, then published: the Celery message carries only the id
        assert answer["not_before"] is None
        assert dispatch_queue(redis_client) == [answer["id"]]
    else:  # FriendTalk outside 08:00-21:00 KST waits in the scheduled set, not in the broker
        assert (kind, answer["status"]) == ("friendtalk", "scheduled")
        not_before = datetime.fromisoformat(answer["not_before"])
        assert not_before > datetime.now(UTC)
        assert not_before.utcoffset() == timedelta(hours=9)
        assert (not_before.hour, not_before.minute) == (8, 0)
        assert dispatch_queue(redis_client) == []


def test_a_send_at_in_the_future_is_scheduled_and_not_published(api: str, redis_client: redis.Redis) -> None:
    send_at = datetime.now(UTC) + timedelta(hours=2)
    response = send(api, example("alimtalk-generic") | {"send_at": send_at.isoformat()})
    assert response.status_code == 202
    answer = response.json()
    assert answer["status"] == "scheduled"
    assert datetime.fromisoformat(answer["not_before"]) == send_at.replace(
        microsecond=send_at.microsecond // 1000 * 1000
    )
    assert dispatch_queue(redis_client) == []


# -- refusals -------------------------------------------------------------------------------------


def test_a_text_over_1000_characters_is_refused_with_its_rule(api: str, redis_client: redis.Redis) -> None:
    response = send(api, example("friendtalk-text-too-long"))
    assert rules(response) == [("text.length", "message.text_message.text")]
    [violation] = response.json()["violations"]
    assert violation["limit"] == 1000 and violation["actual"] > 1000
    assert violation["message"]
    assert redis_client.keys("kd:job:*") == []


@pytest.mark.parametrize(
    ("name", "rule", "path"),
    [
        ("alimtalk-missing-parameter", "template.parameters_missing", "template.parameters"),
        ("alimtalk-authentication-no-keyword", "template.authentication_keyword", "template"),
        ("alimtalk-bad-msisdn", "recipient.msisdn_invalid", "to.msisdn"),
        ("consultation-template", "consultation.template_not_allowed", "message.template_message"),
        ("friendtalk-choice-title-too-long", "choice.title_length", "message.choice_message.choices[0]"),
        ("friendtalk-media-gif", "media.type", "message.media_message.url"),
    ],
)
def test_requests_breaking_a_kakaotalk_rule_are_refused_naming_it(api: str, name: str, rule: str, path: str) -> None:
    [(found_rule, found_path)] = rules(send(api, example(name)))
    assert found_rule == rule
    assert found_path.startswith(path)


def test_an_unknown_field_is_a_schema_violation_naming_it(api: str) -> None:
    response = send(api, example("unknown-field"))
    assert ("schema", "mesage") in rules(response)
    assert "unknown field" in response.json()["violations"][0]["message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"type": "friendtalk", ', "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"type": "\xff"}', "not UTF-8"),
        (b'{"metadata": {"x": NaN}}', "not valid JSON"),
        (b'{"metadata": {"x": 1e400}}', "not valid JSON"),
        (b'{"metadata": {"x": "\\ud800"}}', "lone surrogate"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b'{"metadata": {"x": 1' + b"0" * 5000 + b"}}", "not valid JSON"),
    ],
)
def test_a_body_that_is_not_json_is_a_schema_violation_at_the_root(api: str, body: bytes, fragment: str) -> None:
    response = send_raw(api, body)
    assert rules(response) == [("schema", "")]
    assert fragment in response.json()["violations"][0]["message"]


@pytest.mark.parametrize("body", [json.dumps([example("friendtalk-text")]).encode(), b'"friendtalk"', b"42", b"null"])
def test_json_that_is_not_an_object_is_refused_never_a_500(api: str, body: bytes) -> None:
    assert rules(send_raw(api, body)) == [("schema", "")]


def test_fastapi_never_answers_with_its_own_validation_error(api: str) -> None:
    for response in (send(api, {"type": 1}), send_raw(api, b"{"), batch(api, [])):
        assert response.status_code == 422
        assert "detail" not in response.json()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("send_at", "9999-12-31T20:00:00+00:00"),
        ("send_at", 253_402_300_000_000),
        ("expires_at", "0001-01-01T00:00:00+09:00"),
    ],
)
def test_an_instant_at_the_end_of_the_calendar_is_refused_not_a_500(
    api: str, redis_client: redis.Redis, field: str, value: Any
) -> None:
    response = send(api, example("friendtalk-text") | {field: value})
    assert rules(response) == [("schema", field)]
    messages = [example("friendtalk-text"), example("friendtalk-text") | {field: value}, example("consultation-text")]
    answer = batch(api, messages).json()
    assert (answer["accepted"], answer["rejected"]) == (2, 1)
    assert [result["index"] for result in answer["results"]] == [0, 1, 2]
    assert answer["results"][1]["violations"][0]["path"] == field
    assert "id" in answer["results"][0] and "id" in answer["results"][2]


# -- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}, {"Authorization": "Bearer"}],
)
def test_without_a_right_key_every_v1_route_is_401_with_a_bearer_challenge(
    api: str, redis_client: redis.Redis, headers: dict[str, str]
) -> None:
    answers = [
        httpx.post(api + "/v1/messages", json=example("alimtalk-generic"), headers=headers),
        httpx.post(api + "/v1/messages:batch", json={"messages": [example("alimtalk-generic")]}, headers=headers),
        httpx.get(api + "/v1/jobs/job_X", headers=headers),
        httpx.delete(api + "/v1/jobs/job_X", headers=headers),
    ]
    for response in answers:
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert set(response.json()) == {"detail"}
    assert redis_client.keys("kd:job:*") == []


@pytest.mark.parametrize("key", [KEY, OTHER_KEY])
def test_each_configured_key_is_accepted(api: str, key: str) -> None:
    response = httpx.post(
        api + "/v1/messages", json=example("alimtalk-generic"), headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 202
    assert httpx.get(f"{api}/v1/jobs/{response.json()['id']}", headers={"authorization": f"bearer {key}"}).is_success


def test_health_openapi_docs_and_the_webhook_need_no_api_key(api: str) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        assert httpx.get(api + path).status_code == 200, path
    webhook = httpx.post(api + "/webhooks/sinch", json={"app_id": "a", "event": {}})
    assert webhook.json() == {"status": "ignored", "kind": "event"}


def test_without_keys_the_api_is_open_and_a_warning_logged(
    serve: Serve, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="producers.api"):
        url = serve(api_keys_csv="")
    response = httpx.post(url + "/v1/messages", json=example("alimtalk-generic"))
    assert response.status_code == 202
    assert [record.getMessage() for record in caplog.records if "KAKAO_DISPATCH_API_KEYS" in record.getMessage()]


def test_with_keys_no_warning_is_logged(serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="producers.api"):
        serve()
    assert not [record for record in caplog.records if record.name == "producers.api"]


# -- reading and cancelling -----------------------------------------------------------------------


def test_an_unknown_job_is_404_for_get_and_delete(api: str, redis_client: redis.Redis) -> None:
    for response in (get_job(api, "job_01KAV6Q1F2W3X4Y5Z6A7B8C9D0"), cancel(api, "job_01KAV6Q1F2W3X4Y5Z6A7B8C9D0")):
        assert response.status_code == 404
        assert response.json() == {"detail": "no job job_01KAV6Q1F2W3X4Y5Z6A7B8C9D0"}
    assert redis_client.keys("kd:job:*") == []


def test_the_job_record_has_its_events_and_masks_the_phone_number(api: str) -> None:
    request = example("alimtalk-generic") | {"metadata": {"order": "A-1"}, "idempotency_key": "order-A-1"}
    job_id = send(api, request).json()["id"]
    response = get_job(api, job_id)
    assert response.status_code == 200
    job = response.json()
    JobRecord.model_validate(job)  # the documented response model
    assert job["id"] == job_id and job["status"] == "queued"
    assert job["recipient"] == "+82******5678"
    assert job["request"]["to"] == {"msisdn": "010******5678"}
    for raw in ("1012345678", "1234-5678", "10-1234"):
        assert raw not in response.text
    assert job["request"]["template"]["parameters"] == request["template"]["parameters"]  # as stored: not terminal
    assert job["parameters_redacted"] is False
    assert (job["metadata"], job["idempotency_key"]) == ({"order": "A-1"}, "order-A-1")
    [created] = job["events"]
    assert (created["from"], created["to"], created["reason"]) == (None, "queued", "created")


def test_a_scheduled_job_can_be_cancelled_once(api: str, redis_client: redis.Redis) -> None:
    job_id = send(api, example("alimtalk-generic") | {"send_at": in_an_hour()}).json()["id"]
    assert get_job(api, job_id).json()["status"] == "scheduled"
    response = cancel(api, job_id)
    assert (response.status_code, response.json()) == (200, {"id": job_id, "status": "cancelled"})
    job = get_job(api, job_id).json()
    assert job["status"] == "cancelled"
    assert [event["to"] for event in job["events"]] == ["scheduled", "cancelled"]
    assert not redis_client.zscore(keys.status_index("scheduled"), job_id)
    again = cancel(api, job_id)
    assert again.status_code == 409
    assert again.json()["status"] == "cancelled" and again.json()["id"] == job_id


def test_a_job_being_sent_cannot_be_cancelled(api: str, redis_client: redis.Redis) -> None:
    job_id = send(api, example("alimtalk-generic")).json()["id"]
    store = JobStore(redis_client)
    claim = store.transition(
        job_id, ["queued"], "sending", now=datetime.now(UTC), reason="claimed", fields={"owner": "w1"}
    )
    assert claim.ok  # as a worker claims it
    response = cancel(api, job_id)
    assert response.status_code == 409
    body = response.json()
    assert (body["id"], body["status"]) == (job_id, "sending")
    assert "queued or scheduled" in body["detail"]
    assert get_job(api, job_id).json()["status"] == "sending"


# -- idempotency ----------------------------------------------------------------------------------


def test_the_same_idempotency_key_in_the_body_returns_the_same_job(api: str, redis_client: redis.Redis) -> None:
    request = example("alimtalk-generic") | {"idempotency_key": "order-1001-shipped"}
    first, second = send(api, request), send(api, request)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    other = send(api, request | {"idempotency_key": "order-1002-shipped"})
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"]
    assert dispatch_queue(redis_client) == [first.json()["id"], other.json()["id"]]  # published once each


def test_the_same_idempotency_key_header_returns_the_same_job_with_its_current_status(api: str) -> None:
    request = example("alimtalk-generic") | {"send_at": in_an_hour()}
    first = send(api, request, {"Idempotency-Key": "k-1"})
    assert first.json()["status"] == "scheduled"
    assert cancel(api, first.json()["id"]).status_code == 200
    second = send(api, request, {"Idempotency-Key": "k-1"})
    assert second.status_code == 202
    assert (second.json()["id"], second.json()["status"]) == (first.json()["id"], "cancelled")
    assert get_job(api, first.json()["id"]).json()["idempotency_key"] == "k-1"
    assert send(api, request, {"Idempotency-Key": "k-2"}).json()["id"] != first.json()["id"]
    same_in_both = send(api, request | {"idempotency_key": "k-1"}, {"Idempotency-Key": "k-1"})
    assert same_in_both.json()["id"] == first.json()["id"]


def test_an_idempotency_header_that_contradicts_the_body_is_refused(api: str, redis_client: redis.Redis) -> None:
    response = send(api, example("alimtalk-generic") | {"idempotency_key": "a"}, {"Idempotency-Key": "b"})
    assert rules(response) == [("schema", "idempotency_key")]
    [violation] = response.json()["violations"]
    assert (violation["limit"], violation["actual"]) == ("b", "a")
    assert redis_client.keys("kd:job:*") == []


# -- batches --------------------------------------------------------------------------------------


def test_a_batch_accepts_the_valid_requests_and_names_the_invalid_ones(api: str, redis_client: redis.Redis) -> None:
    messages = [example("alimtalk-generic"), example("friendtalk-text-too-long"), example("consultation-text")]
    response = batch(api, messages)
    assert response.status_code == 200
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (2, 1)
    first, refused, third = answer["results"]
    assert [first["index"], refused["index"], third["index"]] == [0, 1, 2]
    assert set(first) == set(third) == {"index", "id", "status", "not_before"}
    assert set(refused) == {"index", "violations"}
    assert refused["violations"][0]["rule"] == "text.length"
    assert get_job(api, first["id"]).json()["type"] == "alimtalk"
    assert get_job(api, third["id"]).json()["type"] == "consultation"
    assert dispatch_queue(redis_client) == [first["id"], third["id"]]


def test_the_batch_route_matches_its_colon_literally(api: str) -> None:
    encoded = httpx.post(api + "/v1/messages%3Abatch", json={"messages": [example("alimtalk-generic")]}, headers=AUTH)
    assert encoded.status_code == 200 and encoded.json()["accepted"] == 1
    for path in ("/v1/messagesXbatch", "/v1/messages:batchX", "/v1/messages:"):
        assert httpx.post(api + path, json={"messages": []}, headers=AUTH).status_code in (404, 405), path


def test_a_batch_of_more_than_1000_is_refused_naming_the_limit(api: str, redis_client: redis.Redis) -> None:
    response = batch(api, [example("alimtalk-generic")] * 1001)
    assert rules(response) == [("batch.size", "messages")]
    [violation] = response.json()["violations"]
    assert (violation["limit"], violation["actual"]) == (1000, 1001)
    assert redis_client.keys("kd:job:*") == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"messages": []}, [("batch.size", "messages")]),
        ({}, [("schema", "messages")]),
        ({"messages": {"type": "alimtalk"}}, [("schema", "messages")]),
        ({"messages": [], "extra": 1}, [("schema", "extra")]),
        ([example("alimtalk-generic")], [("schema", "")]),
    ],
)
def test_a_batch_body_of_the_wrong_shape_is_refused(api: str, body: Any, expected: list[tuple[str, str]]) -> None:
    assert rules(httpx.post(api + "/v1/messages:batch", json=body, headers=AUTH)) == expected


def test_a_batch_of_1000_over_one_mebibyte_is_accepted(api: str, redis_client: redis.Redis) -> None:
    message = example("friendtalk-text") | {"message": {"text_message": {"text": "가" * 1000}}}
    body = json.dumps({"messages": [message] * 1000}, ensure_ascii=False).encode()
    assert MESSAGE_BODY_LIMIT < len(body) < BATCH_BODY_LIMIT
    response = httpx.post(
        api + "/v1/messages:batch", content=body, headers=AUTH | {"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == 200
    assert (response.json()["accepted"], response.json()["rejected"]) == (1000, 0)
    assert len({result["id"] for result in response.json()["results"]}) == 1000


# -- limits and failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "limit"), [("/v1/messages", MESSAGE_BODY_LIMIT), ("/v1/messages:batch", BATCH_BODY_LIMIT)]
)
def test_a_body_over_the_limit_is_413_declared_or_streamed(
    api: str, redis_client: redis.Redis, path: str, limit: int
) -> None:
    large = json.dumps({"messages": [example("friendtalk-text") | {"metadata": {"pad": "x" * limit}}]}).encode()
    declared = httpx.post(api + path, content=large, headers=AUTH | {"Content-Type": "application/json"})
    assert declared.status_code == 413
    assert declared.json() == {"detail": f"the body exceeds {limit} bytes"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield from (large[start : start + 65536] for start in range(0, len(large), 65536))

    streamed = httpx.post(api + path, content=chunks(), headers=AUTH)
    assert streamed.status_code == 413
    assert redis_client.keys("kd:job:*") == []


def test_without_redis_every_route_is_503_job_store_unavailable(serve: Serve) -> None:
    url = serve(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    answers = [
        send(url, example("alimtalk-generic")),
        batch(url, [example("alimtalk-generic")]),
        get_job(url, "job_01KAV6Q1F2W3X4Y5Z6A7B8C9D0"),
        cancel(url, "job_01KAV6Q1F2W3X4Y5Z6A7B8C9D0"),
    ]
    for response in answers:
        assert (response.status_code, response.json()) == (503, {"detail": "job store unavailable"})
    assert rules(send(url, example("friendtalk-text-too-long")))  # the rules need no Redis


def test_without_the_broker_the_send_is_503_and_the_saved_job_is_found_again_by_its_key(
    serve: Serve, redis_client: redis.Redis
) -> None:
    url = serve(broker_url_override=f"redis://127.0.0.1:{free_port()}/0")
    request = example("alimtalk-generic") | {"idempotency_key": "retry-me"}
    assert send(url, request).json() == {"detail": "job store unavailable"}
    retried = send(url, request)  # saved before publishing: the reconciler publishes it; the retry finds it
    assert retried.status_code == 202 and retried.json()["status"] == "queued"


# -- OpenAPI ----------------------------------------------------------------------------------------


def test_openapi_declares_the_bearer_scheme_the_send_request_and_an_example_per_message_type(api: str) -> None:
    document = httpx.get(api + "/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "API key",
        "description": "One of the keys in KAKAO_DISPATCH_API_KEYS: `Authorization: Bearer <key>`",
    }
    send_operation = document["paths"]["/v1/messages"]["post"]
    content = send_operation["requestBody"]["content"]["application/json"]
    assert content["schema"] == {"$ref": "#/components/schemas/SendRequest"}
    assert set(document["components"]["schemas"]["SendRequest"]["properties"]) >= {"type", "to", "template", "message"}
    examples = {name: item["value"] for name, item in content["examples"].items()}
    assert set(examples) == {
        "alimtalk", "alimtalk_authentication", "friendtalk_text", "friendtalk_media", "friendtalk_choice",
        "friendtalk_card", "friendtalk_carousel", "friendtalk_location", "consultation_reply", "auto",
    }  # fmt: skip
    for name, value in examples.items():  # each example is accepted as it stands
        assert send(api, value).status_code == 202, name
    operations = {
        (path, method): set(operation["responses"])
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if path.startswith("/v1/")
    }
    assert operations == {
        ("/v1/messages", "post"): {"202", "401", "413", "422", "503"},
        ("/v1/messages:batch", "post"): {"200", "401", "413", "422", "503"},
        ("/v1/jobs/{job_id}", "get"): {"200", "401", "404", "503"},
        ("/v1/jobs/{job_id}", "delete"): {"200", "401", "404", "409", "503"},
    }
    for (path, method), _ in operations.items():
        assert document["paths"][path][method]["security"] == [{"HTTPBearer": []}]
    assert "HTTPValidationError" not in document["components"]["schemas"]  # FastAPI's own 422 is never answered


def test_the_documented_statuses_are_the_job_statuses() -> None:
    assert get_args(JobStatus) == STATUSES
