"""The Python producer: validate a send request, save the job, then publish its id (DESIGN §3.1, §6)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from celery import Celery

from worker.contacts import ContactBook
from worker.jobs import Job, JobStore, NewJob, Transition, new_job_id
from worker.sending_window import SendingWindow
from worker.settings import Settings
from worker.templates import TemplateRegistry
from worker.verdict import CheckContext, Verdict, check_request
from worker.violations import Violation

#: Celery messages pushed per Redis round trip when publishing.
PUBLISH_BATCH = 1000


class RequestRejected(ValueError):
    """The request breaks KakaoTalk rules; nothing was saved or sent. `violations` names each one."""

    def __init__(self, violations: Sequence[Violation], index: int | None = None) -> None:
        self.violations = tuple(violations)
        self.index = index
        where = f"request {index}: " if index is not None else ""
        super().__init__(where + "; ".join(violation.message for violation in self.violations))


@dataclass(frozen=True)
class Enqueued:
    """One accepted request of `send_many`: its job id, first status and whether it is new."""

    id: str
    status: str
    not_before: datetime | None
    created: bool


class Producer:
    """Enqueue KakaoTalk send jobs. Safe to share between threads; one per process is enough."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        settings: Settings,
        templates: TemplateRegistry | None = None,
        window: SendingWindow | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.store = JobStore.from_settings(client, settings)
        self.contacts = ContactBook.from_settings(client, settings)
        self.templates = templates
        self.window = window or settings.friendtalk_window
        self.clock = clock
        self._celery: Celery | None = None
        self._broker: redis.Redis | None = None
        self._publisher_lock = threading.Lock()  # the gateway publishes from its threadpool

    @classmethod
    def from_env(cls) -> Producer:
        """Configured from the environment variables of DESIGN §6."""
        settings = Settings()
        templates = TemplateRegistry.from_file(settings.templates_path) if settings.templates_path else None
        client = redis.Redis.from_url(settings.redis_url, decode_responses=True, socket_timeout=10)
        return cls(client, settings=settings, templates=templates)

    def check(self, request: Any, *, now: datetime | None = None, job_id: str | None = None) -> Verdict:
        """The verdict without enqueuing (media are left to the worker to probe)."""
        return check_request(
            request,
            CheckContext(
                now=now or self.clock(),
                window=self.window,
                templates=self.templates,
                sessions=self.contacts.open_session_for,
                app_id=self.settings.sinch_app_id,
                job_id=job_id or new_job_id(),
            ),
        )

    def send(self, request: Any) -> Job:
        """Enqueue one request; raises RequestRejected. The same idempotency key returns the same job."""
        [result] = self.send_many([request])
        if isinstance(result, RequestRejected):
            raise RequestRejected(result.violations)
        job = self.store.get(result.id)
        assert job is not None, "a job just written is readable"
        return job

    def send_many(self, requests: Iterable[Any]) -> list[Enqueued | RequestRejected]:
        """Enqueue many requests: records in one pipeline, then their ids published. One result per request."""
        now = self.clock()
        results: list[Enqueued | RequestRejected | None] = []
        new_jobs: list[tuple[int, NewJob]] = []
        for index, request in enumerate(requests):
            job_id = new_job_id()  # the id the verdict's Sinch body carries is the one the job is saved under
            verdict = self.check(request, now=now, job_id=job_id)
            if not verdict.accepted or verdict.request is None or verdict.type is None or verdict.channel is None:
                results.append(RequestRejected(verdict.violations, index))
                continue
            contact_id = verdict.request.to.contact_id or (verdict.decision.contact_id if verdict.decision else None)
            new_jobs.append(
                (index, NewJob(job_id, verdict.request, verdict.type, verdict.channel, verdict.msisdn,
                               contact_id, verdict.not_before))
            )  # fmt: skip
            results.append(None)
        created = self.store.create_many([job for _, job in new_jobs], now) if new_jobs else []
        to_publish = []
        for (index, job), (job_id, is_new) in zip(new_jobs, created, strict=True):
            deferred = job.not_before is not None and job.not_before > now
            if is_new and not deferred:
                to_publish.append(job_id)
            status = ("scheduled" if deferred else "queued") if is_new else self._status(job_id)
            results[index] = Enqueued(job_id, status, job.not_before if deferred else None, is_new)
        self._publish(to_publish)
        return [result for result in results if result is not None]

    def get(self, job_id: str) -> Job | None:
        return self.store.get(job_id)

    def cancel(self, job_id: str) -> Transition:
        """Cancel a queued or scheduled job; `ok` is False (with the job's status) once it is being sent."""
        return self.store.cancel(job_id, self.clock())

    def close(self) -> None:
        self.store.redis.close()
        if self._celery is not None:
            self._celery.close()
        if self._broker is not None and self._broker is not self.store.redis:
            self._broker.close()

    def _status(self, job_id: str) -> str:
        job = self.store.get(job_id, with_events=False)
        return job.status if job else "unknown"

    def _publish(self, job_ids: Sequence[str]) -> None:
        """Only the job id travels in the Celery message; the record was saved first."""
        if not job_ids:
            return
        from worker.publishing import publish_dispatch_many

        celery, broker = self._publisher()
        publish_dispatch_many(celery, broker, job_ids, batch=PUBLISH_BATCH)

    def _publisher(self) -> tuple[Celery, redis.Redis]:
        """The Celery app and broker connection, created once however many threads publish at the same time."""
        with self._publisher_lock:
            if self._celery is None:
                from worker.celery import create_app  # the Celery app only when publishing

                self._celery = create_app(self.settings)
            if self._broker is None:
                same = self.settings.broker_url == self.settings.redis_url
                self._broker = self.store.redis if same else redis.Redis.from_url(self.settings.broker_url)
            return self._celery, self._broker
