"""Job events for producers: the stream of status changes, and signed POSTs to a job's callback_url.

Every status change is already in two Redis streams, written by the same Lua script as the change:
`kd:events` (every job, bounded, for any service to read) and `kd:outbox` (jobs with a
callback_url). The forwarder reads the outbox through a consumer group, so an event is handed
on at least once even when a worker dies mid-way; each POST is retried with backoff a bounded
number of times. Receivers should treat events as at-least-once and order them by `at`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import redis

from worker import keys
from worker.jobs import JobStore, from_ms
from worker.recipients import mask_msisdn
from worker.signing import SignatureHeaders, signed_headers

FORWARDER_GROUP = "forwarder"
HEADERS = SignatureHeaders.with_prefix("x-kakao-dispatch-signature")
SIGNATURE_HEADER, NONCE_HEADER, TIMESTAMP_HEADER = HEADERS.signature, HEADERS.nonce, HEADERS.timestamp


class CallbackRefused(Exception):
    """The producer's callback_url did not answer 2xx (or could not be reached)."""


def ensure_group(client: redis.Redis) -> None:
    try:
        client.xgroup_create(keys.CALLBACK_OUTBOX, FORWARDER_GROUP, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def forward_job_events(
    client: redis.Redis,
    hand_on: Callable[[str, dict[str, str]], None],
    *,
    consumer: str,
    count: int = 500,
    claim_idle_ms: int = 60_000,
) -> int:
    """Hand each new outbox event to `hand_on(job_id, event)`, then acknowledge it; returns how many.

    Events another forwarder read but never acknowledged (it died) are claimed after `claim_idle_ms`.
    """
    ensure_group(client)
    autoclaimed: Any = client.xautoclaim(
        keys.CALLBACK_OUTBOX, FORWARDER_GROUP, consumer, min_idle_time=claim_idle_ms, start_id="0-0", count=count
    )
    entries: list[Any] = list(autoclaimed[1])
    fresh: Any = client.xreadgroup(FORWARDER_GROUP, consumer, {keys.CALLBACK_OUTBOX: ">"}, count=count)
    for _, stream_entries in fresh or []:
        entries.extend(stream_entries)
    for entry_id, fields in entries:
        if fields:  # a claimed entry trimmed from the stream meanwhile comes back empty
            hand_on(str(fields["job_id"]), {str(k): str(v) for k, v in fields.items()} | {"event_id": str(entry_id)})
        client.xack(keys.CALLBACK_OUTBOX, FORWARDER_GROUP, entry_id)
    return len(entries)


def event_document(store: JobStore, job_id: str, event: Mapping[str, str]) -> tuple[str, dict[str, Any]] | None:
    """(callback_url, body) for one event, or None when the job is gone or has no callback_url."""
    job = store.get(job_id, with_events=False)
    if job is None or not job.callback_url:
        return None
    at = from_ms(event.get("at"))
    body = {
        "event_id": event.get("event_id"),
        "job_id": job.id,
        "status": event.get("to"),
        "previous_status": event.get("from") or None,
        "at": at.isoformat() if at else None,
        "reason": event.get("reason"),
        "job": {
            "type": job.type,
            "channel": job.channel,
            "status": job.status,
            "recipient": mask_msisdn(job.msisdn) if job.msisdn else job.contact_id,
            "message_id": job.message_id,
            "attempts": job.attempts,
            "delivery": job.delivery,
            "metadata": job.metadata,
            "idempotency_key": job.idempotency_key,
        },
    }
    return job.callback_url, body


def post_job_event(client: httpx.Client, url: str, body: Mapping[str, Any], secret: str | None) -> None:
    """POST one event, HMAC-signed like Sinch's webhooks when a secret is set; raises CallbackRefused."""
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if secret:
        headers |= signed_headers(secret, raw, names=HEADERS)
    try:
        response = client.post(url, content=raw, headers=headers)
    except httpx.HTTPError as error:
        raise CallbackRefused(f"{url}: {type(error).__name__}") from error
    if not response.is_success:
        raise CallbackRefused(f"{url} answered HTTP {response.status_code}")
