"""A batch through a faulty system: start workers, enqueue, wait until every job settled, balance the books.

The books are what Sinch received and the job records. The simulator records every `messages:send`
request, accepted or not (`/_sim/messages`), with the job id we put in `correlation_id`. A job is "sent
twice" when more than one of its requests was accepted, or when any request of it reached Sinch after one
had been accepted; a job is "lost" when its record is gone or it never comes to rest in a status where it
needs no worker.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery_processes import CeleryProcess, worker_process
from system import Pipeline

from producers.producer import Enqueued, RequestRejected
from worker import keys
from worker.jobs import Job

#: Where a job may rest when no worker holds it and nothing is due: sent, or terminal, or waiting for its receipt.
SETTLED = frozenset({"sent", "delivered", "failed", "rejected", "cancelled", "expired", "unknown"})


def start_workers(
    pipeline: Pipeline, names: list[str], *, concurrency: int = 2, queues: str = "dispatch,callbacks"
) -> list[CeleryProcess]:
    """Start several workers at once (a cold start takes seconds each); stopped with the pipeline."""
    processes = [
        worker_process(pipeline.env, pipeline.tmp_path / f"{name}.log", name=name, concurrency=concurrency,
                       queues=queues)
        for name in names
    ]  # fmt: skip
    pipeline.processes.extend(processes)
    with ThreadPoolExecutor(len(processes)) as pool:
        list(pool.map(CeleryProcess.start, processes))
    return processes


def enqueue(pipeline: Pipeline, requests: list[dict[str, Any]]) -> list[str]:
    """Enqueue a batch through the producer; every request must be accepted by the rules."""
    results = pipeline.producer.send_many(requests)
    rejected = [result for result in results if isinstance(result, RequestRejected)]
    assert not rejected, rejected[:3]
    return [result.id for result in results if isinstance(result, Enqueued)]


def alimtalk(index: int, prefix: str = "010-5555") -> dict[str, Any]:
    """An AlimTalk the simulator delivers (its template is registered there), one recipient per index."""
    return {"type": "alimtalk", "to": {"msisdn": f"{prefix}-{index:04d}"},
            "template": {"id": "order_shipped", "parameters": {"order_id": f"A-{index}"}}}  # fmt: skip


def accepted_total(pipeline: Pipeline) -> int:
    stats: dict[str, Any] = pipeline.sim("GET", "/_sim/stats")
    return int(stats["accepted"])


def statuses(pipeline: Pipeline, job_ids: list[str]) -> Counter[str]:
    """The status of every job in one round trip ("" for a job whose record is gone)."""
    pipe = pipeline.redis.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hget(keys.job(job_id), "status")
    return Counter(status or "" for status in pipe.execute())


def wait_until_settled(pipeline: Pipeline, job_ids: list[str], allowed: frozenset[str], timeout: float) -> None:
    """Wait until every job rests in an allowed status (a job whose record is gone never does)."""
    pipeline.wait_for(
        lambda: set(statuses(pipeline, job_ids)) <= allowed, timeout, f"every job to be one of {sorted(allowed)}"
    )


def receipt_counters(pipeline: Pipeline) -> dict[str, int]:
    """The workers' `receipts:<outcome>` counters (applied, pending, duplicate, late, orphaned)."""
    counters = {str(name): int(value) for name, value in pipeline.redis.hgetall(keys.COUNTERS).items()}
    return {name.removeprefix("receipts:"): value for name, value in counters.items() if name.startswith("receipts:")}


def receipts_processed(pipeline: Pipeline) -> int:
    """Receipts the workers finished with (one that waited for its job's `sent` mark counts once)."""
    counters = receipt_counters(pipeline)
    return sum(counters.get(outcome, 0) for outcome in ("applied", "duplicate", "late", "orphaned"))


def wait_for_receipts(pipeline: Pipeline, timeout: float) -> None:
    """Wait until the simulator has posted every receipt and the workers have processed each post once."""

    def done() -> bool:
        receipts = pipeline.sim("GET", "/_sim/stats")["receipts"]
        return bool(receipts["pending"] == 0 and receipts_processed(pipeline) == receipts["sent"])

    pipeline.wait_for(done, timeout, "every receipt the gateway took to be processed once")


@dataclass
class Ledger:
    """The job records and the simulator's requests of one batch, read once after the batch settled."""

    jobs: dict[str, Job | None]
    requests: dict[str, list[dict[str, Any]]]  # by job id (correlation_id), in arrival order
    stats: dict[str, Any]

    @classmethod
    def read(cls, pipeline: Pipeline, job_ids: list[str], *, other_requests: int = 0) -> Ledger:
        """`other_requests`: how many requests the test sent to the simulator itself (not jobs of the batch)."""
        messages: list[dict[str, Any]] = pipeline.sim("GET", "/_sim/messages")
        stats: dict[str, Any] = pipeline.sim("GET", "/_sim/stats")
        assert len(messages) == stats["requests"], "the simulator's message log was truncated"
        requests: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for item in messages:  # the log is in arrival order
            request = item["request"]
            requests[request.get("correlation_id", "") if isinstance(request, dict) else ""].append(item)
        batch = set(job_ids)
        foreign = sum(len(items) for job_id, items in requests.items() if job_id not in batch)
        assert foreign == other_requests, f"Sinch received {foreign} requests that are no job of this batch"
        return cls({job_id: pipeline.store.get(job_id) for job_id in job_ids}, dict(requests), stats)

    def job(self, job_id: str) -> Job:
        job = self.jobs[job_id]
        assert job is not None, f"job {job_id} is lost: its record is gone"
        return job

    def statuses(self) -> Counter[str]:
        return Counter(self.job(job_id).status for job_id in self.jobs)

    def accepted(self, job_id: str) -> list[dict[str, Any]]:
        return [item for item in self.requests.get(job_id, []) if item["message_id"] is not None]

    def assert_nothing_lost(self, allowed: frozenset[str] = SETTLED) -> None:
        """Every job still has its record, and rests in one of the allowed statuses."""
        unsettled = {job_id: self.job(job_id).status for job_id in self.jobs if self.job(job_id).status not in allowed}
        assert not unsettled, f"{len(unsettled)} jobs not settled: {dict(list(unsettled.items())[:5])}"

    def assert_sent_at_most_once(self) -> None:
        """No job has two accepted requests, and none reached Sinch again after one was accepted."""
        for job_id in self.jobs:
            requests = self.requests.get(job_id, [])
            accepted = [index for index, item in enumerate(requests) if item["message_id"] is not None]
            assert len(accepted) <= 1, f"job {job_id} was accepted by Sinch {len(accepted)} times"
            assert not accepted or accepted[0] == len(requests) - 1, (
                f"job {job_id} was sent again after Sinch accepted it: {[r['http_status'] for r in requests]}"
            )

    def assert_records_match_sinch(self) -> None:
        """A job marked sent (or resolved by a receipt) carries the message id of its one accepted request;
        a job failed for exhausted retries never had a request accepted."""
        for job_id in self.jobs:
            job, accepted = self.job(job_id), self.accepted(job_id)
            if job.status == "sent" or (job.status in ("delivered", "failed") and job.message_id):
                assert [item["message_id"] for item in accepted] == [job.message_id], (job_id, job.status)
            if job.delivery.get("code") == "RETRIES_EXHAUSTED":
                assert accepted == [], f"job {job_id} failed for exhausted retries, yet Sinch accepted it"

    def received_at(self, item: dict[str, Any]) -> datetime:
        return datetime.fromisoformat(item["received_at"])
