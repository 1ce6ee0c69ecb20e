"""The job store in Redis: job records, their events, idempotency keys, and every status change as a Lua CAS.

Statuses (DESIGN §2, contract): queued → sending → sent → delivered | failed, with the side states
scheduled, rejected, unknown, cancelled, expired. A transition names the statuses it may start
from; when the job is elsewhere nothing changes, which is what makes redeliveries, late receipts
and racing workers harmless.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from worker import keys
from worker.send_request import SendRequest
from worker.settings import Settings

STATUSES = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "failed",
    "scheduled",
    "rejected",
    "unknown",
    "cancelled",
    "expired",
)
TERMINAL = frozenset({"delivered", "failed", "rejected", "cancelled", "expired"})
CANCELLABLE = ("queued", "scheduled")
DEFAULT_RETENTION_SECONDS = 30 * 86400
DEFAULT_STREAM_LENGTH = 100_000
_LUA = Path(__file__).with_name("lua")


#: Key names the scripts derive or name without a KEYS entry (one Redis, not a cluster), from worker.keys.
_LUA_KEY_NAMES = {
    "JOB_PREFIX": keys.JOB,
    "EVENTS_SUFFIX": keys.EVENTS_SUFFIX,
    "IDEMPOTENCY_PREFIX": keys.IDEMPOTENCY,
    "JOB_METRICS": keys.JOB_METRICS,
}


def _script(name: str) -> str:
    """A Lua script with the shared preludes in front of it: key names, `record_event`, `retain` and `finish`."""
    names = "".join(f"local {local} = {json.dumps(value)}\n" for local, value in _LUA_KEY_NAMES.items())
    preludes = (_LUA / "record_event.lua").read_text() + (_LUA / "retention.lua").read_text()
    return names + preludes + (_LUA / name).read_text()


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_job_id(now_ms: int | None = None) -> str:
    """A sortable unique id (ULID layout: 48-bit milliseconds, 80 random bits, Crockford base32)."""
    value = ((now_ms if now_ms is not None else int(time.time() * 1000)) << 80) | int.from_bytes(os.urandom(10))
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "job_" + "".join(reversed(chars))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(moment: datetime) -> int:
    """Unix milliseconds, exactly (floor): the unit of every instant Redis stores. No float rounding."""
    return (moment - _EPOCH) // _MS


def from_ms(value: str | int | None) -> datetime | None:
    if value in (None, ""):
        return None
    return _EPOCH + int(value) * _MS


@dataclass(frozen=True)
class JobEvent:
    at: datetime
    from_status: str | None
    to_status: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "from": self.from_status, "to": self.to_status, "reason": self.reason}


@dataclass(frozen=True)
class Job:
    """A job record as stored; `request` is the send request, its template parameters included until redacted."""

    id: str
    type: str
    channel: str
    status: str
    request: dict[str, Any]
    msisdn: str | None
    contact_id: str | None
    not_before: datetime | None
    expires_at: datetime | None
    idempotency_key: str | None
    metadata: dict[str, Any]
    callback_url: str | None
    attempts: int
    message_id: str | None
    owner: str | None
    handed_to_sinch: bool  # the request of the current attempt left for Sinch: never send it blindly again
    delivery: dict[str, str]
    created_at: datetime
    updated_at: datetime
    terminal_at: datetime | None
    parameters_redacted: bool
    requeues: int = 0  # times the reconciler put it back to `queued` after its worker vanished before sending
    throttled: int = 0  # 429 answers from Sinch (not counted toward the attempts limit)
    throttled_since: datetime | None = None  # the first 429
    events: tuple[JobEvent, ...] = field(default=())

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def send_request(self) -> SendRequest:
        return SendRequest.model_validate(self.request)

    def as_dict(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "id": self.id,
            "type": self.type,
            "channel": self.channel,
            "status": self.status,
            "request": self.request,
            "not_before": iso(self.not_before),
            "expires_at": iso(self.expires_at),
            "idempotency_key": self.idempotency_key,
            "metadata": self.metadata,
            "attempts": self.attempts,
            "message_id": self.message_id,
            "delivery": self.delivery,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "terminal_at": iso(self.terminal_at),
            "parameters_redacted": self.parameters_redacted,
            "events": [event.as_dict() for event in self.events],
        }


@dataclass(frozen=True)
class NewJob:
    """What `JobStore.create` writes: the checked request and the decisions the rules made about it."""

    id: str
    request: SendRequest
    type: str
    channel: str
    msisdn: str | None
    contact_id: str | None
    not_before: datetime | None


@dataclass(frozen=True)
class Transition:
    ok: bool
    previous: str  # the status before the change, or the status that refused it ("" = no such job)


class JobStore:
    """Job records in Redis. Every method is one round trip (or one pipeline); scripts are loaded once."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
        stream_length: int = DEFAULT_STREAM_LENGTH,
    ) -> None:
        self.redis = client
        self.retention_seconds = retention_seconds  # after a terminal state or `sent`; the idempotency key with it
        self.stream_length = stream_length
        self._create = client.register_script(_script("create_job.lua"))
        self._transition = client.register_script(_script("transition.lua"))
        self._release = client.register_script(_script("release_due.lua"))
        self._receipt = client.register_script(_script("receipt.lua"))

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Settings) -> JobStore:
        """The store with the configured retention and events stream length."""
        return cls(
            client,
            retention_seconds=int(settings.retention_days * 86400),
            stream_length=settings.events_stream_length,
        )

    # -- writing --------------------------------------------------------------------------------

    def create(self, job: NewJob, now: datetime) -> tuple[str, bool]:
        """Write a new job (queued, or scheduled until `not_before`); returns (job id, created).

        When the idempotency key already names a job, nothing is written and that job's id is returned.
        """
        [(job_id, created)] = self.create_many([job], now)
        return job_id, created

    def create_many(self, jobs: Sequence[NewJob], now: datetime) -> list[tuple[str, bool]]:
        """`create` for many jobs in one pipeline (campaigns)."""
        pipe = self.redis.pipeline(transaction=False)
        now_ms = to_ms(now)
        for job in jobs:
            keys_, args = self._create_arguments(job, now_ms)
            self._create(keys=keys_, args=args, client=pipe)
        results = pipe.execute()
        return [(str(job_id), bool(created)) for created, job_id in results]

    def _create_arguments(self, job: NewJob, now_ms: int) -> tuple[list[str], list[Any]]:
        request = job.request.model_dump(mode="json", exclude_none=True)
        parameters = None
        if job.request.template is not None:
            parameters = request["template"].pop("parameters", {})
        due = to_ms(job.not_before) if job.not_before is not None and to_ms(job.not_before) > now_ms else None
        status = "scheduled" if due is not None else "queued"
        record: dict[str, Any] = {
            "type": job.type,
            "channel": job.channel,
            "request": json.dumps(request, ensure_ascii=False, separators=(",", ":")),
            "msisdn": job.msisdn or "",
            "contact_id": job.contact_id or "",
            "not_before": due or "",
            "expires_at": to_ms(job.request.expires_at) if job.request.expires_at else "",
            "idempotency_key": job.request.idempotency_key or "",
            "metadata": json.dumps(job.request.metadata, ensure_ascii=False, separators=(",", ":")),
            "callback_url": str(job.request.callback_url) if job.request.callback_url else "",
            "attempts": 0,
        }
        if parameters is not None:
            record["parameters"] = json.dumps(parameters, ensure_ascii=False, separators=(",", ":"))
        idempotency_key = job.request.idempotency_key
        keys_ = [
            keys.idempotency(idempotency_key) if idempotency_key else keys.idempotency("-none-"),
            keys.job(job.id),
            keys.events(job.id),
            keys.status_index(status),
            keys.STATUS_COUNTS,
            keys.JOB_EVENTS_STREAM,
            keys.CALLBACK_OUTBOX,
        ]
        args: list[Any] = [
            job.id,
            status,
            now_ms,
            due if due is not None else now_ms,
            "1" if idempotency_key else "0",
            self.stream_length,
        ]
        for name, value in record.items():
            args.extend((name, value))
        return keys_, args

    def transition(
        self,
        job_id: str,
        expected: Iterable[str],
        new_status: str,
        *,
        now: datetime,
        reason: str,
        owner: str = "",
        due: datetime | None = None,
        fields: Mapping[str, str | int] | None = None,
        delete: Sequence[str] = (),
    ) -> Transition:
        """Compare-and-set the status; `owner` (when given) must be the token that claimed the job.

        `new_status=""` keeps the status and only records the fields and an event (an annotation).
        """
        if new_status and new_status not in STATUSES:
            raise ValueError(f"unknown status {new_status!r}")
        now_ms = to_ms(now)
        score = to_ms(due) if due is not None else now_ms
        keys_ = [keys.job(job_id), keys.events(job_id), keys.STATUS_COUNTS]
        keys_ += [keys.status_index(status) for status in keys.INDEXED_STATUSES]
        keys_ += [keys.JOB_EVENTS_STREAM, keys.CALLBACK_OUTBOX]
        retention = self.retention_seconds if new_status in TERMINAL else 0
        args: list[Any] = [job_id, ",".join(expected), new_status, now_ms, score, owner, reason, retention]
        args += [self.stream_length, len(delete)]
        args.extend(delete)
        for name, value in (fields or {}).items():
            args.extend((name, value))
        ok, previous = self._transition(keys=keys_, args=args)
        return Transition(bool(ok), str(previous))

    def cancel(self, job_id: str, now: datetime, reason: str = "cancelled by producer") -> Transition:
        """Cancel a job that has not been claimed for sending yet."""
        return self.transition(job_id, CANCELLABLE, "cancelled", now=now, reason=reason)

    def release_due(self, now: datetime, *, horizon_ms: int = 0, limit: int = 500) -> list[tuple[str, datetime]]:
        """Claim scheduled jobs due by `now + horizon` (at most `limit`), mark them queued; returns (id, due)."""
        now_ms = to_ms(now)
        flat = self._release(
            keys=[
                keys.status_index("scheduled"),
                keys.status_index("queued"),
                keys.STATUS_COUNTS,
                keys.JOB_EVENTS_STREAM,
                keys.CALLBACK_OUTBOX,
            ],
            args=[now_ms, now_ms + horizon_ms, limit, self.stream_length],
        )
        released = []
        for index in range(0, len(flat), 2):
            due = from_ms(int(float(flat[index + 1])))
            assert due is not None
            released.append((str(flat[index]), due))
        return released

    def mark_sent(self, job_id: str, *, owner: str, message_id: str, attempts: int, now: datetime) -> Transition:
        """Record Sinch's acceptance (only the claiming owner may), then apply receipts that came early.

        The template parameters are deleted and the record starts its retention period here: a `sent` job
        whose receipt never comes ages out instead of keeping its personal data forever.
        """
        outcome, status = self._receipt(
            keys=self._receipt_keys(job_id),
            args=[*self._receipt_args(job_id, "sent", now), owner, message_id, attempts],
        )
        return Transition(outcome == "sent", str(status))

    def mark_unknown(
        self, job_id: str, *, owner: str, now: datetime, reason: str, fields: Mapping[str, str | int] | None = None
    ) -> Transition:
        """The owner's send has an ambiguous outcome: `unknown`, then apply receipts that came early.

        Accepted from `sending` and from `unknown` (the reconciler may have got there first); `previous` is
        the status after, which a receipt that was waiting may already have made `delivered` or `failed`.
        """
        args = [*self._receipt_args(job_id, "unknown", now), owner, reason]
        for name, value in (fields or {}).items():
            args.extend((name, value))
        outcome, status = self._receipt(keys=self._receipt_keys(job_id), args=args)
        return Transition(outcome == "unknown", str(status))

    def settle_stale_sending(self, job_id: str, *, claimed_before: datetime, now: datetime, max_requeues: int) -> str:
        """The reconciler's move of a `sending` job whose claim is older than `claimed_before`, decided atomically.

        Returns `requeued` (the request never left: `queued` again, to be published), `unknown` (it left: never
        resent; receipts that waited are applied), `failed` (requeued `max_requeues` times already:
        requeue_limit) or `skipped` (the job moved on or was claimed again since it was found).
        """
        outcome, _ = self._receipt(
            keys=self._receipt_keys(job_id),
            args=[*self._receipt_args(job_id, "stale", now), to_ms(claimed_before), max_requeues],
        )
        return str(outcome)

    def rescore_queued(self, job_ids: Sequence[str], now: datetime) -> list[str]:
        """Mark `queued` jobs as looked at now (their index score), so the reconciler republishes each once per
        stale period; returns those still queued (the others left the index meanwhile)."""
        if not job_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.zadd(keys.status_index("queued"), {job_id: to_ms(now)}, xx=True, gt=True, ch=True)
        return [job_id for job_id, changed in zip(job_ids, pipe.execute(), strict=True) if changed]

    def apply_receipt(self, job_id: str, receipt: Mapping[str, str], now: datetime) -> tuple[str, str]:
        """Apply one delivery receipt; returns (outcome, status after): applied, pending, duplicate, late, missing."""
        document = json.dumps(dict(receipt), ensure_ascii=False, separators=(",", ":"))
        outcome, status = self._receipt(
            keys=self._receipt_keys(job_id), args=[*self._receipt_args(job_id, "receipt", now), document]
        )
        return str(outcome), str(status)

    def _receipt_keys(self, job_id: str) -> list[str]:
        return [
            keys.job(job_id), keys.events(job_id), keys.STATUS_COUNTS, keys.status_index("sending"),
            keys.status_index("unknown"), keys.pending_receipts(job_id), keys.JOB_EVENTS_STREAM,
            keys.CALLBACK_OUTBOX, keys.COUNTERS, keys.status_index("queued"),
        ]  # fmt: skip

    def _receipt_args(self, job_id: str, mode: str, now: datetime) -> list[Any]:
        return [job_id, mode, to_ms(now), self.retention_seconds, self.stream_length]

    def link_message(self, message_id: str, job_id: str) -> None:
        """Index a Sinch message id so its receipt finds the job."""
        self.redis.set(keys.message(message_id), job_id, ex=self.retention_seconds)

    # -- reading --------------------------------------------------------------------------------

    def get(self, job_id: str, *, with_events: bool = True) -> Job | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.job(job_id))
        if with_events:
            pipe.lrange(keys.events(job_id), 0, -1)
        results = pipe.execute()
        record: dict[str, str] = results[0]
        if not record:
            return None
        events = tuple(_event(raw) for raw in results[1]) if with_events else ()
        return _job(job_id, record, events)

    def job_for_message(self, message_id: str) -> str | None:
        job_id = self.redis.get(keys.message(message_id))
        return str(job_id) if job_id is not None else None

    def job_for_idempotency_key(self, key: str) -> str | None:
        """The job a key names; None when it names none or its record is gone (the key is free then)."""
        job_id = self.redis.get(keys.idempotency(key))
        if job_id is None or not self.redis.exists(keys.job(str(job_id))):
            return None
        return str(job_id)

    def ids_in(self, status: str, *, before: datetime, limit: int = 500) -> list[str]:
        """Jobs of an indexed status whose index score (entry or due time) is before `before`."""
        if status not in keys.INDEXED_STATUSES:
            raise ValueError(f"status {status!r} has no index")
        ids = self.redis.zrangebyscore(keys.status_index(status), "-inf", to_ms(before), start=0, num=limit)
        return [str(job_id) for job_id in ids]

    def count_in(self, status: str) -> int:
        return int(self.redis.zcard(keys.status_index(status)))

    def next_due(self) -> datetime | None:
        """When the earliest scheduled job is due."""
        first = self.redis.zrange(keys.status_index("scheduled"), 0, 0, withscores=True)
        return from_ms(int(first[0][1])) if first else None

    def counters(self) -> dict[str, int]:
        return {str(name): int(value) for name, value in self.redis.hgetall(keys.COUNTERS).items()}

    def transition_counts(self) -> dict[str, int]:
        return {str(status): int(count) for status, count in self.redis.hgetall(keys.STATUS_COUNTS).items()}


