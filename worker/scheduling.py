"""Deferred jobs and repair: the releaser of due jobs and the reconciler of stuck ones (run by beat).

Deferred jobs (FriendTalk window, `send_at`, retry backoff, throttling) wait in the `scheduled`
sorted set, not in the broker: no long Celery ETA is ever published (kombu #337 runs those twice).
The releaser claims due ids atomically and publishes them with an ETA of at most its horizon, and
never fills the broker beyond a set depth, so releasing 100,000 jobs at 08:00 KST costs memory
only in proportion to what the rate limit can send soon.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from worker import metrics
from worker.jobs import JobStore

#: Publish one job id for dispatch, at `eta` when given (always within seconds of now).
Publish = Callable[[str, datetime | None], None]


def release_due_jobs(
    store: JobStore,
    publish: Publish,
    *,
    now: datetime,
    max_queue_depth: int,
    horizon_seconds: float = 1.0,
    batch: int = 500,
    budget_seconds: float = 0.8,
) -> int:
    """Move due jobs to `queued` and publish them, each with its due time as ETA; returns how many were released.

    The depth is the number of `queued` jobs (their index), not the broker list's length: that misses the
    messages workers have reserved but not acknowledged.
    """
    released = 0
    deadline = time.monotonic() + budget_seconds
    while time.monotonic() < deadline:
        room = max_queue_depth - store.count_in("queued")
        if room <= 0:
            break
        due_jobs = store.release_due(now, horizon_ms=int(horizon_seconds * 1000), limit=min(batch, room))
        for job_id, due in due_jobs:
            publish(job_id, due)  # at most `horizon_seconds` ahead; a past ETA runs at once
        released += len(due_jobs)
        if len(due_jobs) < min(batch, room):
            break
    metrics.jobs_released(released)
    return released


@dataclass
class Reconciliation:
    republished: list[str] = field(default_factory=list)  # queued too long: its message may be lost
    requeued: list[str] = field(default_factory=list)  # claimed, but the request never left
    unknown: list[str] = field(default_factory=list)  # claimed, request left, the worker vanished
    requeue_limit: list[str] = field(default_factory=list)  # its worker vanished before sending too often: failed
    timed_out: list[str] = field(default_factory=list)  # unknown for longer than the timeout


def reconcile_jobs(
    store: JobStore,
    publish: Publish,
    *,
    now: datetime,
    stale_seconds: float,
    unknown_timeout: float,
    max_requeues: int = 5,
    limit: int = 500,
) -> Reconciliation:
    """Repair what a crash between two steps can leave behind; never sends anything twice.

    - `queued` for longer than `stale_seconds`: its message may be lost (a crash between save and publish,
      a Redis restart): publish it again, however full the queue (a lost message must not wait for an idle
      moment), and note the time so it is republished at most once per `stale_seconds`. A duplicate is
      harmless: the claim lets only one through.
    - `sending` with a claim older than `stale_seconds` (kept at least twice the task time limit, so no live
      task holds it): the worker died. Decided atomically with the job's state: if the request had not been
      handed to Sinch the job goes back to `queued` (after `max_requeues` such requeues it is `failed`,
      requeue_limit: a job that kills its worker must not loop forever); if it had, it becomes `unknown`
      (never resent) and receipts that waited for the send are applied.
    - `unknown` for longer than `unknown_timeout` with no receipt: `failed` with DELIVERY_UNCONFIRMED.
    """
    report = Reconciliation()
    stale = now - timedelta(seconds=stale_seconds)
    for job_id in store.rescore_queued(store.ids_in("queued", before=stale, limit=limit), now):
        publish(job_id, None)
        report.republished.append(job_id)
    for job_id in store.ids_in("sending", before=stale, limit=limit):
        outcome = store.settle_stale_sending(job_id, claimed_before=stale, now=now, max_requeues=max_requeues)
        if outcome == "requeued":
            publish(job_id, None)
            report.requeued.append(job_id)
        elif outcome == "unknown":
            report.unknown.append(job_id)
        elif outcome == "failed":
            report.requeue_limit.append(job_id)
    for job_id in store.ids_in("unknown", before=now - timedelta(seconds=unknown_timeout), limit=limit):
        moved = store.transition(
            job_id, ["unknown"], "failed", now=now, reason=f"no receipt within {unknown_timeout:.0f} s",
            fields={"delivery_code": "DELIVERY_UNCONFIRMED",
                    "delivery_description": "the send's outcome was never confirmed by Sinch"},
        )  # fmt: skip
        if moved.ok:
            report.timed_out.append(job_id)
    metrics.jobs_repaired(**vars(report))
    return report
