"""Receipts, inbound messages, sessions and job events against a real Redis (no worker processes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from worker import keys
from worker.callbacks import handle_callback
from worker.contacts import ContactBook
from worker.inbound import inbound_messages
from worker.jobs import JobStore, NewJob, new_job_id
from worker.receipts import expire_orphans, orphans
from worker.send_request import SendRequest
from worker.sending_window import KST

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=KST)


@pytest.fixture
def contacts(redis_client: redis.Redis) -> ContactBook:
    return ContactBook(redis_client, session_seconds=3600)


def new_job(store: JobStore, callback_url: str | None = None) -> str:
    request = SendRequest.model_validate({
        "type": "alimtalk", "to": {"msisdn": "010-1234-5678"}, "callback_url": callback_url,
        "template": {"id": "otp", "parameters": {"code": "1"}},
    })  # fmt: skip
    job_id, _ = store.create(NewJob(new_job_id(), request, "alimtalk", "KAKAOTALK", "+821012345678", None, None), NOW)
    return job_id


def sent_job(store: JobStore, message_id: str = "msg-1", callback_url: str | None = None) -> str:
    job_id = new_job(store, callback_url)
    store.transition(job_id, ["queued"], "sending", now=NOW, reason="claimed", fields={"owner": "o"})
    assert store.mark_sent(job_id, owner="o", message_id=message_id, attempts=1, now=NOW).ok
    store.link_message(message_id, job_id)
    return job_id


def report(status: str, message_id: str = "msg-1", metadata: str = "", reason: dict[str, str] | None = None,
           correlation_id: str = "") -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {
        "message_id": message_id, "conversation_id": "", "status": status, "contact_id": "",
        "channel_identity": {"channel": "KAKAOTALK", "identity": "+821012345678", "app_id": ""},
        "metadata": metadata, "processing_mode": "DISPATCH",
    }  # fmt: skip
    if reason:
        body["reason"] = reason
    return {"app_id": "a", "project_id": "p", "accepted_time": "2026-11-24T03:00:00Z",
            "event_time": "2026-11-24T03:00:01Z", "message_delivery_report": body,
            "correlation_id": correlation_id, "message_metadata": ""}  # fmt: skip


def inbound(contact_id: str, content: dict[str, Any], message_id: str = "in-1",
            accept_time: str | None = None) -> dict[str, Any]:  # fmt: skip
    accept_time = accept_time or datetime.now(UTC).isoformat()
    return {
        "app_id": "a",
        "project_id": "p",
        "accepted_time": "2026-11-24T03:00:00Z",
        "event_time": "2026-11-24T03:00:00Z",
        "message_metadata": "",
        "message": {
            "id": message_id,
            "direction": "TO_APP",
            "contact_message": content,
            "channel_identity": {"channel": "KAKAOTALKCHAT", "identity": "chat-1", "app_id": ""},
            "conversation_id": "conv-1",
            "contact_id": contact_id,
            "metadata": "",
            "accept_time": accept_time,
            "sender_id": "",
            "processing_mode": "CONVERSATION",
        },
    }


def apply(store: JobStore, contacts: ContactBook, payload: dict[str, Any]) -> str:
    return handle_callback(store, contacts, payload, NOW)[0]


def test_delivered_receipt_by_message_id(store: JobStore, contacts: ContactBook) -> None:
    job_id = sent_job(store)
    assert apply(store, contacts, report("DELIVERED")) == "applied"
    job = store.get(job_id)
    assert job is not None and job.status == "delivered" and job.delivery["status"] == "DELIVERED"
    assert job.parameters_redacted and job.terminal_at == NOW


def test_failed_receipt_keeps_code_sub_code_and_description(store: JobStore, contacts: ContactBook) -> None:
    job_id = sent_job(store)
    reason = {"code": "TEMPLATE_INSUFFICIENT_PARAMETERS", "sub_code": "UNSPECIFIED_SUB_CODE",
              "description": "Authentication message not included in Template"}  # fmt: skip
    apply(store, contacts, report("FAILED", reason=reason))
    job = store.get(job_id)
    assert job is not None and job.status == "failed"
    assert job.delivery == {"status": "FAILED", "code": "TEMPLATE_INSUFFICIENT_PARAMETERS",
                            "sub_code": "UNSPECIFIED_SUB_CODE",
                            "description": "Authentication message not included in Template"}  # fmt: skip


def test_duplicates_and_out_of_order_receipts_change_nothing(store: JobStore, contacts: ContactBook) -> None:
    job_id = sent_job(store)
    assert apply(store, contacts, report("DELIVERED")) == "applied"
    assert apply(store, contacts, report("DELIVERED")) == "duplicate"
    assert apply(store, contacts, report("FAILED", reason={"code": "X"})) == "late"
    assert apply(store, contacts, report("QUEUED_ON_CHANNEL")) == "late"
    assert apply(store, contacts, report("READ")) == "applied"
    assert apply(store, contacts, report("READ")) == "duplicate"
    job = store.get(job_id)
    assert job is not None and job.status == "delivered" and "read_at" in job.delivery
    assert [event.reason for event in job.events][-2:] == ["receipt DELIVERED", "receipt READ"]
    assert store.counters()["receipts:duplicate"] == 2 and store.counters()["receipts:late"] == 2


def test_intermediate_statuses_are_recorded_without_a_status_change(store: JobStore, contacts: ContactBook) -> None:
    job_id = sent_job(store)
    apply(store, contacts, report("QUEUED_ON_CHANNEL"))
    apply(store, contacts, report("SWITCHING_CHANNEL", reason={"code": "RECIPIENT_NOT_REACHABLE"}))
    job = store.get(job_id)
    assert job is not None and job.status == "sent" and job.delivery["status"] == "SWITCHING_CHANNEL"
    assert [event.reason for event in job.events][-2:] == ["receipt QUEUED_ON_CHANNEL", "receipt SWITCHING_CHANNEL"]


def test_a_repeated_intermediate_report_is_a_duplicate(store: JobStore, contacts: ContactBook) -> None:
    job_id = sent_job(store)
    switching = report("SWITCHING_CHANNEL", reason={"code": "RECIPIENT_NOT_REACHABLE"})
    assert apply(store, contacts, switching) == "applied"
    assert apply(store, contacts, switching) == "duplicate"
    job = store.get(job_id)
    assert job is not None
    assert [event.reason for event in job.events].count("receipt SWITCHING_CHANNEL") == 1


def test_receipt_before_the_send_result_waits_and_is_applied_in_order(store: JobStore, contacts: ContactBook) -> None:
    job_id = new_job(store)
    store.transition(job_id, ["queued"], "sending", now=NOW, reason="claimed", fields={"owner": "o"})
    # Sinch's receipts overtake its answer to messages:send: matched by the job id in metadata.
    assert apply(store, contacts, report("QUEUED_ON_CHANNEL", message_id="m-9", metadata=job_id)) == "pending"
    assert apply(store, contacts, report("DELIVERED", message_id="m-9", metadata=job_id)) == "pending"
    assert store.get(job_id).status == "sending"  # type: ignore[union-attr]
    assert store.mark_sent(job_id, owner="o", message_id="m-9", attempts=1, now=NOW).previous == "delivered"
    job = store.get(job_id)
    assert job is not None and job.status == "delivered"
    assert [e.reason for e in job.events][-3:] == [
        "accepted by Sinch",
        "receipt QUEUED_ON_CHANNEL",
        "receipt DELIVERED",
    ]
    assert not store.redis.exists(keys.pending_receipts(job_id))


def test_unknown_job_is_resolved_by_its_receipt_through_the_correlation_id(
    store: JobStore, contacts: ContactBook
) -> None:
    job_id = new_job(store)
    store.transition(job_id, ["queued"], "sending", now=NOW, reason="claimed", fields={"owner": "o"})
    store.transition(job_id, ["sending"], "unknown", now=NOW, reason="read timeout", owner="o")
    assert apply(store, contacts, report("DELIVERED", message_id="m-7", correlation_id=job_id)) == "applied"
    job = store.get(job_id)
    assert job is not None and (job.status, job.message_id) == ("delivered", "m-7")
    assert store.job_for_message("m-7") == job_id
    assert store.count_in("unknown") == 0


def test_receipt_that_matches_nothing_is_kept_as_an_orphan(store: JobStore, contacts: ContactBook) -> None:
    assert apply(store, contacts, report("DELIVERED", message_id="stranger", metadata="job_NOPE")) == "orphaned"
    assert "stranger" in orphans(store) and store.counters()["receipts:orphaned"] == 1
    assert expire_orphans(store, NOW + timedelta(days=1)) == 0
    assert expire_orphans(store, datetime.now(KST) + timedelta(days=8)) == 1 and orphans(store) == {}


def test_inbound_text_is_stored_once_and_opens_a_session(store: JobStore, contacts: ContactBook) -> None:
    payload = inbound("chat-contact", {"text_message": {"text": "주문 문의요"}})
    assert apply(store, contacts, payload) == "stored"
    assert apply(store, contacts, payload) == "duplicate"  # Sinch retried the callback
    [stored] = inbound_messages(store, "chat-contact")
    assert (stored["kind"], stored["text"], stored["conversation_id"]) == ("text", "주문 문의요", "conv-1")
    assert contacts.has_open_session("chat-contact")
    assert contacts.open_session_for("+821012345678") is None  # no link yet: auto cannot know the person
    contacts.link("+821012345678", "chat-contact")
    assert contacts.open_session_for("+821012345678") == "chat-contact"


def test_inbound_media_records_when_its_url_expires(store: JobStore, contacts: ContactBook) -> None:
    apply(
        store,
        contacts,
        inbound(
            "c2",
            {"media_message": {"url": "https://media/x.jpg", "thumbnail_url": ""}},
            accept_time="2026-11-24T03:00:00Z",
        ),
    )
    [stored] = inbound_messages(store, "c2")
    assert stored["url"] == "https://media/x.jpg"
    assert stored["media_expires_at"] == "2026-12-01T03:00:00+00:00"


def test_choice_response_is_linked_to_the_job_it_answers(store: JobStore, contacts: ContactBook) -> None:
    job_id = sent_job(store, message_id="mt-1")
    apply(
        store,
        contacts,
        inbound("c3", {"choice_response_message": {"message_id": "mt-1", "postback_data": "mt-1_Reply"}}),
    )
    job = store.get(job_id)
    assert job is not None and job.status == "sent" and job.delivery["choice_response"] == "mt-1_Reply"
    assert job.events[-1].reason == "user answered: mt-1_Reply"


def test_merge_moves_link_and_session(contacts: ContactBook) -> None:
    contacts.link("+821011112222", "chat-old")
    contacts.touch_session("chat-old", datetime.now(KST))
    contacts.merged("chat-old", "merged-contact")
    assert contacts.open_session_for("+821011112222") == "merged-contact"
    assert contacts.msisdn_for("chat-old") is None


def test_every_status_change_is_on_the_stream_and_callback_jobs_in_the_outbox(store: JobStore) -> None:
    plain = sent_job(store, message_id="m-a")
    with_callback = sent_job(store, message_id="m-b", callback_url="https://producer.example/hook")
    stream = [fields for _, fields in store.redis.xrange(keys.JOB_EVENTS_STREAM)]
    assert [(f["job_id"], f["to"]) for f in stream] == [
        (plain, "queued"), (plain, "sending"), (plain, "sent"),
        (with_callback, "queued"), (with_callback, "sending"), (with_callback, "sent"),
    ]  # fmt: skip
    outbox = [fields["job_id"] for _, fields in store.redis.xrange(keys.CALLBACK_OUTBOX)]
    assert outbox == [with_callback] * 3


def test_a_receipt_that_overtook_an_ambiguous_send_resolves_the_unknown_job(
    store: JobStore, contacts: ContactBook
) -> None:
    job_id = new_job(store)
    store.transition(job_id, ["queued"], "sending", now=NOW, reason="claimed", fields={"owner": "o"})
    assert apply(store, contacts, report("DELIVERED", message_id="m-5", metadata=job_id)) == "pending"
    # The send's answer never came (read timeout): the job is `unknown`, and the receipt that waited settles it.
    marked = store.mark_unknown(job_id, owner="o", now=NOW, reason="no answer from Sinch", fields={"attempts": 1})
    assert marked.ok and marked.previous == "delivered"
    job = store.get(job_id)
    assert job is not None and (job.status, job.message_id, job.attempts) == ("delivered", "m-5", 1)
    assert [e.to_status for e in job.events][-2:] == ["unknown", "delivered"]
    assert not store.redis.exists(keys.pending_receipts(job_id)) and store.count_in("unknown") == 0


def test_only_the_owner_may_call_a_send_unknown(store: JobStore) -> None:
    job_id = new_job(store)
    store.transition(job_id, ["queued"], "sending", now=NOW, reason="claimed", fields={"owner": "o"})
    refused = store.mark_unknown(job_id, owner="stranger", now=NOW, reason="x")
    assert not refused.ok and refused.previous == "sending"


def test_an_inbound_message_that_could_not_be_stored_is_stored_when_sinch_retries(
    store: JobStore, contacts: ContactBook, redis_client: redis.Redis
) -> None:
    payload = inbound("c-broken", {"text_message": {"text": "안녕하세요"}}, message_id="in-42")
    redis_client.set(keys.inbound("c-broken"), "not a list")  # storing fails half-way (WRONGTYPE)
    with pytest.raises(redis.ResponseError):
        apply(store, contacts, payload)
    redis_client.delete(keys.inbound("c-broken"))
    assert apply(store, contacts, payload) == "stored"  # Sinch's retry: not taken for a duplicate
    assert [message["text"] for message in inbound_messages(store, "c-broken")] == ["안녕하세요"]
    assert apply(store, contacts, payload) == "duplicate"
