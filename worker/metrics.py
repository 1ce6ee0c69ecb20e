"""Prometheus metrics: the workers count into Redis hashes, the gateway's `GET /metrics` reads them when scraped.

Workers run as many processes and pods, so a per-process prometheus_client registry would show one
process only, and not from where Prometheus looks. Instead each worker process adds what it
observes to a few Redis hashes (`keys.SINCH_METRICS`, `keys.WORKER_METRICS`; the job store's Lua
keeps `keys.JOB_METRICS` in the same script as every status change), and the gateway exposes them
through a custom collector that reads Redis at scrape time, in one pipelined round trip.

Writing costs at most one round trip per send: increments are buffered in the process and written
in one MULTI/EXEC when a `messages:send` answer is observed, or when a Celery task ends with
something still buffered. The hooks in the dispatch path are one-line calls into this module; they
do nothing until `record_to` binds a Redis client (the worker runtime does), so the command line
and unit tests record nothing.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, get_args

import redis
from celery.signals import task_postrun
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from worker import keys
from worker.channels import Kind
from worker.jobs import STATUSES, TERMINAL

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
#: Upper bounds (seconds) of the `messages:send` latency histogram's buckets.
SEND_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JOB_TYPES: tuple[str, ...] = get_args(Kind)
#: Statuses a job passes through; `kakao_dispatch_jobs` counts the jobs in each one now.
LIVE_STATUSES = tuple(status for status in STATUSES if status not in TERMINAL)
#: What the reconciler does to a stuck job (worker.scheduling.Reconciliation); always exposed, 0 until it happens.
REPAIR_ACTIONS = ("republished", "requeued", "unknown", "requeue_limit", "timed_out")
#: kombu's Redis transport keeps delivered, not yet acknowledged messages in this hash.
KOMBU_UNACKED = "unacked"
#: kd:counters fields by prefix: the metric family each becomes and the name of its label.
COUNTER_FAMILIES = {
    "receipts": ("kakao_dispatch_receipts", "outcome", "Delivery receipts by what they did to their job."),
    "callbacks": ("kakao_dispatch_callbacks", "kind", "Sinch callbacks accepted or ignored, by kind."),
    "webhook_rejected": ("kakao_dispatch_webhook_rejected", "reason", "Sinch callbacks refused, by reason."),
    "inbound": ("kakao_dispatch_inbound_messages", "kind", "Messages users wrote (and duplicates of them), by kind."),
    "job_events": ("kakao_dispatch_job_event_posts", "outcome", "Job events POSTed to callback URLs, by outcome."),
}


# --- the workers' side: recording ------------------------------------------------------------------


class Recorder:
    """Increments of Redis hash fields, buffered in the process and written in one MULTI/EXEC per flush."""

    def __init__(self) -> None:
        self._client: redis.Redis | None = None
        self._pending: dict[tuple[str, str], int | float] = {}
        self._lock = threading.Lock()

    @property
    def bound(self) -> bool:
        return self._client is not None

    def bind(self, client: redis.Redis | None) -> None:
        with self._lock:
            self._client = client
            self._pending = {}

    def add(self, key: str, field: str, amount: int | float = 1) -> None:
        if self._client is None:
            return
        with self._lock:
            self._pending[key, field] = self._pending.get((key, field), 0) + amount

    def flush(self) -> None:
        """Write what is buffered; on a Redis error it is dropped (metrics never hold up or fail a send)."""
        with self._lock:
            client, pending = self._client, self._pending
            if client is None or not pending:
                return
            self._pending = {}
        pipe = client.pipeline(transaction=True)
        for (key, field), amount in pending.items():
            if isinstance(amount, float):
                pipe.hincrbyfloat(key, field, amount)
            else:
                pipe.hincrby(key, field, amount)
        try:
            pipe.execute()
        except (redis.RedisError, OSError) as error:
            log.warning("dropped %d metric increments: %s", len(pending), error)


recorder = Recorder()


def record_to(client: redis.Redis | None) -> None:
    """Record this process's observations into this Redis (None: record nothing)."""
    recorder.bind(client)


def _flush_after_task(**_: object) -> None:
    recorder.flush()


task_postrun.connect(_flush_after_task)


