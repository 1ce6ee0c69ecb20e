"""SIGKILL of workers mid-batch, again and again: nothing lost, nothing sent twice (DESIGN §3.2, §3.8).

tests/test_pipeline.py kills one of two workers once. Here two of three workers are killed together,
three times while the batch runs, and replaced each time; the third worker and the replacements finish.
Whatever the killed processes held comes back through Celery's visibility timeout and the reconciler
(beat, every 10 s): a job whose request had not left goes back to `queued` and is sent once; a job whose
request had left becomes `unknown` and is never sent again.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from batch import Ledger, accepted_total, alimtalk, enqueue, start_workers, wait_until_settled
from system import Pipeline

pytestmark = pytest.mark.slow

JOBS = 600
RATE = 25  # messages/s: the batch takes longer than the three rounds of kills
CONCURRENCY = 2
ROUNDS = 3
SENDS_BETWEEN_KILLS = 40


def sent_at_least(pipeline: Pipeline, count: int) -> Callable[[], bool]:
    return lambda: accepted_total(pipeline) >= count


def test_killing_two_of_three_workers_again_and_again_loses_nothing_and_sends_nothing_twice(
    pipeline: Pipeline,
) -> None:
    pipeline.configure(KAKAO_DISPATCH_RATE_LIMIT=str(RATE))
    pipeline.sim("PUT", "/_sim/faults", json={"latency_ms": [5, 30]})
    pipeline.start_beat()
    pipeline.start_worker("steady", concurrency=CONCURRENCY)
    doomed = start_workers(pipeline, ["doomed-a0", "doomed-b0"], concurrency=CONCURRENCY)
    job_ids = enqueue(pipeline, [alimtalk(index) for index in range(JOBS)])

    killed = 0
    for round_ in range(1, ROUNDS + 1):
        target = accepted_total(pipeline) + SENDS_BETWEEN_KILLS
        pipeline.wait_for(sent_at_least(pipeline, target), 30, f"{target} sends before kill {round_}")
        for process in doomed:
            process.kill()
        killed += len(doomed)
        doomed = start_workers(pipeline, [f"doomed-a{round_}", f"doomed-b{round_}"], concurrency=CONCURRENCY)
    assert accepted_total(pipeline) < JOBS, "the batch was over before the last kill: raise JOBS or lower RATE"

    wait_until_settled(pipeline, job_ids, frozenset({"sent", "unknown"}), timeout=120)
    ledger = Ledger.read(pipeline, job_ids)
    ledger.assert_nothing_lost(frozenset({"sent", "unknown"}))
    ledger.assert_sent_at_most_once()
    ledger.assert_records_match_sinch()
    unknown = [job_id for job_id in job_ids if ledger.job(job_id).status == "unknown"]
    # Only a request in flight when its process died may be unknown: at most one per killed process.
    assert len(unknown) <= killed * CONCURRENCY, (len(unknown), killed)
    assert all(len(ledger.requests.get(job_id, [])) <= 1 for job_id in unknown)
