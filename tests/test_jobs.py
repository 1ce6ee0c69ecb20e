"""The job store: records, idempotency, compare-and-set transitions, deferral, redaction and retention."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import redis

from worker import keys
from worker.jobs import JobStore, NewJob, from_ms, new_job_id, new_owner_token, to_ms
from worker.send_request import SendRequest
from worker.sending_window import KST

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=KST)


def alimtalk(idempotency_key: str | None = None) -> SendRequest:
    return SendRequest.model_validate(
        {
            "type": "alimtalk",
            "to": {"msisdn": "010-1234-5678"},
            "authentication": True,
            "template": {"id": "otp", "parameters": {"code": "482913"}},
            "idempotency_key": idempotency_key,
            "metadata": {"order": 7},
        }
    )


def new_job(request: SendRequest, not_before: datetime | None = None) -> NewJob:
    return NewJob(new_job_id(), request, "alimtalk", "KAKAOTALK", "+821012345678", None, not_before)


def test_job_ids_are_unique_and_sort_by_time() -> None:
    ids = [new_job_id(now_ms=1_000 + i) for i in range(100)]
    assert ids == sorted(ids) and len(set(ids)) == 100 and all(len(i) == 30 for i in ids)


def test_created_job_is_queued_with_its_record_and_first_event(store: JobStore) -> None:
    job_id, created = store.create(new_job(alimtalk()), NOW)
    job = store.get(job_id)
    assert created and job is not None
    assert (job.status, job.type, job.channel, job.msisdn, job.attempts) == (
        "queued",
        "alimtalk",
        "KAKAOTALK",
        "+821012345678",
        0,
    )
    assert job.request["template"]["parameters"] == {"code": "482913"}
    assert job.metadata == {"order": 7} and job.created_at == NOW
    assert [(e.from_status, e.to_status, e.reason) for e in job.events] == [(None, "queued", "created")]
    assert store.ids_in("queued", before=NOW + timedelta(seconds=1)) == [job_id]


def test_same_idempotency_key_returns_the_same_job(store: JobStore) -> None:
    first, created = store.create(new_job(alimtalk("order-7")), NOW)
    again, created_again = store.create(new_job(alimtalk("order-7")), NOW)
    assert created and not created_again and again == first
    assert store.job_for_idempotency_key("order-7") == first
    other, created_other = store.create(new_job(alimtalk("order-8")), NOW)
    assert created_other and other != first


def test_idempotency_holds_under_concurrent_producers(store: JobStore, redis_client: redis.Redis) -> None:
    results: list[str] = []

    def produce() -> None:
        results.append(store.create(new_job(alimtalk("race")), NOW)[0])

    threads = [threading.Thread(target=produce) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert len(list(redis_client.scan_iter(keys.JOB + "*:events"))) == 1


def test_future_not_before_parks_the_job_in_the_deferral_set(store: JobStore) -> None:
    due = NOW + timedelta(hours=9)
    job_id, _ = store.create(new_job(alimtalk(), not_before=due), NOW)
    job = store.get(job_id)
    assert job is not None and job.status == "scheduled" and job.not_before == due
    assert store.next_due() == due
    assert store.release_due(NOW) == []
    assert store.release_due(due - timedelta(seconds=1), horizon_ms=1000) == [(job_id, due)]
    released = store.get(job_id)
    assert released is not None and released.status == "queued"
    assert store.release_due(due + timedelta(hours=1)) == []  # claimed once only


def test_release_claims_each_job_once_across_racing_releasers(store: JobStore) -> None:
    due = NOW + timedelta(minutes=5)
    ids = {store.create(new_job(alimtalk(), not_before=due), NOW)[0] for _ in range(300)}
    claimed: list[str] = []

    def release() -> None:
        while batch := store.release_due(due, limit=7):
            claimed.extend(job_id for job_id, _ in batch)

    threads = [threading.Thread(target=release) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(ids)


def test_transition_is_a_compare_and_set(store: JobStore) -> None:
    job_id, _ = store.create(new_job(alimtalk()), NOW)
    owner = new_owner_token()
    claim = store.transition(job_id, ["queued"], "sending", now=NOW, reason="claimed", fields={"owner": owner})
    assert claim.ok and claim.previous == "queued"
    second = store.transition(job_id, ["queued"], "sending", now=NOW, reason="claimed", fields={"owner": "x"})
    assert not second.ok and second.previous == "sending"
    stranger = store.transition(job_id, ["sending"], "sent", now=NOW, reason="sent", owner="not-the-owner")
    assert not stranger.ok
    sent = store.transition(
        job_id, ["sending"], "sent", now=NOW, reason="accepted", owner=owner, fields={"message_id": "m-1"}
    )
    assert sent.ok
    job = store.get(job_id)
    assert job is not None and job.status == "sent" and job.message_id == "m-1"
    assert [e.to_status for e in job.events] == ["queued", "sending", "sent"]
    assert store.count_in("sending") == 0 and store.count_in("queued") == 0
    assert not store.transition("job_missing", ["queued"], "sending", now=NOW, reason="x").ok


def test_terminal_state_redacts_parameters_and_starts_retention(store: JobStore, redis_client: redis.Redis) -> None:
    job_id, _ = store.create(new_job(alimtalk()), NOW)
    assert redis_client.ttl(keys.job(job_id)) == -1
    assert store.transition(
        job_id, ["queued"], "failed", now=NOW, reason="test", fields={"delivery_code": "TEMPLATE_NOT_FOUND"}
    ).ok
    job = store.get(job_id)
    assert job is not None and job.is_terminal and job.parameters_redacted
    assert job.request["template"]["parameters"] == {}
    assert "482913" not in str(redis_client.hgetall(keys.job(job_id)))
    assert job.delivery == {"code": "TEMPLATE_NOT_FOUND"} and job.terminal_at == NOW
    assert 3500 < redis_client.ttl(keys.job(job_id)) <= 3600
    assert 3500 < redis_client.ttl(keys.events(job_id)) <= 3600


def test_cancel_only_before_the_claim(store: JobStore) -> None:
    queued, _ = store.create(new_job(alimtalk()), NOW)
    scheduled, _ = store.create(new_job(alimtalk(), not_before=NOW + timedelta(hours=1)), NOW)
    sending, _ = store.create(new_job(alimtalk()), NOW)
    store.transition(sending, ["queued"], "sending", now=NOW, reason="claimed")
    assert store.cancel(queued, NOW).ok
    assert store.cancel(scheduled, NOW).ok
    refused = store.cancel(sending, NOW)
    assert not refused.ok and refused.previous == "sending"
    assert store.release_due(NOW + timedelta(hours=2)) == []  # a cancelled job is never released


def test_message_index_and_transition_counts(store: JobStore) -> None:
    job_id, _ = store.create(new_job(alimtalk()), NOW)
    store.link_message("msg-1", job_id)
    assert store.job_for_message("msg-1") == job_id and store.job_for_message("nope") is None
    store.transition(job_id, ["queued"], "sending", now=NOW, reason="claimed")
    assert store.transition_counts() == {"queued": 1, "sending": 1}


def test_create_many_in_one_pipeline(store: JobStore) -> None:
    jobs = [new_job(alimtalk(f"k{i % 50}")) for i in range(100)]
    results = store.create_many(jobs, NOW)
    assert sum(created for _, created in results) == 50
    assert len({job_id for job_id, _ in results}) == 50


def test_an_idempotency_key_whose_job_is_gone_is_free(store: JobStore, redis_client: redis.Redis) -> None:
    first, _ = store.create(new_job(alimtalk("order-9")), NOW)
    redis_client.delete(keys.job(first), keys.events(first))  # the record aged out, the key (with its own TTL) did not
    assert store.job_for_idempotency_key("order-9") is None
    again, created = store.create(new_job(alimtalk("order-9")), NOW)
    assert created and again != first and store.job_for_idempotency_key("order-9") == again


def test_an_idempotency_key_expires_with_its_record_not_before(store: JobStore, redis_client: redis.Redis) -> None:
    job_id, _ = store.create(new_job(alimtalk("order-10")), NOW)
    assert redis_client.ttl(keys.idempotency("order-10")) == -1  # no TTL of its own while the job lives
    store.transition(job_id, ["queued"], "cancelled", now=NOW, reason="test")
    assert redis_client.ttl(keys.idempotency("order-10")) == redis_client.ttl(keys.job(job_id)) > 3500


def test_a_sent_job_drops_its_parameters_and_ages_out_while_a_receipt_still_finds_it(
    store: JobStore, redis_client: redis.Redis
) -> None:
    job_id, _ = store.create(new_job(alimtalk("order-11")), NOW)
    store.transition(job_id, ["queued"], "sending", now=NOW, reason="claimed", fields={"owner": "o"})
    assert store.mark_sent(job_id, owner="o", message_id="m-11", attempts=1, now=NOW).ok
    assert "482913" not in str(redis_client.hgetall(keys.job(job_id)))
    for key in (keys.job(job_id), keys.events(job_id), keys.idempotency("order-11")):
        assert 3500 < redis_client.ttl(key) <= 3600
    receipt = {"status": "DELIVERED", "message_id": "m-11", "code": "", "sub_code": "", "description": ""}
    assert store.apply_receipt(job_id, receipt, NOW + timedelta(minutes=30)) == ("applied", "delivered")


def test_instants_are_stored_to_the_millisecond_exactly_as_computed(store: JobStore) -> None:
    due = datetime(2026, 11, 24, 3, 0, 0, 123000, tzinfo=UTC)  # 0.123 s: not exact in binary floating point
    job_id, _ = store.create(new_job(alimtalk(), not_before=due), NOW)
    job = store.get(job_id)
    assert job is not None and job.not_before == due and store.next_due() == due
    assert to_ms(datetime(2286, 11, 20, 17, 46, 39, 999000, tzinfo=UTC)) == 9_999_999_999_999
    assert from_ms(to_ms(due)) == due


def test_the_event_streams_are_trimmed(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client, stream_length=100)
    for _ in range(300):
        job_id, _ = store.create(new_job(alimtalk()), NOW)
        redis_client.hset(keys.job(job_id), "callback_url", "https://producer.example/hook")
        store.cancel(job_id, NOW)
    for stream in (keys.JOB_EVENTS_STREAM, keys.CALLBACK_OUTBOX):
        assert redis_client.xlen(stream) < 300
