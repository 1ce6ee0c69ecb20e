"""Benchmark of deferral: FriendTalk jobs parked outside the sending window, then released at its opening.

The stack: a private redis-server and one worker node (`celery -A worker worker -c C`, consuming the
dispatch and callbacks queues, idle). Each round (on a fresh redis-server and worker):

- N FriendTalk text jobs are enqueued with `Producer.send_many` while the FriendTalk window (set to
  open one hour from now) is closed: every job is `scheduled`, its id in the deferral sorted set;
- Redis bytes per job: INFO memory `used_memory` after minus before, over N, with a per-key breakdown
  (MEMORY USAGE of one job's record and events, the sorted set and the bounded events stream);
- worker RSS (main and pool processes, from /proc) before and after: deferred jobs are not in the broker,
  so no worker ever holds them;
- release at the opening: the worker is stopped, then `worker.scheduling.release_due_jobs` runs with
  `now` = the opening (as beat's task does: each pass's ids published together with
  `worker.publishing.publish_dispatch_at`, one pipelined LPUSH per 1,000), with a queue
  depth cap above N so that only the releaser is measured, until the deferral set is empty; jobs/s into
  the dispatch queue.

Run: `.venv/bin/python -m bench.bench_deferral [--jobs N] [--rounds R]` (quick 100,000 jobs, full 1,000,000).
Writes bench/results/deferral.json.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from bench.common import BenchmarkError, argument_parser, friendtalk_requests, mode, run_main, save, spread
from bench.stack import Worker, base_env, redis_used_memory, rss_bytes, settings_of, window_around
from producers.producer import Enqueued, Producer
from worker import keys
from worker.celery import DISPATCH_QUEUE, create_app
from worker.jobs import JobStore
from worker.publishing import publish_dispatch_at
from worker.redis_server import RedisServer
from worker.scheduling import release_due_jobs
from worker.settings import Settings

BATCH = 5000
MIB = 1024 * 1024


def settle_rss(pids: list[int], seconds: float) -> int:
    time.sleep(seconds)
    return rss_bytes(pids)


def memory_breakdown(client: redis.Redis, sample_job: str, jobs: int) -> dict[str, float]:
    """Bytes per job by key: one job's record and events, the deferral set and the events stream per job."""

    def usage(key: str) -> int:
        return int(client.memory_usage(key, samples=0) or 0)

    stream_entries = int(client.xlen(keys.JOB_EVENTS_STREAM)) or 1
    return {
        "job_record": usage(keys.job(sample_job)),
        "job_events": usage(keys.events(sample_job)),
        "scheduled_set_per_job": round(usage(keys.status_index("scheduled")) / jobs, 1),
        "events_stream_per_entry": round(usage(keys.JOB_EVENTS_STREAM) / stream_entries, 1),
        "events_stream_entries": stream_entries,
    }


def deferral_round(jobs: int, concurrency: int, log_dir: Path, settle: float) -> dict[str, Any]:
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        window = window_around(datetime.now(UTC), opens_in=3600, lasts=3600)
        env = base_env(server.url, KAKAO_DISPATCH_FRIENDTALK_WINDOW=window)
        settings = settings_of(env)
        producer = Producer(client, settings=settings)
        with Worker(env, log_dir, name="deferral", concurrency=concurrency) as node:
            pids = node.tree()
            rss_before = settle_rss(pids, settle)
            memory_before = redis_used_memory(client)
            started = time.perf_counter()
            sample = ""
            for start in range(0, jobs, BATCH):
                results = producer.send_many(friendtalk_requests(min(BATCH, jobs - start), start))
                first = results[0]
                assert isinstance(first, Enqueued) and first.status == "scheduled", first
                sample = sample or first.id
            enqueue_rate = jobs / (time.perf_counter() - started)
            memory_after = redis_used_memory(client)
            rss_after = settle_rss(pids, settle)
            breakdown = memory_breakdown(client, sample, jobs)
        opening = producer.store.next_due()
        assert opening is not None and producer.store.count_in("scheduled") == jobs
        assert client.llen(DISPATCH_QUEUE) == 0, "deferred jobs are not in the broker"
        release_rate, publish_share = release_all(producer.store, settings, opening, jobs)
        producer.close()
        client.close()
    return {
        "enqueue_jobs_per_s": enqueue_rate,
        "redis_bytes_per_job": (memory_after - memory_before) / jobs,
        "redis_used_memory_mib": memory_after / MIB,
        "worker_rss_before_mib": rss_before / MIB,
        "worker_rss_after_mib": rss_after / MIB,
        "worker_rss_change_mib": (rss_after - rss_before) / MIB,
        "worker_processes": len(pids),
        "release_jobs_per_s": release_rate,
        "release_time_in_publishing_pct": 100 * publish_share,
        "memory_breakdown_bytes": breakdown,
    }


