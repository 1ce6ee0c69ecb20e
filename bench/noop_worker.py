"""`celery -A bench.noop_worker worker`: the worker's Celery settings with a dispatch task that does nothing.

The ceiling of this stack (Celery, kombu, Redis, prefork): it consumes the same messages from the same
queue as `celery -A worker worker` (same task name, acks_late, prefetch, visibility timeout), and returns.
It does not import worker.tasks, so the real task is not registered here.
"""

from __future__ import annotations

from celery import Celery

from worker.celery import DISPATCH_TASK, celery_config
from worker.settings import get_settings

app = Celery("kakao_dispatch_noop")
app.conf.update(celery_config(get_settings()))


@app.task(name=DISPATCH_TASK, acks_late=True, shared=False)  # type: ignore[untyped-decorator]
def dispatch_job(job_id: str) -> None:
    """Take the job id and return."""
