"""Redis stopped and started again mid-batch, with AOF (DESIGN §3.7): nothing lost, nothing sent twice.

The redis-server runs as production should (`--appendonly yes --appendfsync everysec`, noeviction).
It is stopped with SIGTERM, which Redis answers with a graceful shutdown that fsyncs the AOF, and
started again on the same port and directory while workers and beat keep running. They must
reconnect by themselves; jobs whose worker lost Redis in the middle are repaired by the reconciler.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from batch import Ledger, accepted_total, alimtalk, enqueue, statuses, wait_until_settled
from system import Pipeline, system_under_test

from worker.redis_server import RedisServer

pytestmark = pytest.mark.slow

JOBS = 600
WORKERS = 2
CONCURRENCY = 2
OUTAGE_SECONDS = 2.0


@pytest.fixture
def durable_redis() -> Iterator[RedisServer]:
    with RedisServer(durable=True) as server:
        yield server


@pytest.fixture
def durable_pipeline(durable_redis: RedisServer, tmp_path: Path) -> Iterator[Pipeline]:
    with system_under_test(durable_redis, tmp_path) as system:
        yield system


def test_redis_restarted_with_aof_mid_batch_loses_nothing_and_sends_nothing_twice(
    durable_redis: RedisServer, durable_pipeline: Pipeline
) -> None:
    pipeline = durable_pipeline
    assert pipeline.redis.config_get("appendonly") == {"appendonly": "yes"}
    pipeline.configure(KAKAO_DISPATCH_RATE_LIMIT="100")
    pipeline.sim("PUT", "/_sim/faults", json={"latency_ms": [5, 20]})
    for index in range(WORKERS):
        pipeline.start_worker(f"w{index}", concurrency=CONCURRENCY)
    pipeline.start_beat()
    job_ids = enqueue(pipeline, [alimtalk(index) for index in range(JOBS)])
    pipeline.wait_for(lambda: accepted_total(pipeline) >= JOBS // 4, 60, "a quarter of the batch sent")

    durable_redis.stop()  # SIGTERM: Redis shuts down gracefully and fsyncs the AOF
    sent_before_restart = accepted_total(pipeline)
    time.sleep(OUTAGE_SECONDS)
    durable_redis.start()
    assert sent_before_restart < JOBS, "the batch was over before Redis stopped"
    assert sum(statuses(pipeline, job_ids).values()) == JOBS

    wait_until_settled(pipeline, job_ids, frozenset({"sent", "unknown"}), timeout=120)
    assert accepted_total(pipeline) > sent_before_restart + JOBS // 4, "the workers did not go on after the restart"
    ledger = Ledger.read(pipeline, job_ids)
    ledger.assert_nothing_lost(frozenset({"sent", "unknown"}))
    ledger.assert_sent_at_most_once()
    ledger.assert_records_match_sinch()
    unknown = [job_id for job_id in job_ids if ledger.job(job_id).status == "unknown"]
    # Only a request in flight when Redis went away may be unknown: at most one per worker process.
    assert len(unknown) <= WORKERS * CONCURRENCY, len(unknown)