class SendObservation:
    """What `sinch_send` learns about one `messages:send`: the HTTP status, when a response came."""

    status_code: int | None = None


@contextmanager
def sinch_send() -> Iterator[SendObservation]:
    """Time one `messages:send`; its status comes from `observation.status_code` or the SinchError raised."""
    observation = SendObservation()
    started = time.perf_counter()
    try:
        yield observation
    except Exception as error:
        status_code = getattr(error, "status_code", None)
        if observation.status_code is None and isinstance(status_code, int):
            observation.status_code = status_code
        raise
    finally:
        observe_sinch_send(time.perf_counter() - started, observation.status_code)


def _le(bound: float) -> str:
    """A bucket's upper bound as Prometheus writes it: 0.005, 1.0, +Inf."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def observe_sinch_send(seconds: float, status_code: int | None) -> None:
    """One `messages:send` took `seconds` and was answered `status_code` (None: no response)."""
    if not recorder.bound:
        return
    bucket = next((bound for bound in SEND_LATENCY_BUCKETS if seconds <= bound), math.inf)
    recorder.add(keys.SINCH_METRICS, "bucket:" + _le(bucket))
    recorder.add(keys.SINCH_METRICS, "count")
    recorder.add(keys.SINCH_METRICS, "sum", float(seconds))
    recorder.add(keys.SINCH_METRICS, f"code:{status_code if status_code is not None else 'none'}")
    recorder.flush()


def rate_limit_waited(seconds: float) -> None:
    """A worker slept `seconds` in place for the cluster-wide rate limit."""
    recorder.add(keys.WORKER_METRICS, "rate_limit:waits")
    recorder.add(keys.WORKER_METRICS, "rate_limit:wait_seconds", float(seconds))


def rate_limit_parked() -> None:
    """The rate limit asked for a longer wait: the job went back to the deferral set."""
    recorder.add(keys.WORKER_METRICS, "rate_limit:parked")


def rate_limit_paused(seconds: float) -> None:
    """Sinch answered 429: every worker is held back for `seconds`."""
    recorder.add(keys.WORKER_METRICS, "rate_limit:pauses")
    recorder.add(keys.WORKER_METRICS, "rate_limit:pause_seconds", float(seconds))


def jobs_released(count: int) -> None:
    """The releaser moved `count` due jobs from the deferral set to the dispatch queue."""
    if count:
        recorder.add(keys.WORKER_METRICS, "released", count)


def jobs_repaired(**counts: Sequence[str]) -> None:
    """The reconciler's repairs by action (republished, requeued, unknown, requeue_limit, timed_out): their ids."""
    for action, ids in counts.items():
        if ids:
            recorder.add(keys.WORKER_METRICS, f"repaired:{action}", len(ids))


# --- the gateway's side: exposing ------------------------------------------------------------------


@dataclass(frozen=True)
class _Snapshot:
    jobs: Mapping[str, str]
    sinch: Mapping[str, str]
    worker: Mapping[str, str]
    counters: Mapping[str, str]
    queued: int
    deferred: int
    unknown: int
    first_due_ms: float | None
    orphans: int
    now_ms: float
    queues: Mapping[str, int] | None  # None when the broker is not a Redis the gateway can read
    unacked: int | None