def new_owner_token() -> str:
    return secrets.token_hex(8)


def _event(raw: str) -> JobEvent:
    data = json.loads(raw)
    at = from_ms(data["at"])
    assert at is not None
    previous = data.get("from")
    return JobEvent(at, previous if isinstance(previous, str) else None, data["to"], data.get("reason", ""))


def _job(job_id: str, record: Mapping[str, str], events: tuple[JobEvent, ...]) -> Job:
    request = json.loads(record.get("request", "{}"))
    parameters = record.get("parameters")
    if "template" in request:
        request["template"]["parameters"] = json.loads(parameters) if parameters is not None else {}
    created_at = from_ms(record.get("created_at"))
    updated_at = from_ms(record.get("updated_at"))
    assert created_at is not None and updated_at is not None
    delivery = {
        name: record[f"delivery_{name}"]
        for name in ("status", "code", "sub_code", "description")
        if record.get(f"delivery_{name}")
    }
    for moment in ("delivered_at", "read_at"):
        if record.get(moment):
            delivery[moment] = from_ms(record[moment]).isoformat()  # type: ignore[union-attr]
    if record.get("choice_response"):
        delivery["choice_response"] = record["choice_response"]
    return Job(
        id=job_id,
        type=record.get("type", ""),
        channel=record.get("channel", ""),
        status=record.get("status", ""),
        request=request,
        msisdn=record.get("msisdn") or None,
        contact_id=record.get("contact_id") or None,
        not_before=from_ms(record.get("not_before")),
        expires_at=from_ms(record.get("expires_at")),
        idempotency_key=record.get("idempotency_key") or None,
        metadata=json.loads(record.get("metadata") or "{}"),
        callback_url=record.get("callback_url") or None,
        attempts=int(record.get("attempts") or 0),
        message_id=record.get("message_id") or None,
        owner=record.get("owner") or None,
        handed_to_sinch=bool(record.get("http_started_at")),
        delivery=delivery,
        created_at=created_at,
        updated_at=updated_at,
        terminal_at=from_ms(record.get("terminal_at")),
        parameters_redacted="template" in request and parameters is None,
        requeues=int(record.get("requeues") or 0),
        throttled=int(record.get("throttled") or 0),
        throttled_since=from_ms(record.get("throttled_since")),
        events=events,
    )
