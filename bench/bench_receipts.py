"""Benchmark of delivery receipts: signed callbacks through the gateway and the workers into job records.

The stack: a private redis-server, the gateway as deployed (`kakao-dispatch gateway`, SINCH_WEBHOOK_SECRET
set) and one worker node (`celery -A worker worker -c C`). Each round creates N AlimTalk jobs already
`sent` (each with its Sinch message id), then POSTs one MESSAGE_DELIVERY callback per job, `DELIVERED`,
shaped and signed as Sinch does (HMAC-SHA256 over body.nonce.timestamp, a fresh nonce each), to
`POST /webhooks/sinch` over keep-alive connections (a raw asyncio client in this process).

- gateway: callbacks/s accepted (every one answered 200 and published to the `callbacks` queue),
  and the latency of the POSTs (p50, p99);
- end to end: callbacks/s from the first POST until all N jobs show `delivered` in their records.

Run: `.venv/bin/python -m bench.bench_receipts [--jobs N] [--rounds R] [--connections C]`.
Writes bench/results/receipts.json.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.common import BenchmarkError, alimtalk_requests, argument_parser, mode, percentile, run_main, save, spread
from bench.load import http_request, run_loop, send_all
from bench.stack import (
    APP,
    PARKING_DB,
    PROJECT,
    Gateway,
    Worker,
    base_env,
    clear_data,
    cpu_seconds,
    redis_cpu_seconds,
    settings_of,
    start_all,
    status_count,
    with_db,
)
from producers.producer import Enqueued, Producer
from worker.jobs import new_owner_token
from worker.redis_server import RedisServer
from worker.settings import Settings
from worker.signing import SINCH_HEADERS, sign

SECRET = "bench-webhook-secret"


def sent_jobs(client: redis.Redis, settings: Settings, count: int) -> list[tuple[str, str]]:
    """`count` jobs in `sent`, each linked to a Sinch message id, as a worker leaves them; (job id, message id)."""
    parking = with_db(settings.redis_url, PARKING_DB)
    producer = Producer(client, settings=settings.model_copy(update={"broker_url_override": parking}))
    pairs = []
    now = producer.clock()
    for start in range(0, count, 5000):
        for result in producer.send_many(alimtalk_requests(min(5000, count - start), start)):
            assert isinstance(result, Enqueued), result
            owner = new_owner_token()
            claimed = producer.store.transition(result.id, ["queued"], "sending", now=now, reason="claimed",
                                                fields={"owner": owner})  # fmt: skip
            assert claimed.ok, claimed
            message_id = "01BENCH" + secrets.token_hex(10).upper()
            producer.store.link_message(message_id, result.id)
            assert producer.store.mark_sent(result.id, owner=owner, message_id=message_id, attempts=1, now=now).ok
            pairs.append((result.id, message_id))
    producer.close()
    redis.Redis.from_url(parking).flushdb()
    return pairs


def receipt_body(job_id: str, message_id: str, index: int) -> bytes:
    """A MESSAGE_DELIVERY callback as Sinch sends it for a delivered KakaoTalk message."""
    moment = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    report = {
        "message_id": message_id,
        "conversation_id": f"01CONV{index:020d}",
        "status": "DELIVERED",
        "channel_identity": {"channel": "KAKAOTALK", "identity": f"+8210{50000000 + index:08d}", "app_id": APP},
        "contact_id": f"01CONTACT{index:017d}",
        "metadata": job_id,
        "processing_mode": "CONVERSATION",
    }
    payload = {"app_id": APP, "accepted_time": moment, "event_time": moment, "project_id": PROJECT,
               "message_delivery_report": report, "message_metadata": job_id, "correlation_id": job_id}  # fmt: skip
    return json.dumps(payload, separators=(",", ":")).encode()


def signed_requests(port: int, pairs: list[tuple[str, str]]) -> list[bytes]:
    requests = []
    timestamp = str(int(time.time()))
    for index, (job_id, message_id) in enumerate(pairs):
        body = receipt_body(job_id, message_id, index)
        nonce = secrets.token_hex(13)
        headers = {
            "Content-Type": "application/json",
            SINCH_HEADERS.signature: sign(SECRET, body, nonce, timestamp),
            SINCH_HEADERS.nonce: nonce,
            SINCH_HEADERS.timestamp: timestamp,
            SINCH_HEADERS.algorithm: "HmacSHA256",
        }
        requests.append(http_request("POST", "/webhooks/sinch", port, body, headers))
    return requests


def receipts_round(
    client: redis.Redis, settings: Settings, gateway: Gateway, node: Worker, jobs: int, connections: int
) -> dict[str, Any]:
    clear_data(client)
    pairs = sent_jobs(client, settings, jobs)
    requests = signed_requests(gateway.port, pairs)
    worker_pids, gateway_pids = node.tree(), gateway.tree()
    before = (cpu_seconds(worker_pids), cpu_seconds(gateway_pids), redis_cpu_seconds(client))
    started = time.monotonic()
    load = run_loop(send_all(gateway.port, requests, connections))
    deadline = time.monotonic() + 60 + jobs / 50
    while status_count(client, "delivered") < jobs:
        if time.monotonic() > deadline:
            raise BenchmarkError(f"only {status_count(client, 'delivered')} of {jobs} jobs delivered in time")
        time.sleep(0.005)
    end_to_end = time.monotonic() - started
    after = (cpu_seconds(worker_pids), cpu_seconds(gateway_pids), redis_cpu_seconds(client))
    if load.statuses != {200: jobs}:
        raise BenchmarkError(f"the gateway answered {dict(load.statuses)}")
    latencies = load.sorted_latencies_ms()
    return {
        "gateway_callbacks_per_s": jobs / load.elapsed,
        "end_to_end_callbacks_per_s": jobs / end_to_end,
        "post_p50_ms": percentile(latencies, 0.50),
        "post_p99_ms": percentile(latencies, 0.99),
        "worker_cpu_ms_per_callback": 1000 * (after[0] - before[0]) / jobs,
        "gateway_cpu_ms_per_callback": 1000 * (after[1] - before[1]) / jobs,
        "redis_cpu_ms_per_callback": 1000 * (after[2] - before[2]) / jobs,
    }


def run(*, jobs: int, rounds: int, concurrency: int, connections: int) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    with RedisServer() as server, tempfile.TemporaryDirectory(prefix="bench-receipts-") as directory:
        log_dir = Path(directory)
        env = base_env(server.url, SINCH_WEBHOOK_SECRET=SECRET, SINCH_APP_ID=APP, SINCH_PROJECT_ID=PROJECT)
        settings = settings_of(env)
        client = redis.Redis.from_url(server.url, decode_responses=True)
        gateway, node = Gateway(env, log_dir), Worker(env, log_dir, name="receipts", concurrency=concurrency)
        start_all([gateway, node])
        try:
            receipts_round(client, settings, gateway, node, min(jobs, 200), connections)  # warm-up
            for round_number in range(rounds):
                runs.append(receipts_round(client, settings, gateway, node, jobs, connections))
                print(f"round {round_number + 1}: gateway {runs[-1]['gateway_callbacks_per_s']:.0f}/s, "
                      f"end to end {runs[-1]['end_to_end_callbacks_per_s']:.0f}/s", flush=True)  # fmt: skip
        finally:
            node.stop()
            gateway.stop()
            client.close()

    def over(key: str, digits: int = 1) -> dict[str, Any]:
        return spread([figures[key] for figures in runs], digits)

    return {
        "gateway_callbacks_per_s": over("gateway_callbacks_per_s"),
        "end_to_end_callbacks_per_s": over("end_to_end_callbacks_per_s"),
        "post_p50_ms": over("post_p50_ms", 2),
        "post_p99_ms": over("post_p99_ms", 2),
        "worker_cpu_ms_per_callback": over("worker_cpu_ms_per_callback", 3),
        "gateway_cpu_ms_per_callback": over("gateway_cpu_ms_per_callback", 3),
        "redis_cpu_ms_per_callback": over("redis_cpu_ms_per_callback", 3),
        "runs": runs,
    }


def main() -> None:
    full = mode() == "full"
    parser = argument_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=20_000 if full else 3_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2, help="worker pool processes (-c)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections to the gateway")
    arguments = parser.parse_args()
    results = run(jobs=arguments.jobs, rounds=arguments.rounds, concurrency=arguments.concurrency,
                  connections=arguments.connections)  # fmt: skip
    settings = {
        "jobs": arguments.jobs,
        "rounds": arguments.rounds,
        "gateway": "kakao-dispatch gateway (one uvicorn process, its default logging), SINCH_WEBHOOK_SECRET set",
        "worker": f"one node, prefork -c {arguments.concurrency}, default log level",
        "connections": arguments.connections,
        "callback": "MESSAGE_DELIVERY, DELIVERED, signed, one per job",
    }
    title = "receipts: signed callbacks through the gateway and the workers into job records"
    save("receipts", title, settings, results, arguments.output, "uvicorn", "fastapi")


if __name__ == "__main__":
    sys.exit(run_main(main))
