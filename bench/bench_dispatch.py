"""Benchmark of dispatch: jobs/s and enqueue→send latency through real worker processes, against a no-op ceiling.

The stack: a private redis-server, the simulator (`python -m simulator`, no latency, no rate limit, no
webhook) and one worker node (`celery -A worker worker -c C`, prefork, acks_late, prefetch 1, default
log level). The app's rate limit is set far above what the stack can reach so it never binds.

- throughput: N AlimTalk jobs are enqueued with `Producer.send_many` while their Celery messages are
  parked in another Redis database; one `MOVE` hands them all to the running workers at once, and the
  clock runs until every job is `sent`.
- ceiling: the same messages consumed by `celery -A bench.noop_worker worker` (the same Celery settings,
  the same task name and queue, a task body that returns at once), timed until the dispatch queue and
  kombu's set of unacknowledged messages are both empty.
- latency: jobs enqueued at a steady pace (half the measured throughput) in batches every 10 ms; per
  job, `created_at` of its record (the producer's clock) to `received_at` at the simulator.
- CPU per job: user + system time of the worker's processes (main and pool, from /proc) over the
  throughput run, divided by N; redis-server's and the simulator's likewise.

Run: `.venv/bin/python -m bench.bench_dispatch [--jobs N] [--rounds R] [--concurrency C]`.
Writes bench/results/dispatch.json.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.common import (
    BenchmarkError,
    alimtalk_requests,
    argument_parser,
    mode,
    parse_instant,
    percentile,
    run_main,
    save,
    spread,
)
from bench.profiling import profile, shares, top_functions
from bench.stack import (
    PARKING_DB,
    Simulator,
    Worker,
    base_env,
    clear_data,
    cpu_seconds,
    open_window,
    redis_cpu_seconds,
    settings_of,
    status_count,
    with_db,
)
from producers.producer import Enqueued, Producer
from worker import keys
from worker.celery import DISPATCH_QUEUE
from worker.redis_server import RedisServer
from worker.settings import Settings

BATCH = 5000
#: How often completion is polled: often enough to time a run of seconds, rarely enough to cost little CPU.
POLL_SECONDS = 0.005
UNBOUND_RATE = "1000000"


class DispatchStack:
    """A redis-server and the simulator, shared by every round; worker nodes come and go per round."""

    def __init__(self, server: RedisServer, simulator: Simulator, log_dir: Path, concurrency: int) -> None:
        self.server = server
        self.simulator = simulator
        self.log_dir = log_dir
        self.concurrency = concurrency
        self.redis = redis.Redis.from_url(server.url, decode_responses=True)
        self.parking = redis.Redis.from_url(with_db(server.url, PARKING_DB))
        self.env = base_env(
            server.url,
            **simulator.sinch_env(),
            KAKAO_DISPATCH_RATE_LIMIT=UNBOUND_RATE,
            KAKAO_DISPATCH_PROJECT_RATE_LIMIT=UNBOUND_RATE,
            KAKAO_DISPATCH_FRIENDTALK_WINDOW=open_window(),
        )

    def settings(self, *, parked: bool = False) -> Settings:
        """The workers' settings; `parked`: Celery messages go to the parking database instead."""
        if parked:
            return settings_of({**self.env, "KAKAO_DISPATCH_BROKER_URL": with_db(self.server.url, PARKING_DB)})
        return settings_of(self.env)

    def worker(self, app: str, name: str) -> Worker:
        return Worker(self.env, self.log_dir, name=name, concurrency=self.concurrency, app=app)

    def fresh(self) -> None:
        clear_data(self.redis)
        self.parking.flushdb()
        self.simulator.call("POST", "/_sim/reset")

    def enqueue_parked(self, jobs: int) -> list[str]:
        """`jobs` AlimTalk jobs whose Celery messages wait in the parking database."""
        producer = Producer(self.redis, settings=self.settings(parked=True))
        ids = []
        for start in range(0, jobs, BATCH):
            ids += [result.id for result in producer.send_many(alimtalk_requests(min(BATCH, jobs - start), start))
                    if isinstance(result, Enqueued)]  # fmt: skip
        producer.close()
        if len(ids) != jobs or self.parking.llen(DISPATCH_QUEUE) != jobs:
            raise BenchmarkError(f"{len(ids)} of {jobs} jobs enqueued")
        return ids

    def close(self) -> None:
        self.redis.close()
        self.parking.close()


