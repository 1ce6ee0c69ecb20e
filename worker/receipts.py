"""Delivery receipts (MESSAGE_DELIVERY callbacks) matched back to their jobs.

A receipt finds its job by Sinch's `message_id`, else by the job id we sent as `message_metadata`
(echoed as the report's `metadata`) and `correlation_id`. The job store applies it idempotently
and in order (worker/lua/receipt.lua); a receipt that matches no job is kept as an orphan, with
a TTL and a counter, never dropped silently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from worker import keys
from worker.jobs import JobStore, to_ms

log = logging.getLogger(__name__)

ORPHAN_TTL_SECONDS = 7 * 86400


def find_job(store: JobStore, message_id: str, *candidates: object) -> str | None:
    """The job of a receipt: its message id first, then any job id it carries that names a stored job."""
    if message_id:
        job_id = store.job_for_message(message_id)
        if job_id is not None:
            return job_id
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.startswith("job_") and store.redis.exists(keys.job(candidate)):
            return candidate
    return None


def apply_delivery_report(store: JobStore, payload: Mapping[str, Any], now: datetime) -> str:
    """Apply one MESSAGE_DELIVERY callback; returns the outcome (applied, pending, duplicate, late, orphaned)."""
    report = payload.get("message_delivery_report")
    if not isinstance(report, dict):
        raise ValueError("not a MESSAGE_DELIVERY callback: no message_delivery_report object")
    message_id = str(report.get("message_id") or "")
    found_reason = report.get("reason")
    reason: dict[str, Any] = found_reason if isinstance(found_reason, dict) else {}
    receipt = {
        "status": str(report.get("status") or "UNKNOWN"),
        "message_id": message_id,
        "code": str(reason.get("code") or ""),
        "sub_code": str(reason.get("sub_code") or ""),
        "description": str(reason.get("description") or "")[:1000],
    }
    job_id = find_job(store, message_id, report.get("metadata"), payload.get("correlation_id"))
    if job_id is None:
        keep_orphan(store, payload, message_id, now)
        return "orphaned"
    outcome, status = store.apply_receipt(job_id, receipt, now)
    if outcome == "missing":  # the id index outlived the record (retention): keep the receipt anyway
        keep_orphan(store, payload, message_id, now)
        return "orphaned"
    if message_id and store.job_for_message(message_id) is None:
        store.link_message(message_id, job_id)  # an `unknown` job learns its message id from the receipt
    log.info("receipt %s for %s: %s (job %s)", receipt["status"], job_id, outcome, status, extra={"job_id": job_id})
    return outcome


def keep_orphan(store: JobStore, payload: Mapping[str, Any], message_id: str, now: datetime) -> None:
    orphan_id = message_id or f"no-message-id:{to_ms(now)}"
    pipe = store.redis.pipeline(transaction=True)
    pipe.hset(keys.ORPHANS, orphan_id, json.dumps(payload, ensure_ascii=False, separators=(",", ":")))
    pipe.zadd(keys.ORPHANS_INDEX, {orphan_id: to_ms(now)})
    pipe.hincrby(keys.COUNTERS, "receipts:orphaned", 1)
    pipe.execute()
    log.warning("receipt for message %s matches no job; kept as an orphan", message_id or "(none)")


def expire_orphans(store: JobStore, now: datetime, ttl_seconds: float = ORPHAN_TTL_SECONDS) -> int:
    """Forget orphan receipts older than the TTL; returns how many."""
    old = store.redis.zrangebyscore(keys.ORPHANS_INDEX, "-inf", to_ms(now - timedelta(seconds=ttl_seconds)))
    if old:
        pipe = store.redis.pipeline(transaction=True)
        pipe.hdel(keys.ORPHANS, *old)
        pipe.zrem(keys.ORPHANS_INDEX, *old)
        pipe.execute()
    return len(old)


def orphans(store: JobStore) -> dict[str, Any]:
    return {str(key): json.loads(value) for key, value in store.redis.hgetall(keys.ORPHANS).items()}
