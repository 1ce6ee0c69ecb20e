"""Benchmark of enqueuing: `Producer.send_many` against a plain loop of Celery `send_task`, same machine, same run.

Both publish one Celery message per job to the `dispatch` queue of a private redis-server; the
producer also checks every request against the KakaoTalk rules and writes each job record and
its first event (pipelined), which the plain loop does not. Three rounds each, alternating; the
figure is the median with the spread (min–max).

Run: `.venv/bin/python -m bench.bench_enqueue [--jobs 20000] [--rounds 3]` (`BENCH=full`: 100,000 jobs).
Writes bench/results/enqueue.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis

from producers.producer import Producer
from worker.celery import DISPATCH_QUEUE, DISPATCH_TASK, create_app
from worker.jobs import new_job_id
from worker.redis_server import RedisServer
from worker.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "enqueue.json"


def requests(count: int) -> list[dict[str, Any]]:
    return [
        {"type": "alimtalk", "to": {"msisdn": f"010-{5000 + i // 10000:04d}-{i % 10000:04d}"},
         "template": {"id": "package_template", "parameters": {"package_id": f"P{i}"}}}
        for i in range(count)
    ]  # fmt: skip


def producer_round(settings: Settings, client: redis.Redis, batch: list[dict[str, Any]]) -> float:
    producer = Producer(client, settings=settings)
    started = time.perf_counter()
    for start in range(0, len(batch), 5000):
        producer.send_many(batch[start : start + 5000])
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


def summary(rates: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(rates), 1), "min": round(min(rates), 1), "max": round(max(rates), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    full = os.environ.get("BENCH") == "full"
    parser.add_argument("--jobs", type=int, default=100_000 if full else 20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    arguments = parser.parse_args()
    batch = requests(arguments.jobs)
    producer_rates, plain_rates = [], []
    with RedisServer() as server:
        settings = Settings(KAKAO_DISPATCH_REDIS_URL=server.url)  # type: ignore[call-arg]
        client = redis.Redis.from_url(server.url, decode_responses=True)
        for _ in range(arguments.rounds):
            client.flushdb()
            producer_rates.append(producer_round(settings, client, batch))
            client.flushdb()
            plain_rates.append(plain_loop_round(settings, arguments.jobs))
        client.close()
    ours, plain = summary(producer_rates), summary(plain_rates)
    document = {
        "benchmark": "enqueue: Producer.send_many vs a plain loop of Celery send_task",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.bench_enqueue", *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "cores": os.cpu_count(), "python": platform.python_version()},
        "versions": {name: version(name) for name in ("celery", "kombu", "redis", "pydantic", "phonenumbers")},
        "settings": {"jobs": arguments.jobs, "rounds": arguments.rounds, "producer_batch": 5000},
        "results": {
            "producer_send_many_jobs_per_s": ours,
            "plain_send_task_loop_jobs_per_s": plain,
            "ratio_median": round(ours["median"] / plain["median"], 2),
        },
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(document["results"], indent=2))


if __name__ == "__main__":
    main()