def drained(client: redis.Redis) -> int:
    """Messages still in the dispatch queue or delivered and not yet acknowledged."""
    pipe = client.pipeline(transaction=False)
    pipe.llen(DISPATCH_QUEUE)
    pipe.hlen("unacked")
    queued, unacked = pipe.execute()
    return int(queued) + int(unacked)


def wait_until_done(client: redis.Redis, jobs: int, started: float, *, expect_sent: bool) -> float:
    """Seconds from `started` until every job is `sent` (or, for the no-op, every message acknowledged).

    A message popped from the queue but not yet recorded as unacknowledged is in neither place for a
    moment, so an empty queue and set count only when a second look a few milliseconds later agrees.
    """
    deadline = started + 120 + jobs / 50
    first_empty = None
    while time.perf_counter() < deadline:
        now = time.perf_counter()
        if expect_sent:
            if status_count(client, "sent") >= jobs:
                return now - started
        elif drained(client) > 0:
            first_empty = None
        elif first_empty is None:
            first_empty = now
        elif now - first_empty >= 0.005:
            return first_empty - started
        time.sleep(POLL_SECONDS)
    done = status_count(client, "sent") if expect_sent else jobs - drained(client)
    raise BenchmarkError(f"{done} of {jobs} jobs done in time")


def throughput_round(stack: DispatchStack, node: Worker, jobs: int, *, expect_sent: bool) -> dict[str, Any]:
    """Park `jobs` messages, hand them to the running node at once, time until every one is acknowledged."""
    client = stack.redis
    stack.fresh()
    stack.enqueue_parked(jobs)
    pids = node.tree()
    cpu_before, redis_before = cpu_seconds(pids), redis_cpu_seconds(client)
    simulator_before = cpu_seconds([stack.simulator.pid])
    started = time.perf_counter()
    stack.parking.move(DISPATCH_QUEUE, 0)
    elapsed = wait_until_done(client, jobs, started, expect_sent=expect_sent)
    worker_cpu = cpu_seconds(pids) - cpu_before
    figures: dict[str, Any] = {
        "jobs_per_s": jobs / elapsed,
        "worker_cpu_ms_per_job": 1000 * worker_cpu / jobs,
        "redis_cpu_ms_per_job": 1000 * (redis_cpu_seconds(client) - redis_before) / jobs,
        "simulator_cpu_ms_per_job": 1000 * (cpu_seconds([stack.simulator.pid]) - simulator_before) / jobs,
    }
    return figures


def latency_round(stack: DispatchStack, rate: float, seconds: float) -> dict[str, Any]:
    """Offer `rate` jobs/s for `seconds`; per job, record created_at → received at the simulator."""
    client = stack.redis
    stack.fresh()
    producer = Producer(client, settings=stack.settings())
    tick = 0.01
    ids: list[str] = []
    started = time.perf_counter()
    for index in range(1, int(seconds / tick) + 1):
        pause = started + index * tick - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        due = int(rate * (time.perf_counter() - started)) - len(ids)  # open loop: behind schedule, send more
        if due > 0:
            results = producer.send_many(alimtalk_requests(due, len(ids)))
            ids.extend(result.id for result in results if isinstance(result, Enqueued))
    offered = len(ids) / (time.perf_counter() - started)
    deadline = time.monotonic() + 60
    while status_count(client, "sent") < len(ids) and time.monotonic() < deadline:
        time.sleep(0.05)
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(keys.job(job_id), "created_at")
    created = {job_id: int(value) / 1000 for job_id, value in zip(ids, pipe.execute(), strict=True)}
    received = {
        item["request"]["correlation_id"]: parse_instant(item["received_at"])
        for item in stack.simulator.call("GET", "/_sim/messages")
        if item["http_status"] == 200
    }
    latencies = sorted(1000 * (received[job_id] - created[job_id]) for job_id in ids if job_id in received)
    producer.close()
    return {
        "offered_jobs_per_s": offered,
        "jobs": len(ids),
        "sent": len(latencies),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else 0.0,
    }


