"""Every Redis key kakao-dispatch writes, in one place (Celery's own broker keys aside).

All keys share the `kd:` prefix so a shared Redis can be inspected (`SCAN MATCH kd:*`) and
cleaned per application; nothing here is ever FLUSHed.
"""

from __future__ import annotations

PREFIX = "kd:"

#: Hash: the job record (fields in worker.jobs). Expires `retention` after a terminal state.
JOB = PREFIX + "job:"
#: List of JSON events `{at, from, to, reason}`, one per status change, beside its job.
EVENTS_SUFFIX = ":events"
#: String: idempotency key -> job id.
IDEMPOTENCY = PREFIX + "idem:"
#: String: Sinch message id -> job id (receipts find their job through it).
MESSAGE = PREFIX + "msg:"
#: Sorted sets of job ids by status, for the states that need finding again. `scheduled` is the
#: deferral set scored by the due time (ms); the others by the time the job entered the state.
STATUS_INDEX = PREFIX + "status:"
INDEXED_STATUSES = ("scheduled", "queued", "sending", "unknown")
#: Hash: status -> number of transitions into it (gauges derive from it for the current states).
STATUS_COUNTS = PREFIX + "counts"
#: Strings: GCRA theoretical arrival time (ms) of a rate limit scope ("app:<id>", "project:<id>").
RATE = PREFIX + "rate:"
#: Hash: jobs by status and type for /metrics, "into:<status>:<type>" and "out:<status>:<type>" counts of
#: status changes, kept by worker/lua/record_event.lua (worker.jobs hands it the name: a prelude has no KEYS).
JOB_METRICS = PREFIX + "metrics:jobs"
#: Hashes the workers count into and the gateway's /metrics reads (worker/metrics.py): the Sinch send
#: latency histogram and response codes; rate-limit waits, releases and repairs.
SINCH_METRICS = PREFIX + "metrics:sinch"
WORKER_METRICS = PREFIX + "metrics:worker"


def job(job_id: str) -> str:
    return JOB + job_id


def events(job_id: str) -> str:
    return JOB + job_id + EVENTS_SUFFIX


def idempotency(key: str) -> str:
    return IDEMPOTENCY + key


def message(message_id: str) -> str:
    return MESSAGE + message_id


def status_index(status: str) -> str:
    return STATUS_INDEX + status


def rate(scope: str) -> str:
    return RATE + scope


#: Strings: MSISDN (E.164) <-> KAKAOTALKCHAT contact id links (from `contacts link` and merges).
LINK_MSISDN = PREFIX + "link:msisdn:"
LINK_CONTACT = PREFIX + "link:contact:"
#: Hash per KAKAOTALKCHAT contact with an open ConsultationTalk session (expires with the session).
SESSION = PREFIX + "session:"
#: List per KAKAOTALKCHAT contact: its inbound messages, newest last (bounded).
INBOUND = PREFIX + "inbound:"
#: Hash: inbound message id -> local path of its media copy (KAKAO_DISPATCH_INBOUND_MEDIA_DIR).
INBOUND_MEDIA = PREFIX + "inbound-media"
#: Strings: inbound message ids already stored (Sinch retries callbacks; each is stored once).
INBOUND_SEEN = PREFIX + "inbound-seen:"
#: List per job: receipts that arrived before the send's own result (applied once it is known).
PENDING_RECEIPTS_SUFFIX = ":pending-receipts"
#: Hash: receipt id -> receipt JSON for receipts that match no job, and its companion expiry index.
ORPHANS = PREFIX + "orphans"
ORPHANS_INDEX = PREFIX + "orphans:index"
#: Hash: counter name -> value (receipts matched, orphaned, duplicated; callback kinds; ...).
COUNTERS = PREFIX + "counters"
#: Stream of every job status change, for other services (bounded length).
JOB_EVENTS_STREAM = PREFIX + "events"
#: Stream of the status changes of jobs that have a callback_url; the forwarder's consumer group reads it.
CALLBACK_OUTBOX = PREFIX + "outbox"
#: Strings: webhook signature nonces already seen (replay protection), expiring after the timestamp window.
WEBHOOK_NONCE = PREFIX + "webhook-nonce:"


def webhook_nonce(nonce: str) -> str:
    return WEBHOOK_NONCE + nonce


def link_msisdn(msisdn: str) -> str:
    return LINK_MSISDN + msisdn


def link_contact(contact_id: str) -> str:
    return LINK_CONTACT + contact_id


def session(contact_id: str) -> str:
    return SESSION + contact_id


def inbound(contact_id: str) -> str:
    return INBOUND + contact_id


def inbound_seen(message_id: str) -> str:
    return INBOUND_SEEN + message_id


def pending_receipts(job_id: str) -> str:
    return JOB + job_id + PENDING_RECEIPTS_SUFFIX
