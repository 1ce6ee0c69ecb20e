"""The Celery app (`celery -A worker worker|beat|flower`): queues, reliability settings and the beat schedule.

Why each setting (DESIGN §3, reference/celery-redis.md): late acks plus reject-on-worker-lost give
at-least-once delivery of the job id; the job's own status CAS turns that into at-most-once send.
Prefetch 1 keeps one reserved message per process. One visibility timeout, set everywhere Celery
reads it, bounds how long a killed worker's message waits before redelivery; no task ever carries a
long ETA (deferred jobs wait in Redis, see worker.scheduling), so redelivery never duplicates an ETA.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

import worker.logs  # noqa: F401 (its setup_logging receiver gives worker and beat their JSON log lines)
from worker.settings import Settings, get_settings

DISPATCH_QUEUE = "dispatch"
CALLBACKS_QUEUE = "callbacks"
DISPATCH_TASK = "kakao_dispatch.dispatch_job"


def create_app(settings: Settings | None = None) -> Celery:
    """The app for these settings; without them, the environment's, read when the app is first used.

    Reading lazily lets the gateway and the command line import this module without a valid
    environment: they report a bad setting as one line instead of failing at import.
    """
    celery_app = Celery("kakao_dispatch", include=["worker.tasks"])
    celery_app.steps["consumer"].add("worker.heartbeat:Heartbeat")  # liveness file (KAKAO_DISPATCH_HEARTBEAT_FILE)
    if settings is None:
        celery_app.add_defaults(lambda: celery_config(get_settings()))
    else:
        celery_app.conf.update(celery_config(settings))
    return celery_app


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for these kakao-dispatch settings (DESIGN §3)."""
    transport_options = {
        "visibility_timeout": settings.visibility_timeout,
        # kombu >= 5.7: sweep unacked messages every few seconds instead of ~100 s.
        "unacked_restore_interval": min(5, settings.visibility_timeout),
        "unacked_restore_throttle": 1,
        "socket_timeout": 30,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 25,
        "retry_on_timeout": True,
    }
    return dict(
        broker_url=settings.broker_url,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_transport_options=transport_options,
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout},
        visibility_timeout=settings.visibility_timeout,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        worker_send_task_events=True,
        task_send_sent_event=True,
        # A send is bounded by its HTTP timeouts; this catches a hung process. The reconciler judges a `sending`
        # job only after KAKAO_DISPATCH_STALE_SECONDS, which settings keep at least twice this limit.
        task_time_limit=settings.task_time_limit,
        task_queues=(Queue(DISPATCH_QUEUE), Queue(CALLBACKS_QUEUE)),
        task_default_queue=DISPATCH_QUEUE,
        task_routes={
            "kakao_dispatch.dispatch_job": {"queue": DISPATCH_QUEUE},
            "kakao_dispatch.release_due_jobs": {"queue": CALLBACKS_QUEUE},
            "kakao_dispatch.reconcile_jobs": {"queue": CALLBACKS_QUEUE},
            "kakao_dispatch.process_callback": {"queue": CALLBACKS_QUEUE},
            "kakao_dispatch.copy_inbound_media": {"queue": CALLBACKS_QUEUE},
            "kakao_dispatch.forward_job_events": {"queue": CALLBACKS_QUEUE},
            "kakao_dispatch.deliver_job_event": {"queue": CALLBACKS_QUEUE},
        },
        beat_schedule={
            "release-due-jobs": {"task": "kakao_dispatch.release_due_jobs", "schedule": 1.0, "options": {"expires": 5}},
            "forward-job-events": {
                "task": "kakao_dispatch.forward_job_events",
                "schedule": 1.0,
                "options": {"expires": 5},
            },
            "reconcile-jobs": {"task": "kakao_dispatch.reconcile_jobs", "schedule": 10.0, "options": {"expires": 30}},
        },
        timezone="UTC",
        enable_utc=True,
        worker_hijack_root_logger=False,
    )


app = create_app()