PROFILE_PARTS = [
    ("load the job (JobStore.get)", "worker/jobs.py", "get"),
    ("status changes (JobStore.transition: claim, handed to Sinch)", "worker/jobs.py", "transition"),
    ("rules check again (check_request)", "worker/verdict.py", "check_request"),
    ("rate limit (RateLimiter.acquire)", "worker/ratelimit.py", "acquire"),
    ("messages:send (SinchClient.send_message)", "worker/sinch.py", "send_message"),
    ("  of which httpx (Client.send, incl. the simulator's answer)", "httpx/_client.py", "send"),
    ("sent (JobStore.mark_sent)", "worker/jobs.py", "mark_sent"),
    ("message id index (JobStore.link_message)", "worker/jobs.py", "link_message"),
    ("metrics written to Redis (worker.metrics flush)", "worker/metrics.py", "flush"),
    ("Redis commands, all (redis-py execute_command)", "redis/client.py", "execute_command"),
    ("Redis pipelines, all (redis-py Pipeline.execute)", "redis/client.py", "execute"),
]


def in_process(stack: DispatchStack, jobs: int) -> dict[str, Any]:
    """`Dispatcher.dispatch` called in a loop in this process (no Celery): once timed, once under cProfile."""
    from worker.tasks import Runtime  # the worker's own wiring of store, limiter, Sinch client and policy

    runtime = Runtime(stack.settings())
    dispatcher = runtime.dispatcher
    stack.fresh()
    dispatcher.dispatch(stack.enqueue_parked(1)[0])  # warm-up: the OAuth token, connections
    stack.fresh()
    ids = stack.enqueue_parked(jobs)
    started = time.perf_counter()
    for job_id in ids:
        dispatcher.dispatch(job_id)
    rate = jobs / (time.perf_counter() - started)
    stack.fresh()
    ids = stack.enqueue_parked(jobs)

    def dispatch_all() -> None:
        for job_id in ids:
            dispatcher.dispatch(job_id)

    stats = profile(dispatch_all)
    sent = status_count(stack.redis, "sent")
    runtime.close()
    if sent != jobs:
        raise BenchmarkError(f"in process: {sent} of {jobs} jobs reached `sent`")
    return {"jobs_per_s": round(rate, 1), "ms_per_job": round(1000 / rate, 3),
            **shares(stats, PROFILE_PARTS, jobs), "top_functions": top_functions(stats)}  # fmt: skip


