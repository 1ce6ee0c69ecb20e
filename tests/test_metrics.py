"""Prometheus metrics at the gateway's /metrics, over real HTTP: read from a real Redis, counted by real workers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from system import Pipeline, ThreadedServer

from producers.gateway import create_gateway
from producers.producer import Producer
from worker import keys
from worker.redis_server import RedisServer, free_port
from worker.settings import Settings

ALIMTALK = {"type": "alimtalk", "template": {"id": "package_template", "parameters": {"package_id": "P-1"}}}
FAR_AHEAD = (datetime.now(UTC) + timedelta(days=2)).isoformat()
FRIENDTALK_LATER = {"type": "friendtalk", "message": {"text_message": {"text": "주말 할인"}}, "send_at": FAR_AHEAD}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, headers: dict[str, str] | None = None) -> tuple[httpx.Response, Samples]:
    response = httpx.get(url + "/metrics", headers=headers, timeout=10)
    samples: Samples = {}
    if response.status_code == 200:
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return response, samples


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples[metric, frozenset(labels.items())]


def alimtalk(number: int) -> dict[str, Any]:
    return {**ALIMTALK, "to": {"msisdn": f"010-1234-{5670 + number}"}}


@pytest.fixture
def settings(redis_server: RedisServer, redis_client: redis.Redis) -> Settings:
    return Settings(redis_url=redis_server.url, broker_url_override=None, api_keys_csv="metrics-test-key")


@pytest.fixture
def gateway(settings: Settings) -> Iterator[str]:
    server = ThreadedServer(create_gateway(settings)).start()
    yield server.url
    server.stop()


@pytest.fixture
def producer(settings: Settings) -> Iterator[Producer]:
    producer = Producer(redis.Redis.from_url(settings.redis_url, decode_responses=True), settings=settings)
    yield producer
    producer.close()


def test_metrics_need_no_api_key_and_start_at_zero(gateway: str) -> None:
    assert httpx.get(gateway + "/v1/jobs/job_X", timeout=10).status_code == 401  # the API itself is locked
    response, samples = scrape(gateway)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    for status in ("scheduled", "queued", "sending", "sent", "unknown"):
        for job_type in ("alimtalk", "friendtalk", "consultation"):
            assert value(samples, "kakao_dispatch_jobs", status=status, type=job_type) == 0
    assert value(samples, "kakao_dispatch_sinch_send_duration_seconds_count") == 0
    assert value(samples, "kakao_dispatch_sinch_send_duration_seconds_bucket", le="+Inf") == 0
    assert value(samples, "kakao_dispatch_queue_messages", queue="dispatch") == 0
    assert value(samples, "kakao_dispatch_deferred_jobs") == 0
    assert value(samples, "kakao_dispatch_rate_limit_waits_total") == 0
    assert value(samples, "kakao_dispatch_reconciler_repairs_total", action="republished") == 0


def test_jobs_by_status_and_type_queue_depth_and_deferred_jobs(gateway: str, producer: Producer) -> None:
    queued = [producer.send(alimtalk(n)) for n in range(3)]
    later = [producer.send({**FRIENDTALK_LATER, "to": {"msisdn": f"010-2345-{6780 + n}"}}) for n in range(2)]
    assert {job.status for job in queued} == {"queued"} and {job.status for job in later} == {"scheduled"}
    assert producer.cancel(later[0].id).ok
    now = datetime.now(UTC)
    overdue = producer.store.transition(
        queued[0].id, ["queued"], "scheduled", now=now, due=now - timedelta(seconds=30), reason="test: a retry"
    )
    assert overdue.ok

    _, samples = scrape(gateway)
    assert value(samples, "kakao_dispatch_jobs", status="queued", type="alimtalk") == 2
    assert value(samples, "kakao_dispatch_jobs", status="scheduled", type="alimtalk") == 1
    assert value(samples, "kakao_dispatch_jobs", status="scheduled", type="friendtalk") == 1
    assert value(samples, "kakao_dispatch_job_status_changes_total", status="cancelled", type="friendtalk") == 1
    assert value(samples, "kakao_dispatch_job_status_changes_total", status="queued", type="alimtalk") == 3
    assert value(samples, "kakao_dispatch_jobs_created_total", type="alimtalk") == 3
    assert value(samples, "kakao_dispatch_jobs_created_total", type="friendtalk") == 2
    assert value(samples, "kakao_dispatch_queued_jobs") == 2
    assert value(samples, "kakao_dispatch_deferred_jobs") == 2
    assert 30 <= value(samples, "kakao_dispatch_deferred_overdue_seconds") < 90
    assert value(samples, "kakao_dispatch_queue_messages", queue="dispatch") == 3  # one Celery message per queued job
    assert value(samples, "kakao_dispatch_queue_messages", queue="callbacks") == 0


def test_counts_the_job_store_and_gateway_keep_appear_by_label(gateway: str, redis_client: redis.Redis) -> None:
    redis_client.hset(keys.COUNTERS, mapping={
        "receipts:applied": 4, "receipts:orphaned": 2, "webhook_rejected:bad_signature": 3,
        "callbacks:message_delivery_report": 6, "inbound:text": 1, "job_events:undelivered": 1, "something:new": 7,
    })  # fmt: skip
    redis_client.hset(keys.ORPHANS, mapping={"m1": "{}", "m2": "{}"})
    _, samples = scrape(gateway)
    assert value(samples, "kakao_dispatch_receipts_total", outcome="applied") == 4
    assert value(samples, "kakao_dispatch_receipts_total", outcome="orphaned") == 2
    assert value(samples, "kakao_dispatch_webhook_rejected_total", reason="bad_signature") == 3
    assert value(samples, "kakao_dispatch_callbacks_total", kind="message_delivery_report") == 6
    assert value(samples, "kakao_dispatch_inbound_messages_total", kind="text") == 1
    assert value(samples, "kakao_dispatch_job_event_posts_total", outcome="undelivered") == 1
    assert value(samples, "kakao_dispatch_counts_total", name="something:new") == 7
    assert value(samples, "kakao_dispatch_orphan_receipts") == 2


def test_metrics_answer_503_in_one_line_when_redis_is_down(redis_server: RedisServer) -> None:
    down = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", broker_url_override=None)
    server = ThreadedServer(create_gateway(down)).start()
    try:
        response = httpx.get(server.url + "/metrics", timeout=20)
    finally:
        server.stop()
    assert response.status_code == 503
    assert response.text.startswith("metrics unavailable: redis:") and response.text.count("\n") == 1


@pytest.mark.slow
def test_real_workers_count_every_send_response_and_receipt(pipeline: Pipeline) -> None:
    pipeline.sim("PUT", "/_sim/faults", json={"http_5xx": 0.25, "http_429": 0.1})
    url = pipeline.start_gateway()
    pipeline.start_worker()
    pipeline.start_beat()
    jobs = [pipeline.producer.send(alimtalk(n)) for n in range(10)]
    pipeline.wait_for_status([job.id for job in jobs], {"delivered"}, timeout=60)

    _, samples = scrape(url)
    answers = Counter(str(item["http_status"]) for item in pipeline.sim("GET", "/_sim/messages"))
    assert answers["200"] == 10
    assert value(samples, "kakao_dispatch_sinch_send_duration_seconds_count") == answers.total()
    assert value(samples, "kakao_dispatch_sinch_send_duration_seconds_bucket", le="+Inf") == answers.total()
    assert 0 < value(samples, "kakao_dispatch_sinch_send_duration_seconds_sum") < 2 * answers.total()
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for (name, labels), count in samples.items()
        if name == "kakao_dispatch_sinch_send_duration_seconds_bucket"
    )
    assert [count for _, count in buckets] == sorted(count for _, count in buckets)  # cumulative
    for code, count in answers.items():
        assert value(samples, "kakao_dispatch_sinch_responses_total", code=code) == count
    assert value(samples, "kakao_dispatch_rate_limit_pauses_total") == answers["429"]
    assert value(samples, "kakao_dispatch_receipts_total", outcome="applied") == 10
    assert value(samples, "kakao_dispatch_callbacks_total", kind="message_delivery_report") == 10
    assert value(samples, "kakao_dispatch_job_status_changes_total", status="sent", type="alimtalk") == 10
    assert value(samples, "kakao_dispatch_job_status_changes_total", status="delivered", type="alimtalk") == 10
    deferred = answers.total() - 10 + value(samples, "kakao_dispatch_rate_limit_parked_total")  # retries and parks
    assert value(samples, "kakao_dispatch_job_status_changes_total", status="scheduled", type="alimtalk") == deferred
    assert value(samples, "kakao_dispatch_jobs_released_total") == deferred
    for status in ("queued", "sending", "sent", "scheduled", "unknown"):
        assert value(samples, "kakao_dispatch_jobs", status=status, type="alimtalk") == 0


@pytest.mark.slow
def test_rate_limit_waits_and_parked_jobs_are_counted(pipeline: Pipeline) -> None:
    # One send a second, three sends at once: one goes, one waits a second in place, one is parked and comes back.
    pipeline.configure(KAKAO_DISPATCH_RATE_LIMIT="1")
    url = pipeline.start_gateway()
    pipeline.start_worker(concurrency=3)
    pipeline.start_beat()
    jobs = [pipeline.producer.send(alimtalk(n)) for n in range(5)]
    pipeline.wait_for_status([job.id for job in jobs], {"delivered"}, timeout=60)

    _, samples = scrape(url)
    waits = value(samples, "kakao_dispatch_rate_limit_waits_total")
    waited = value(samples, "kakao_dispatch_rate_limit_wait_seconds_total")
    assert waits >= 1
    assert 0 < waited <= waits * 1.0  # each wait in place is at most a second
    parked = value(samples, "kakao_dispatch_rate_limit_parked_total")
    assert parked >= 1
    assert value(samples, "kakao_dispatch_jobs_released_total") == parked  # every parked job came back once
    assert value(samples, "kakao_dispatch_sinch_send_duration_seconds_count") == 5
    assert value(samples, "kakao_dispatch_sinch_responses_total", code="200") == 5
