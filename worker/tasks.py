"""The Celery tasks, named as the flow of a job reads: dispatch_job, release_due_jobs, reconcile_jobs,
process_callback (receipts and inbound messages), forward_job_events and deliver_job_event, copy_inbound_media.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import httpx
import redis
from celery.signals import worker_process_shutdown
from redis import Redis

from worker import keys, metrics
from worker.callbacks import handle_callback
from worker.celery import CALLBACKS_QUEUE, app
from worker.contacts import ContactBook
from worker.dispatch import Dispatcher, DispatchPolicy
from worker.inbound import copy_inbound_media as copy_media
from worker.job_events import CallbackRefused, event_document, post_job_event
from worker.job_events import forward_job_events as forward_events
from worker.jobs import JobStore
from worker.media import MediaProber
from worker.publishing import publish_dispatch_at
from worker.ratelimit import RateLimiter, Scope
from worker.receipts import expire_orphans
from worker.scheduling import Publish
from worker.scheduling import reconcile_jobs as reconcile
from worker.scheduling import release_due_jobs as release
from worker.settings import Settings, get_settings
from worker.sinch import SinchClient
from worker.templates import TemplateRegistry

log = logging.getLogger(__name__)


class Runtime:
    """What one worker process shares between tasks: connections, the Sinch client, the registry."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def redis(self) -> redis.Redis:
        client = redis.Redis.from_url(
            self.settings.redis_url, decode_responses=True, socket_timeout=10, socket_connect_timeout=5,
            health_check_interval=30, retry_on_timeout=True,
        )  # fmt: skip
        metrics.record_to(client)  # this process's observations go to the hashes /metrics reads
        return client

    @cached_property
    def broker(self) -> Redis:
        """The broker's Redis for bulk publishing: the job store's client unless KAKAO_DISPATCH_BROKER_URL differs."""
        if self.settings.broker_url == self.settings.redis_url:
            return self.redis
        return redis.Redis.from_url(self.settings.broker_url, socket_timeout=10, socket_connect_timeout=5)

    @cached_property
    def store(self) -> JobStore:
        return JobStore.from_settings(self.redis, self.settings)

    @cached_property
    def contacts(self) -> ContactBook:
        return ContactBook.from_settings(self.redis, self.settings)

    @cached_property
    def http(self) -> httpx.Client:
        """For producers' callback URLs and inbound media copies (not Sinch: that has its own client)."""
        return httpx.Client(timeout=httpx.Timeout(10.0, connect=3.0), follow_redirects=False)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        settings = self.settings
        scopes = [
            Scope(f"app:{settings.sinch_app_id}", settings.rate_limit),
            Scope(f"project:{settings.sinch_project_id}", settings.project_rate_limit),
        ]
        templates = TemplateRegistry.from_file(settings.templates_path) if settings.templates_path else None
        media = MediaProber() if settings.media_probe else None
        return Dispatcher(
            self.store,
            RateLimiter(self.redis, scopes, max_pause_seconds=settings.max_retry_after),
            SinchClient.from_settings(
                settings,
                auth=settings.sinch_auth_mode,
                timeout=httpx.Timeout(connect=3.0, read=settings.sinch_timeout, write=5.0, pool=2.0),
            ),
            DispatchPolicy(
                app_id=settings.sinch_app_id,
                window=settings.friendtalk_window,
                max_attempts=settings.max_attempts,
                retry_base_seconds=settings.retry_base_seconds,
                retry_max_seconds=settings.retry_max_seconds,
                max_retry_after=settings.max_retry_after,
                throttle_timeout=settings.throttle_timeout,
            ),
            templates=templates,
            media=media.probe if media else None,
            sessions=self.contacts.open_session_for,
        )

    def close(self) -> None:
        if "dispatcher" in self.__dict__:
            self.dispatcher.sinch.close()
        if "http" in self.__dict__:
            self.http.close()
        if "broker" in self.__dict__ and self.broker is not self.__dict__.get("redis"):
            self.broker.close()
        if "redis" in self.__dict__:
            self.redis.close()


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(get_settings())
        return _runtime


@worker_process_shutdown.connect
def _close_runtime(**_: object) -> None:
    if _runtime is not None:
        _runtime.close()


