"""The job-event outbox: handed on at least once through a consumer group, and signed POSTs."""

from __future__ import annotations

import json
from datetime import datetime

import httpx
import pytest
import redis

from worker import keys
from worker.job_events import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CallbackRefused,
    event_document,
    forward_job_events,
    post_job_event,
)
from worker.jobs import JobStore, NewJob, new_job_id
from worker.send_request import SendRequest
from worker.sending_window import KST
from worker.signing import verify

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=KST)


def job_with_callback(store: JobStore) -> str:
    request = SendRequest.model_validate({"type": "friendtalk", "to": {"msisdn": "010-1234-5678"},
                                          "message": {"text_message": {"text": "hi"}}, "metadata": {"order": 1},
                                          "callback_url": "https://producer.example/events"})  # fmt: skip
    job_id, _ = store.create(NewJob(new_job_id(), request, "friendtalk", "KAKAOTALK", "+821012345678", None, None), NOW)
    return job_id


def test_events_are_handed_on_once_and_acknowledged(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    job_id = job_with_callback(store)
    store.transition(job_id, ["queued"], "cancelled", now=NOW, reason="changed my mind")
    handed: list[tuple[str, str]] = []
    assert forward_job_events(redis_client, lambda j, e: handed.append((j, e["to"])), consumer="a") == 2
    assert handed == [(job_id, "queued"), (job_id, "cancelled")]
    assert forward_job_events(redis_client, lambda j, e: handed.append((j, e["to"])), consumer="a") == 0
    assert redis_client.xpending(keys.CALLBACK_OUTBOX, "forwarder")["pending"] == 0


def test_events_of_a_forwarder_that_died_are_claimed_by_another(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    job_with_callback(store)

    def die(job_id: str, event: dict[str, str]) -> None:
        raise RuntimeError("worker killed mid-way")

    with pytest.raises(RuntimeError):
        forward_job_events(redis_client, die, consumer="dead")
    handed: list[str] = []
    assert forward_job_events(redis_client, lambda j, e: handed.append(j), consumer="alive", claim_idle_ms=0) == 1
    assert len(handed) == 1


def test_event_document_masks_the_recipient(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    job_id = job_with_callback(store)
    [(_, fields)] = redis_client.xrange(keys.CALLBACK_OUTBOX)
    found = event_document(store, job_id, fields)
    assert found is not None
    url, body = found
    assert url == "https://producer.example/events"
    assert (body["status"], body["previous_status"], body["job"]["recipient"]) == ("queued", None, "+82******5678")
    assert body["job"]["metadata"] == {"order": 1}


def test_post_is_signed_and_refusals_raise() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204 if len(seen) == 1 else 500)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        post_job_event(client, "https://producer.example/events", {"job_id": "job_1", "status": "sent"}, "s3cret")
        with pytest.raises(CallbackRefused, match="HTTP 500"):
            post_job_event(client, "https://producer.example/events", {"job_id": "job_1"}, None)
    signed = seen[0]
    assert json.loads(signed.content) == {"job_id": "job_1", "status": "sent"}
    assert verify("s3cret", signed.content, signed.headers[NONCE_HEADER], signed.headers[TIMESTAMP_HEADER],
                  signed.headers[SIGNATURE_HEADER])  # fmt: skip
    assert SIGNATURE_HEADER not in seen[1].headers