class RedisMetricsCollector(Collector):
    """A prometheus_client collector over the Redis hashes and indexes of kakao-dispatch, read when scraped.

    `queues` are the broker lists to measure; `broker_url` is the broker's URL when it is not the job
    store's Redis (None: the same Redis). A broker that is not Redis is not measured.
    """

    def __init__(self, client: redis.Redis, *, queues: Sequence[str], broker_url: str | None = None) -> None:
        self.client = client
        self.queues = tuple(queues)
        self.broker_url = broker_url

    def collect(self) -> Iterator[Metric]:
        snapshot = self._read()
        yield from _job_families(snapshot)
        yield from _queue_families(snapshot)
        yield from _sinch_families(snapshot.sinch)
        yield from _worker_families(snapshot.worker)
        yield from _counter_families(snapshot.counters)

    def _read(self) -> _Snapshot:
        same_broker = self.broker_url is None
        pipe = self.client.pipeline(transaction=False)
        for key in (keys.JOB_METRICS, keys.SINCH_METRICS, keys.WORKER_METRICS, keys.COUNTERS):
            pipe.hgetall(key)
        for status in ("queued", "scheduled", "unknown"):
            pipe.zcard(keys.status_index(status))
        pipe.zrange(keys.status_index("scheduled"), 0, 0, withscores=True)
        pipe.hlen(keys.ORPHANS)
        pipe.time()
        if same_broker:
            _read_broker(pipe, self.queues)
        results = pipe.execute()
        jobs, sinch, worker, counters, queued, deferred, unknown, first, orphans, now = results[:10]
        broker = results[10:] if same_broker else self._read_other_broker()
        return _Snapshot(
            jobs=jobs, sinch=sinch, worker=worker, counters=counters,
            queued=int(queued), deferred=int(deferred), unknown=int(unknown),
            first_due_ms=float(first[0][1]) if first else None, orphans=int(orphans),
            now_ms=now[0] * 1000 + now[1] / 1000,
            queues=dict(zip(self.queues, map(int, broker[:-1]), strict=True)) if broker else None,
            unacked=int(broker[-1]) if broker else None,
        )  # fmt: skip

    def _read_other_broker(self) -> list[Any]:
        url = self.broker_url or ""
        if not url.startswith(("redis://", "rediss://", "unix://")):
            return []
        with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5) as broker:
            pipe = broker.pipeline(transaction=False)
            _read_broker(pipe, self.queues)
            return list(pipe.execute())


def _read_broker(pipe: Any, queues: Iterable[str]) -> None:
    for queue in queues:
        pipe.llen(queue)
    pipe.hlen(KOMBU_UNACKED)


def _job_families(snapshot: _Snapshot) -> Iterator[Metric]:
    into: dict[tuple[str, str], int] = {}
    out: dict[tuple[str, str], int] = {}
    for name, value in snapshot.jobs.items():
        direction, _, rest = name.partition(":")
        status, _, job_type = rest.partition(":")
        counts = into if direction == "into" else out if direction == "out" else None
        if counts is not None:
            counts[status, job_type] = int(value)
    types = sorted({*JOB_TYPES, *(job_type for _, job_type in (*into, *out))})
    current = GaugeMetricFamily(
        "kakao_dispatch_jobs",
        "Jobs in each non-terminal status now, by type (counted from the first status change recorded).",
        labels=["status", "type"],
    )
    for status in LIVE_STATUSES:
        for job_type in types:
            current.add_metric([status, job_type], into.get((status, job_type), 0) - out.get((status, job_type), 0))
    yield current
    changes = CounterMetricFamily(
        "kakao_dispatch_job_status_changes", "Status changes into each status, by job type.", labels=["status", "type"]
    )
    for status in STATUSES:
        for job_type in types:
            changes.add_metric([status, job_type], into.get((status, job_type), 0))
    yield changes
    created = CounterMetricFamily("kakao_dispatch_jobs_created", "Jobs created, by type.", labels=["type"])
    for job_type in types:
        entered = sum(count for (_, kind), count in into.items() if kind == job_type)
        left = sum(count for (_, kind), count in out.items() if kind == job_type)
        created.add_metric([job_type], entered - left)  # each job enters one status more than it leaves
    yield created


def _queue_families(snapshot: _Snapshot) -> Iterator[Metric]:
    if snapshot.queues is not None:
        queues = GaugeMetricFamily(
            "kakao_dispatch_queue_messages", "Messages waiting in a broker queue.", labels=["queue"]
        )
        for queue, depth in snapshot.queues.items():
            queues.add_metric([queue], depth)
        yield queues
        yield GaugeMetricFamily(
            "kakao_dispatch_queue_unacked_messages",
            "Broker messages delivered to workers and not acknowledged yet.",
            value=snapshot.unacked or 0,
        )
    yield GaugeMetricFamily("kakao_dispatch_queued_jobs", "Jobs in the queued index.", value=snapshot.queued)
    yield GaugeMetricFamily(
        "kakao_dispatch_deferred_jobs", "Jobs waiting in the deferral set (scheduled).", value=snapshot.deferred
    )
    overdue = 0.0 if snapshot.first_due_ms is None else max(0.0, snapshot.now_ms - snapshot.first_due_ms) / 1000
    yield GaugeMetricFamily(
        "kakao_dispatch_deferred_overdue_seconds",
        "How long the earliest deferred job has been due (0 when none is): the releaser's lag.",
        value=overdue,
    )
    yield GaugeMetricFamily(
        "kakao_dispatch_unknown_jobs",
        "Jobs whose send may have reached Sinch, awaiting a receipt.",
        value=snapshot.unknown,
    )
    yield GaugeMetricFamily(
        "kakao_dispatch_orphan_receipts",
        "Receipts that matched no job, kept in the orphan store.",
        value=snapshot.orphans,
    )


