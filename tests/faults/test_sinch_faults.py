"""Sinch misbehaving as it does in production: 10 % 5xx, 5 % 429, 2 % answers that come too late (DESIGN §3.4, §3.5).

tests/test_pipeline.py drives one job through each outcome with the fault at 100 %. Here a batch meets
them at realistic rates, mixed: every job must end `sent`, `failed` (retries exhausted) or `unknown`
(its answer timed out), none may be accepted by Sinch twice, and each 429 must pause every worker.
Then the receipts of late answers: an `unknown` job is resolved by its receipt, whether the receipt
arrives after the read timeout or before it (while the job is still `sending`).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from batch import Ledger, alimtalk, enqueue, start_workers, statuses, wait_until_settled
from system import Pipeline

from worker import keys

pytestmark = pytest.mark.slow

JOBS = 300
FAULTS = {"http_5xx": 0.10, "http_429": 0.05, "timeout": 0.02, "timeout_delay_s": 2.5, "latency_ms": [2, 10]}
SINCH_READ_TIMEOUT = 1.0  # below the late answer's delay: a late answer is a read timeout
PAUSE = timedelta(seconds=1)  # what every worker waits after a 429 without Retry-After
SETTLED = frozenset({"sent", "failed", "unknown"})


def test_5xx_429_and_late_answers_at_realistic_rates(pipeline: Pipeline) -> None:
    pipeline.configure(KAKAO_DISPATCH_SINCH_TIMEOUT=str(SINCH_READ_TIMEOUT))
    pipeline.sim("PUT", "/_sim/faults", json=FAULTS)
    pipeline.start_worker("a", concurrency=2)
    pipeline.start_worker("b", concurrency=2)
    pipeline.start_beat()
    job_ids = enqueue(pipeline, [alimtalk(index) for index in range(JOBS)])
    wait_until_settled(pipeline, job_ids, SETTLED, timeout=150)

    ledger = Ledger.read(pipeline, job_ids)
    ledger.assert_nothing_lost(SETTLED)
    ledger.assert_sent_at_most_once()
    ledger.assert_records_match_sinch()
    faults = ledger.stats["faults"]
    assert faults.get("http_5xx", 0) > 0 and faults.get("http_429", 0) > 0 and faults.get("timeout", 0) > 0, faults
    statuses = ledger.statuses()
    # Each late answer leaves its job unknown (accepted by Sinch, never sent again); nothing else does.
    assert statuses["unknown"] == faults["timeout"], (statuses, faults)
    for job_id in job_ids:
        job = ledger.job(job_id)
        if job.status == "unknown":
            assert [item["http_status"] for item in ledger.accepted(job_id)] == [200]
        if job.status == "failed":
            assert job.delivery["code"] == "RETRIES_EXHAUSTED", job.delivery
    assert statuses["sent"] + statuses["unknown"] + statuses["failed"] == JOBS

    # A 429 pauses every worker, not only the one that got it: nothing reaches Sinch in the middle of the pause
    # (the edges are left out: requests already past the rate limit when the 429 came may still arrive).
    received = sorted(ledger.received_at(item) for items in ledger.requests.values() for item in items)
    throttled = [ledger.received_at(item) for items in ledger.requests.values() for item in items
                 if item["http_status"] == 429]  # fmt: skip
    quiet = [at for at in throttled if not any(at + PAUSE * 0.3 < moment < at + PAUSE * 0.8 for moment in received)]
    assert len(quiet) >= 0.9 * len(throttled), f"only {len(quiet)} of {len(throttled)} 429s paused the others"


def test_a_late_answer_is_resolved_by_its_receipt_whether_it_comes_before_or_after_the_timeout(
    pipeline: Pipeline,
) -> None:
    pipeline.configure(KAKAO_DISPATCH_SINCH_TIMEOUT=str(SINCH_READ_TIMEOUT))
    pipeline.start_gateway()
    start_workers(pipeline, ["send-a", "send-b"], queues="dispatch")
    start_workers(pipeline, ["receipts"], queues="callbacks")
    pipeline.start_beat()
    # Every answer comes 2.5 s late; receipts come 0-2 s after acceptance, so about half of them arrive
    # while the worker still waits for its answer (the job is `sending`), the others once it is `unknown`.
    pipeline.sim("PUT", "/_sim/faults", json={"timeout": 1.0, "timeout_delay_s": 2.5, "receipt_delay_ms": [0, 2000]})
    job_ids = enqueue(pipeline, [alimtalk(index) for index in range(20)])
    wait_until_settled(pipeline, job_ids, frozenset({"unknown", "delivered"}), timeout=60)
    pipeline.wait_for(lambda: pipeline.sim("GET", "/_sim/stats")["receipts"]["sent"] == len(job_ids), 30,
                      "the simulator to post every receipt")  # fmt: skip
    deadline = time.monotonic() + 15  # the workers' share: a receipt is applied within moments of its post
    while statuses(pipeline, job_ids)["delivered"] < len(job_ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    ledger = Ledger.read(pipeline, job_ids)
    ledger.assert_sent_at_most_once()
    ledger.assert_records_match_sinch()
    assert ledger.stats["receipts"]["sent"] == len(job_ids)
    unresolved = [job_id for job_id in job_ids if ledger.job(job_id).status != "delivered"]
    waiting = [job_id for job_id in unresolved if pipeline.redis.exists(keys.pending_receipts(job_id))]
    assert not unresolved, (
        f"{len(unresolved)} of {len(job_ids)} jobs stayed {ledger.statuses()} although their receipt came; "
        f"{len(waiting)} of them still hold it among the receipts waiting for the `sent` mark"
    )
