"""Sinch's delivery receipts duplicated, reordered, delayed and dropped, end to end (DESIGN §3.6).

tests/test_receipts.py applies hand-made receipts to the job store one by one. Here the simulator sends
them over HTTP to the real gateway, with its receipt faults on, for a batch whose messages end every way
KakaoTalk ends them: delivered, failed (template not found, recipient not reachable) and delivered over
SMS after a SWITCHING_CHANNEL receipt (two receipts per message, so reordering can put them backwards).
Some receipts also overtake the send's own answer. Every receipt the gateway took is applied once; each
job ends as its final receipt says, or stays `sent` when that receipt was dropped; receipts of messages
that are no job of ours are kept as orphans and counted.
"""

from __future__ import annotations

from typing import Any

import pytest
from batch import Ledger, alimtalk, enqueue, receipt_counters, start_workers, wait_for_receipts, wait_until_settled
from system import Pipeline

from worker import keys
from worker.receipts import orphans

pytestmark = pytest.mark.slow

JOBS = 300
RECEIPT_FAULTS = {
    "latency_ms": [50, 250],  # the send's answer is slower than some receipts: those wait for the `sent` mark
    "receipt_delay_ms": [0, 300],
    "receipt_duplicate": 0.25,
    "receipt_reorder": 0.25,
    "receipt_reorder_hold_ms": 400,
    "receipt_drop": 0.10,
}
ORPHANS = 3
FINAL = {"DELIVERED": "delivered", "FAILED": "failed"}


def request(index: int) -> dict[str, Any]:
    """Five kinds of ending, in turn."""
    unreachable = {"msisdn": f"010-9999-{index:04d}"}  # the simulator's never-reachable range
    text = {"text_message": {"text": f"주말 할인 {index}"}}
    return [
        alimtalk(index),  # DELIVERED
        alimtalk(index, prefix="010-6666"),  # DELIVERED
        {"type": "alimtalk", "to": {"msisdn": f"010-7777-{index:04d}"}, "template": {"id": "not_approved"}},  # FAILED
        {"type": "friendtalk", "to": unreachable, "message": text},  # FAILED RECIPIENT_NOT_REACHABLE
        {"type": "friendtalk", "to": unreachable, "message": text, "sms_fallback": True},  # SWITCHING, DELIVERED
    ][index % 5]


def send_directly(pipeline: Pipeline, index: int) -> None:
    """A message someone else sent through the same Sinch app: its receipt matches no job of ours."""
    config = pipeline.simulator.config
    body = {"app_id": config.app_id,
            "recipient": {"identified_by": {"channel_identities": [{"channel": "KAKAOTALK",
                                                                    "identity": f"+82105555{index:04d}"}]}},
            "message": {"template_message": {"channel_template": {"KAKAOTALK": {"template_id": "order_shipped",
                                                                                 "parameters": {"order_id": "x"}}}}},
            "message_metadata": f"other-service-{index}", "correlation_id": f"other-service-{index}"}  # fmt: skip
    pipeline.sim("POST", f"/v1/projects/{config.project_id}/messages:send", json=body,
                 auth=(config.key_id, config.key_secret))  # fmt: skip


def allow_sms_fallback(pipeline: Pipeline) -> None:
    """Give the simulator's app an SMS channel after its two KakaoTalk channels."""
    config = pipeline.simulator.config
    credentials = [
        {"channel": "KAKAOTALK",
         "kakaotalk_credentials": {"kakaotalk_plus_friend_id": "@sim", "kakaotalk_sender_key": "k"}},
        {"channel": "KAKAOTALKCHAT", "kakaotalkchat_credentials": {"kakaotalk_plus_friend_id": "@sim"}},
        {"channel": "SMS", "static_bearer": {"claimed_identity": "KakaoDispatch", "token": "t"}},
    ]  # fmt: skip
    pipeline.sim("PATCH", f"/v1/projects/{config.project_id}/apps/{config.app_id}",
                 params={"update_mask": "channel_credentials"}, json={"channel_credentials": credentials},
                 auth=(config.key_id, config.key_secret))  # fmt: skip


def test_duplicated_reordered_delayed_and_dropped_receipts(pipeline: Pipeline) -> None:
    pipeline.start_gateway()
    allow_sms_fallback(pipeline)
    start_workers(pipeline, ["send-a", "send-b"], queues="dispatch")
    start_workers(pipeline, ["receipts"], queues="callbacks")  # free to take a receipt while every send waits
    pipeline.start_beat()
    for index in range(ORPHANS):
        send_directly(pipeline, index)
    pipeline.wait_for(lambda: receipt_counters(pipeline).get("orphaned") == ORPHANS, 20, "the orphan receipts")

    pipeline.sim("PUT", "/_sim/faults", json=RECEIPT_FAULTS)
    job_ids = enqueue(pipeline, [request(index) for index in range(JOBS)])
    wait_until_settled(pipeline, job_ids, frozenset({"sent", "delivered", "failed"}), timeout=90)
    wait_for_receipts(pipeline, timeout=60)
    ledger = Ledger.read(pipeline, job_ids, other_requests=ORPHANS)
    ledger.assert_nothing_lost()
    ledger.assert_sent_at_most_once()
    ledger.assert_records_match_sinch()
    receipts = ledger.stats["receipts"]
    assert receipts["failed"] == 0, receipts  # the gateway answered every post 2xx
    assert receipts["dropped"] > 0 and receipts["duplicated"] > 0 and receipts["reordered"] > 0, receipts
    counters = receipt_counters(pipeline)
    assert counters.get("duplicate", 0) > 0 and counters.get("late", 0) > 0 and counters.get("pending", 0) > 0, counters
    assert not list(pipeline.redis.scan_iter(keys.pending_receipts("*"))), "receipts left waiting"

    left_sent = 0
    for job_id in job_ids:
        job = ledger.job(job_id)
        [accepted] = ledger.accepted(job_id)
        outcome, reason = accepted["outcome"], accepted["reason"]
        if job.status == "sent":  # its final receipt was dropped: the job waits, it is not lost
            left_sent += 1
            continue
        assert job.status == FINAL[outcome], (job_id, job.status, outcome)
        if outcome == "FAILED":
            assert job.delivery["code"] == reason["code"], (job.delivery, reason)
        finals = [event for event in job.events if event.to_status == job.status and event.from_status != job.status]
        assert len(finals) == 1, (job_id, [event.reason for event in job.events])
        assert sum(event.reason.startswith(("receipt DELIVERED", "receipt FAILED")) for event in job.events) == 1
    assert 0 < left_sent <= receipts["dropped"], (left_sent, receipts)

    kept = orphans(pipeline.store)
    assert counters["orphaned"] == ORPHANS and len(kept) == ORPHANS
    assert sorted(orphan["correlation_id"] for orphan in kept.values()) == [f"other-service-{i}" for i in range(3)]