def measure(
    stack: DispatchStack, rounds: int, jobs: int, latency_seconds: float, runs: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """Alternate the real worker and the no-op worker for `rounds` rounds, then profile in process."""
    for round_number in range(rounds):
        with stack.worker("worker", f"dispatch{round_number}") as node:
            throughput_round(stack, node, min(jobs, 200), expect_sent=True)  # warm-up: tokens, connections
            figures = throughput_round(stack, node, jobs, expect_sent=True)
            runs["dispatch"].append(figures)
            runs["latency"].append(latency_round(stack, figures["jobs_per_s"] / 2, latency_seconds))
        with stack.worker("bench.noop_worker", f"noop{round_number}") as node:
            throughput_round(stack, node, min(jobs, 200), expect_sent=False)
            runs["noop"].append(throughput_round(stack, node, jobs, expect_sent=False))
        dispatch, noop, latency = runs["dispatch"][-1], runs["noop"][-1], runs["latency"][-1]
        print(f"round {round_number + 1}: dispatch {dispatch['jobs_per_s']:.0f} jobs/s, no-op {noop['jobs_per_s']:.0f} "
              f"jobs/s, latency p50 {latency['p50_ms']:.1f} ms p99 {latency['p99_ms']:.1f} ms", flush=True)  # fmt: skip
    return in_process(stack, min(jobs, 2000))


def run(*, jobs: int, rounds: int, concurrency: int, latency_seconds: float) -> dict[str, Any]:
    """The whole benchmark; returns the `results` of the document (spreads over the rounds)."""
    runs: dict[str, list[dict[str, Any]]] = {"dispatch": [], "noop": [], "latency": []}
    with RedisServer() as server, tempfile.TemporaryDirectory(prefix="bench-dispatch-") as directory:
        log_dir = Path(directory)
        with Simulator(log_dir) as simulator:
            stack = DispatchStack(server, simulator, log_dir, concurrency)
            try:
                profiled = measure(stack, rounds, jobs, latency_seconds, runs)
            finally:
                stack.close()

    def over(name: str, key: str, digits: int = 1) -> dict[str, Any]:
        return spread([figures[key] for figures in runs[name]], digits)

    dispatch, noop = over("dispatch", "jobs_per_s"), over("noop", "jobs_per_s")
    ratios = [d["jobs_per_s"] / n["jobs_per_s"] for d, n in zip(runs["dispatch"], runs["noop"], strict=True)]
    return {
        "dispatch_jobs_per_s": dispatch,
        "noop_jobs_per_s": noop,
        "dispatch_to_noop_ratio": spread(ratios, 3),
        "goal_half_of_noop_met": dispatch["median"] >= noop["median"] / 2,
        "latency_offered_jobs_per_s": over("latency", "offered_jobs_per_s"),
        "latency_p50_ms": over("latency", "p50_ms"),
        "latency_p99_ms": over("latency", "p99_ms"),
        "worker_cpu_ms_per_job": over("dispatch", "worker_cpu_ms_per_job", 3),
        "noop_worker_cpu_ms_per_job": over("noop", "worker_cpu_ms_per_job", 3),
        "redis_cpu_ms_per_job": over("dispatch", "redis_cpu_ms_per_job", 3),
        "noop_redis_cpu_ms_per_job": over("noop", "redis_cpu_ms_per_job", 3),
        "simulator_cpu_ms_per_job": over("dispatch", "simulator_cpu_ms_per_job", 3),
        "in_process_profile": profiled,
        "runs": runs,
    }


def main() -> None:
    full = mode() == "full"
    parser = argument_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=20_000 if full else 1_500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2, help="worker pool processes (-c)")
    parser.add_argument("--latency-seconds", type=float, default=10.0 if full else 3.0)
    arguments = parser.parse_args()
    results = run(jobs=arguments.jobs, rounds=arguments.rounds, concurrency=arguments.concurrency,
                  latency_seconds=arguments.latency_seconds)  # fmt: skip
    settings = {
        "jobs": arguments.jobs,
        "rounds": arguments.rounds,
        "worker": f"one node, prefork -c {arguments.concurrency}, acks_late, prefetch 1, default log level",
        "simulator": "no latency, no rate limit, no webhook",
        "rate_limit": f"KAKAO_DISPATCH_RATE_LIMIT={UNBOUND_RATE} (does not bind)",
        "latency_load": "half the measured throughput, batches every 10 ms",
        "latency_seconds": arguments.latency_seconds,
        "message": "AlimTalk template, MSISDN recipient",
    }
    title = "dispatch: real workers to the simulator vs a no-op Celery task"
    save("dispatch", title, settings, results, arguments.output)


if __name__ == "__main__":
    sys.exit(run_main(main))