def _sinch_families(fields: Mapping[str, str]) -> Iterator[Metric]:
    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound in SEND_LATENCY_BUCKETS:
        label = _le(bound)
        cumulative += int(fields.get("bucket:" + label, 0))
        buckets.append((label, cumulative))
    buckets.append(("+Inf", int(fields.get("count", 0))))
    yield HistogramMetricFamily(
        "kakao_dispatch_sinch_send_duration_seconds",
        "Time of each Sinch messages:send call as a worker saw it, answered or not.",
        buckets=buckets,
        sum_value=float(fields.get("sum", 0)),
    )
    responses = CounterMetricFamily(
        "kakao_dispatch_sinch_responses",
        "Sinch messages:send answers by HTTP status code (code=none: no answer came).",
        labels=["code"],
    )
    for name, value in sorted(fields.items()):
        if name.startswith("code:"):
            responses.add_metric([name.removeprefix("code:")], int(value))
    yield responses


def _worker_families(fields: Mapping[str, str]) -> Iterator[Metric]:
    def number(name: str) -> float:
        return float(fields.get(name, 0))

    for name, field, doc in (
        ("kakao_dispatch_rate_limit_waits", "rate_limit:waits", "Waits in place for the cluster-wide rate limit."),
        ("kakao_dispatch_rate_limit_wait_seconds", "rate_limit:wait_seconds", "Seconds workers waited in place."),
        (
            "kakao_dispatch_rate_limit_parked",
            "rate_limit:parked",
            "Jobs deferred because the rate limit's wait was long.",
        ),
        ("kakao_dispatch_rate_limit_pauses", "rate_limit:pauses", "Pauses of every worker after a Sinch 429."),
        ("kakao_dispatch_rate_limit_pause_seconds", "rate_limit:pause_seconds", "Seconds of those pauses."),
        ("kakao_dispatch_jobs_released", "released", "Deferred jobs the releaser moved to the dispatch queue."),
    ):
        yield CounterMetricFamily(name, doc, value=number(field))
    repairs = CounterMetricFamily(
        "kakao_dispatch_reconciler_repairs", "Jobs the reconciler repaired, by action.", labels=["action"]
    )
    found = {name.removeprefix("repaired:") for name in fields if name.startswith("repaired:")}
    for action in sorted({*REPAIR_ACTIONS, *found}):
        repairs.add_metric([action], number(f"repaired:{action}"))
    yield repairs


def _counter_families(counters: Mapping[str, str]) -> Iterator[Metric]:
    families = {
        prefix: CounterMetricFamily(name, doc, labels=[label])
        for prefix, (name, label, doc) in COUNTER_FAMILIES.items()
    }
    other = CounterMetricFamily("kakao_dispatch_counts", "Other counts kept in kd:counters, by name.", labels=["name"])
    for name, value in sorted(counters.items()):
        prefix, _, label = name.partition(":")
        family = families.get(prefix) if label else None
        if family is not None:
            family.add_metric([label], int(value))
        else:
            other.add_metric([name], int(value))
    yield from families.values()
    yield other


class Scraper:
    """The `/metrics` body for one gateway: `scrape()` reads Redis (redis.RedisError when it cannot)."""

    def __init__(self, client: redis.Redis, *, queues: Sequence[str], broker_url: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RedisMetricsCollector(client, queues=queues, broker_url=broker_url))

    def scrape(self) -> bytes:
        return generate_latest(self.registry)
