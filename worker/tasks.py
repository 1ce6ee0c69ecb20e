"""The Celery tasks; their names read as the flow of a job: dispatch_job, release_due_jobs, reconcile_jobs."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from functools import cached_property

import httpx
import redis
from celery.signals import worker_process_shutdown

from worker.celery import DISPATCH_QUEUE, app
from worker.dispatch import Dispatcher, DispatchPolicy
from worker.jobs import JobStore
from worker.media import MediaProber
from worker.ratelimit import RateLimiter, Scope
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
        return redis.Redis.from_url(
            self.settings.redis_url, decode_responses=True, socket_timeout=10, socket_connect_timeout=5,
            health_check_interval=30, retry_on_timeout=True,
        )  # fmt: skip

    @cached_property
    def store(self) -> JobStore:
        return JobStore(self.redis, retention_seconds=int(self.settings.retention_days * 86400))

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
            RateLimiter(self.redis, scopes),
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
            ),
            templates=templates,
            media=media.probe if media else None,
        )

    def queue_depth(self) -> int:
        return int(self.redis.llen(DISPATCH_QUEUE))

    def close(self) -> None:
        if "dispatcher" in self.__dict__:
            self.dispatcher.sinch.close()
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


def publish_dispatch(job_id: str, eta: datetime | None = None) -> None:
    dispatch_job.apply_async((job_id,), eta=eta, queue=DISPATCH_QUEUE)


@app.task(name="kakao_dispatch.dispatch_job", acks_late=True)
def dispatch_job(job_id: str) -> None:
    outcome = runtime().dispatcher.dispatch(job_id)
    log.info("dispatch %s: %s", job_id, outcome, extra={"job_id": job_id})


@app.task(name="kakao_dispatch.release_due_jobs", acks_late=False)
def release_due_jobs() -> None:
    current = runtime()
    count = release(
        current.store,
        publish_dispatch,
        now=datetime.now(UTC),
        queue_depth=current.queue_depth,
        max_queue_depth=current.settings.release_queue_depth,
    )
    if count:
        log.info("released %d due jobs", count)


@app.task(name="kakao_dispatch.reconcile_jobs", acks_late=False)
def reconcile_jobs() -> None:
    current = runtime()
    report = reconcile(
        current.store,
        publish_dispatch,
        now=datetime.now(UTC),
        stale_seconds=current.settings.stale_seconds,
        unknown_timeout=current.settings.unknown_timeout,
        queue_depth=current.queue_depth,
    )
    for name in ("republished", "requeued", "unknown", "timed_out"):
        ids = getattr(report, name)
        if ids:
            log.warning("reconciler %s %d jobs: %s", name, len(ids), ", ".join(ids[:20]))