@contextmanager
def _publishing_in_bulk(current: Runtime) -> Iterator[Publish]:
    """A `Publish` that collects job ids; they go out together when the block ends, also when it raised.

    One pipelined LPUSH per 1,000 (worker.publishing) instead of a send_task per job, which made the release at
    a window's opening ~1,400 jobs/s. A crash before the publish leaves the jobs `queued`, which the reconciler
    republishes.
    """
    collected: list[tuple[str, datetime | None]] = []
    try:
        yield lambda job_id, eta: collected.append((job_id, eta))
    finally:
        publish_dispatch_at(app, current.broker, collected)


@app.task(name="kakao_dispatch.dispatch_job", acks_late=True)
def dispatch_job(job_id: str) -> None:
    outcome = runtime().dispatcher.dispatch(job_id)
    log.info("dispatch %s: %s", job_id, outcome, extra={"job_id": job_id})


@app.task(name="kakao_dispatch.release_due_jobs", acks_late=False)
def release_due_jobs() -> None:
    current = runtime()
    with _publishing_in_bulk(current) as publish:  # when the pass ends (within a second)
        count = release(
            current.store, publish, now=datetime.now(UTC), max_queue_depth=current.settings.release_queue_depth
        )
    if count:
        log.info("released %d due jobs", count)


@app.task(name="kakao_dispatch.reconcile_jobs", acks_late=False)
def reconcile_jobs() -> None:
    current = runtime()
    with _publishing_in_bulk(current) as publish:
        report = reconcile(
            current.store,
            publish,
            now=datetime.now(UTC),
            stale_seconds=current.settings.stale_seconds,
            unknown_timeout=current.settings.unknown_timeout,
            max_requeues=current.settings.max_requeues,
        )
    expire_orphans(current.store, datetime.now(UTC))
    for name in ("republished", "requeued", "unknown", "requeue_limit", "timed_out"):
        ids = getattr(report, name)
        if ids:
            log.warning("reconciler %s %d jobs: %s", name, len(ids), ", ".join(ids[:20]))


@app.task(name="kakao_dispatch.process_callback", acks_late=True)
def process_callback(payload: dict[str, Any], received_at_ms: int) -> None:
    """A Sinch callback the gateway accepted: a delivery receipt or a user's message."""
    current = runtime()
    outcome, message = handle_callback(current.store, current.contacts, payload, datetime.now(UTC))
    log.info("callback (received %d): %s", received_at_ms, outcome)
    if message is not None and message.media_url and current.settings.inbound_media_dir is not None:
        copy_inbound_media.apply_async((message.contact_id, message.id, message.media_url), queue=CALLBACKS_QUEUE)


@app.task(name="kakao_dispatch.copy_inbound_media", acks_late=True, autoretry_for=(httpx.HTTPError, OSError),
          retry_backoff=5, retry_backoff_max=300, max_retries=8)  # fmt: skip
def copy_inbound_media(contact_id: str, message_id: str, url: str) -> None:
    """Keep a user's media before Sinch deletes it (7 days after it arrived)."""
    current = runtime()
    directory = current.settings.inbound_media_dir
    if directory is not None:
        path = copy_media(current.http, current.store, directory, contact_id, message_id, url)
        log.info("copied inbound media %s to %s", message_id, path)


@app.task(name="kakao_dispatch.forward_job_events", acks_late=False)
def forward_job_events() -> None:
    """Hand new status changes of jobs with a callback_url to delivery tasks (beat, every second)."""
    current = runtime()

    def hand_on(job_id: str, event: dict[str, str]) -> None:
        deliver_job_event.apply_async((job_id, event), queue=CALLBACKS_QUEUE)

    forward_events(current.redis, hand_on, consumer=f"forwarder-{os.getpid()}")


@app.task(name="kakao_dispatch.deliver_job_event", bind=True, acks_late=True, max_retries=6)
def deliver_job_event(self: Any, job_id: str, event: dict[str, str]) -> None:
    """POST one job event to the job's callback_url; retried with backoff (1, 2, 4 ... 32 s), then given up."""
    current = runtime()
    found = event_document(current.store, job_id, event)
    if found is None:
        return
    url, body = found
    secret = current.settings.callback_secret.get_secret_value() if current.settings.callback_secret else None
    try:
        post_job_event(current.http, url, body, secret)
    except CallbackRefused as error:
        if self.request.retries >= self.max_retries:
            current.redis.hincrby(keys.COUNTERS, "job_events:undelivered", 1)
            log.warning("gave up delivering event of %s: %s", job_id, error, extra={"job_id": job_id})
            return
        raise self.retry(exc=error, countdown=2**self.request.retries) from error
    current.redis.hincrby(keys.COUNTERS, "job_events:delivered", 1)
