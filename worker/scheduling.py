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

from worker.jobs import JobStore

#: Publish one job id for dispatch, at `eta` when given (always within seconds of now).
Publish = Callable[[str, datetime | None], None]


def release_due_jobs(
    store: JobStore,
    publish: Publish,
    *,
    now: datetime,
    queue_depth: Callable[[], int],
    max_queue_depth: int,
    horizon_seconds: float = 1.0,
    batch: int = 500,
    budget_seconds: float = 0.8,
) -> int:
    """Move due jobs to `queued` and publish them; returns how many were released."""
    released = 0
    deadline = time.monotonic() + budget_seconds
    while time.monotonic() < deadline:
        room = max_queue_depth - queue_depth()
        if room <= 0:
            break
        due_jobs = store.release_due(now, horizon_ms=int(horizon_seconds * 1000), limit=min(batch, room))
        for job_id, due in due_jobs:
            publish(job_id, due if due > now else None)
        released += len(due_jobs)
        if len(due_jobs) < min(batch, room):
            break
    return released


@dataclass
class Reconciliation:
    republished: list[str] = field(default_factory=list)  # queued too long with no message in the broker
    requeued: list[str] = field(default_factory=list)  # claimed, but the request never left
    unknown: list[str] = field(default_factory=list)  # claimed, request left, the worker vanished
    timed_out: list[str] = field(default_factory=list)  # unknown for longer than the timeout


def reconcile_jobs(
    store: JobStore,
    publish: Publish,
    *,
    now: datetime,
    stale_seconds: float,
    unknown_timeout: float,
    queue_depth: Callable[[], int],
    limit: int = 500,
) -> Reconciliation:
    """Repair what a crash between two steps can leave behind; never sends anything twice.

    - `queued` for longer than `stale_seconds` while the dispatch queue is empty: the message was lost
      (a crash between save and publish, a Redis restart): publish it again. A duplicate is harmless,
      the claim lets only one through.
    - `sending` for longer than `stale_seconds`: the worker died or hung. If the request had not been
      handed to Sinch the job goes back to `queued`; if it had, it becomes `unknown` (never resent).
    - `unknown` for longer than `unknown_timeout` with no receipt: `failed` with DELIVERY_UNCONFIRMED.
    """
    report = Reconciliation()
    stale = now - timedelta(seconds=stale_seconds)
    if queue_depth() == 0:
        for job_id in store.ids_in("queued", before=stale, limit=limit):
            publish(job_id, None)
            report.republished.append(job_id)
    for job_id in store.ids_in("sending", before=stale, limit=limit):
        job = store.get(job_id, with_events=False)
        if job is None or job.status != "sending":
            continue
        if job.handed_to_sinch:
            moved = store.transition(
                job_id, ["sending"], "unknown", now=now, owner=job.owner or "",
                reason="the worker vanished after handing the request to Sinch",
            )  # fmt: skip
            if moved.ok:
                report.unknown.append(job_id)
        else:
            moved = store.transition(
                job_id, ["sending"], "queued", now=now, owner=job.owner or "",
                reason="the worker vanished before sending", delete=["owner"],
            )  # fmt: skip
            if moved.ok:
                publish(job_id, None)
                report.requeued.append(job_id)
    for job_id in store.ids_in("unknown", before=now - timedelta(seconds=unknown_timeout), limit=limit):
        moved = store.transition(
            job_id, ["unknown"], "failed", now=now, reason=f"no receipt within {unknown_timeout:.0f} s",
            fields={"delivery_code": "DELIVERY_UNCONFIRMED",
                    "delivery_description": "the send's outcome was never confirmed by Sinch"},
        )  # fmt: skip
        if moved.ok:
            report.timed_out.append(job_id)
    return report
