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
