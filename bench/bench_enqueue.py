"""Benchmark of enqueuing: `Producer.send_many` against a plain loop of Celery `send_task`, same machine, same run.

Both publish one Celery message per job to the `dispatch` queue of a private redis-server; the
producer also checks every request against the KakaoTalk rules and writes each job record and
its first event (pipelined), which the plain loop does not. R rounds each, alternating; the
figure is the median with the spread (min–max). Goal: 10,000 jobs/s in one process.

Where the time goes: one more producer round runs under cProfile, summarised as the share of the
rules check, the job records and the Celery messages (and what inside them costs most), plus the
redis-server's own CPU time per job (INFO cpu) over the measured rounds. cProfile slows Python
code down more than it slows waiting on Redis, so the shares are indicative, not exact.

Run: `.venv/bin/python -m bench.bench_enqueue [--jobs N] [--rounds R]` (quick 5,000 jobs, full 100,000).
Writes bench/results/enqueue.json.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import redis

from bench.common import alimtalk_requests, argument_parser, mode, run_main, save, spread
from bench.profiling import profile, shares, top_functions
from bench.stack import redis_cpu_seconds
from producers.producer import Producer
from worker.celery import DISPATCH_QUEUE, DISPATCH_TASK, create_app
from worker.jobs import new_job_id
from worker.redis_server import RedisServer
from worker.settings import Settings

GOAL_JOBS_PER_S = 10_000
PRODUCER_BATCH = 5000
PROFILE_JOBS = 20_000
PROFILE_PARTS = [
    ("rules check (Producer.check)", "worker/verdict.py", "check_request"),
    ("  request schema (pydantic)", "worker/send_request.py", "parse_send_request"),
    ("  MSISDN parsing (phonenumbers)", "worker/recipients.py", "parse_msisdn"),
    ("  messages:send body", "worker/sinch_body.py", "build_send_body"),
    ("  new job id", "worker/jobs.py", "new_job_id"),
    ("job records (JobStore.create_many)", "worker/jobs.py", "create_many"),
    ("  record arguments (JSON, pydantic dump)", "worker/jobs.py", "_create_arguments"),
    ("  redis-py pipeline execute (pack, send, read the replies)", "redis/client.py", "execute"),
    ("    packing the commands (redis-py encodes every argument)", "redis/connection.py", "pack"),
    ("Celery messages (Producer._publish)", "producers/producer.py", "_publish"),
    ("  message envelopes (Celery as_task_v2, JSON)", "worker/publishing.py", "dispatch_envelope"),
]


def producer_round(producer: Producer, batch: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for start in range(0, len(batch), PRODUCER_BATCH):
        producer.send_many(batch[start : start + PRODUCER_BATCH])
    return len(batch) / (time.perf_counter() - started)


def plain_loop_round(settings: Settings, count: int) -> float:
    """What a user would write without kakao-dispatch: one `send_task` per job, nothing stored."""
    app = create_app(settings)
    ids = [new_job_id() for _ in range(count)]
    started = time.perf_counter()
    for job_id in ids:
        app.send_task(DISPATCH_TASK, (job_id,), queue=DISPATCH_QUEUE)
    elapsed = time.perf_counter() - started
    app.close()
    return count / elapsed


def run(*, jobs: int, rounds: int, profile_jobs: int) -> dict[str, Any]:
    batch = alimtalk_requests(jobs)
    producer_rates, plain_rates, redis_cpu = [], [], []
    with RedisServer() as server:
        settings = Settings(KAKAO_DISPATCH_REDIS_URL=server.url)
        client = redis.Redis.from_url(server.url, decode_responses=True)
        producer = Producer(client, settings=settings)
        producer_round(producer, alimtalk_requests(min(jobs, 1000)))  # warm-up: scripts loaded, imports done
        for _ in range(rounds):
            client.flushdb()
            before = redis_cpu_seconds(client)
            producer_rates.append(producer_round(producer, batch))
            redis_cpu.append(1000 * (redis_cpu_seconds(client) - before) / jobs)
            client.flushdb()
            plain_rates.append(plain_loop_round(settings, jobs))
        client.flushdb()
        profiled_batch = alimtalk_requests(profile_jobs)
        stats = profile(lambda: producer_round(producer, profiled_batch))
        producer.close()
    ours, plain = spread(producer_rates), spread(plain_rates)
    return {
        "producer_send_many_jobs_per_s": ours,
        "plain_send_task_loop_jobs_per_s": plain,
        "ratio_median": round(ours["median"] / plain["median"], 2),
        "goal_jobs_per_s": GOAL_JOBS_PER_S,
        "goal_met": ours["median"] >= GOAL_JOBS_PER_S,
        "producer_us_per_job": round(1e6 / ours["median"], 1),
        "redis_cpu_ms_per_job": spread(redis_cpu, 4),
        "profile": {**shares(stats, PROFILE_PARTS, profile_jobs), "top_functions": top_functions(stats)},
    }


def main() -> None:
    full = mode() == "full"
    parser = argument_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=100_000 if full else 5_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile-jobs", type=int, default=PROFILE_JOBS if full else 5_000)
    arguments = parser.parse_args()
    results = run(jobs=arguments.jobs, rounds=arguments.rounds, profile_jobs=arguments.profile_jobs)
    settings = {
        "jobs": arguments.jobs,
        "rounds": arguments.rounds,
        "producer_batch": PRODUCER_BATCH,
        "profiled_jobs": arguments.profile_jobs,
        "message": "AlimTalk template, MSISDN recipient",
    }
    title = "enqueue: Producer.send_many vs a plain loop of Celery send_task"
    save("enqueue", title, settings, results, arguments.output, "pydantic", "phonenumbers")


if __name__ == "__main__":
    sys.exit(run_main(main))
