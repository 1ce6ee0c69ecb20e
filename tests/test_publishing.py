"""Bulk-published dispatch messages are exactly what Celery's own send_task would have queued."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime

import pytest
import redis
from celery import Celery

from producers.producer import Producer
from worker.celery import DISPATCH_QUEUE, DISPATCH_TASK, create_app
from worker.publishing import publish_dispatch_at, publish_dispatch_many
from worker.redis_server import RedisServer
from worker.settings import Settings

VARYING_HEADERS = {"id", "root_id", "origin"}  # per message (and per process)
VARYING_PROPERTIES = {"correlation_id", "reply_to", "delivery_tag"}


def test_envelopes_match_send_task(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    app = create_app(Settings(KAKAO_DISPATCH_REDIS_URL=redis_server.url))  # type: ignore[call-arg]
    app.conf.task_send_sent_event = False
    app.send_task(DISPATCH_TASK, ("job_A",), queue=DISPATCH_QUEUE)
    publish_dispatch_many(app, redis_client, ["job_A", "job_B", "job_C"], batch=2)
    app.close()
    raw = redis_client.lrange(DISPATCH_QUEUE, 0, -1)
    reference, *ours = [json.loads(item) for item in reversed(raw)]  # consumers pop from the right: FIFO
    assert [json.loads(base64.b64decode(m["body"]))[0] for m in ours] == [["job_A"], ["job_B"], ["job_C"]]
    for message in ours:
        assert (
            message["body"] == reference["body"]
            or json.loads(base64.b64decode(message["body"]))[1:]
            == (json.loads(base64.b64decode(reference["body"]))[1:])
        )
        assert {k: v for k, v in message["headers"].items() if k not in VARYING_HEADERS | {"argsrepr"}} == {
            k: v for k, v in reference["headers"].items() if k not in VARYING_HEADERS | {"argsrepr"}
        }
        assert message["headers"]["root_id"] == message["headers"]["id"] == message["properties"]["correlation_id"]
        assert {k: v for k, v in message["properties"].items() if k not in VARYING_PROPERTIES} == {
            k: v for k, v in reference["properties"].items() if k not in VARYING_PROPERTIES
        }
        assert {k: v for k, v in message.items() if k not in ("body", "headers", "properties")} == {
            k: v for k, v in reference.items() if k not in ("body", "headers", "properties")
        }


def test_released_jobs_carry_the_same_eta_as_send_task(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    app = create_app(Settings(KAKAO_DISPATCH_REDIS_URL=redis_server.url))  # type: ignore[call-arg]
    app.conf.task_send_sent_event = False
    due = datetime(2026, 11, 24, 23, 0, 0, 500000, tzinfo=UTC)
    app.send_task(DISPATCH_TASK, ("job_A",), queue=DISPATCH_QUEUE, eta=due)
    publish_dispatch_at(app, redis_client, [("job_A", due), ("job_B", None)])
    app.close()
    reference, at_due, at_once = [
        json.loads(item)["headers"] for item in reversed(redis_client.lrange(DISPATCH_QUEUE, 0, -1))
    ]
    assert at_due["eta"] == reference["eta"] == due.isoformat()
    assert at_once["eta"] is None


def test_threads_publishing_through_a_new_producer_share_one_celery_app(
    redis_server: RedisServer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[Celery] = []

    def slow_create_app(settings: Settings | None = None) -> Celery:
        time.sleep(0.05)  # widen the window in which a second thread would also find no app
        created.append(create_app(settings))
        return created[-1]

    monkeypatch.setattr("worker.celery.create_app", slow_create_app)
    settings = Settings(KAKAO_DISPATCH_REDIS_URL=redis_server.url)  # type: ignore[call-arg]
    producer = Producer(redis_client, settings=settings)
    request = {"type": "consultation", "to": {"contact_id": "c"}, "message": {"text_message": {"text": "hi"}}}
    threads = [threading.Thread(target=producer.send_many, args=([request],)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(created) == 1 and redis_client.llen(DISPATCH_QUEUE) == 8
    producer.close()