def release_all(store: JobStore, settings: Settings, opening: datetime, jobs: int) -> tuple[float, float]:
    """Run the releaser at the opening until every job is in the dispatch queue; jobs/s and the share publishing."""
    app = create_app(settings)
    client = store.redis
    publishing = 0.0

    pending: list[tuple[str, datetime | None]] = []

    def publish(job_id: str, eta: datetime | None) -> None:  # as worker.tasks.release_due_jobs: collected
        pending.append((job_id, eta))

    def flush() -> None:  # ... and published together when the pass ends
        nonlocal publishing
        started = time.perf_counter()
        publish_dispatch_at(app, client, pending)
        pending.clear()
        publishing += time.perf_counter() - started

    def queue_depth() -> int:
        return int(client.llen(DISPATCH_QUEUE))

    started = time.perf_counter()
    released = 0
    while released < jobs:
        count = release_due_jobs(store, publish, now=opening,
                                 max_queue_depth=jobs + 1)  # fmt: skip
        flush()
        if count == 0:
            break
        released += count
    elapsed = time.perf_counter() - started
    in_queue = queue_depth()
    app.close()
    if released != jobs or in_queue != jobs:
        raise BenchmarkError(f"released {released} of {jobs} jobs; {in_queue} messages in the dispatch queue")
    return jobs / elapsed, publishing / elapsed


def run(*, jobs: int, rounds: int, concurrency: int, settle: float = 2.0) -> dict[str, Any]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-deferral-") as directory:
        for round_number in range(rounds):
            runs.append(deferral_round(jobs, concurrency, Path(directory), settle))
            figures = runs[-1]
            print(f"round {round_number + 1}: {figures['redis_bytes_per_job']:.0f} bytes/job, worker RSS "
                  f"{figures['worker_rss_before_mib']:.1f} → {figures['worker_rss_after_mib']:.1f} MiB, "
                  f"release {figures['release_jobs_per_s']:.0f} jobs/s", flush=True)  # fmt: skip

    def over(key: str, digits: int = 1) -> dict[str, Any]:
        return spread([figures[key] for figures in runs], digits)

    return {
        "enqueue_jobs_per_s": over("enqueue_jobs_per_s"),
        "redis_bytes_per_job": over("redis_bytes_per_job"),
        "redis_used_memory_mib": over("redis_used_memory_mib"),
        "worker_rss_before_mib": over("worker_rss_before_mib"),
        "worker_rss_after_mib": over("worker_rss_after_mib"),
        "worker_rss_change_mib": over("worker_rss_change_mib", 2),
        "release_jobs_per_s": over("release_jobs_per_s"),
        "release_time_in_publishing_pct": over("release_time_in_publishing_pct"),
        "memory_breakdown_bytes": runs[-1]["memory_breakdown_bytes"],
        "runs": runs,
    }


def main() -> None:
    full = mode() == "full"
    parser = argument_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000 if full else 100_000)
    parser.add_argument("--rounds", type=int, default=3 if full else 1)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2, help="worker pool processes (-c)")
    arguments = parser.parse_args()
    results = run(jobs=arguments.jobs, rounds=arguments.rounds, concurrency=arguments.concurrency)
    settings = {
        "jobs": arguments.jobs,
        "rounds": arguments.rounds,
        "message": "FriendTalk text, MSISDN recipient, window opening in one hour",
        "worker": f"one node, prefork -c {arguments.concurrency}, idle while the jobs wait",
        "release": "release_due_jobs(now=opening), batches of 500, queue depth cap above N, bulk publish_dispatch_at",
    }
    title = "deferral: FriendTalk jobs parked outside the window, released at the opening"
    save("deferral", title, settings, results, arguments.output)


if __name__ == "__main__":
    sys.exit(run_main(main))
