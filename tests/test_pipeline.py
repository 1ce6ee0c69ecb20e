"""The dispatch pipeline end to end: real redis-server, Celery worker and beat processes, the simulator over HTTP."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from system import Pipeline, window_around

from simulator.ratelimit import AppRateLimiter

pytestmark = pytest.mark.slow


ALIMTALK = {"type": "alimtalk", "to": {"msisdn": "010-1234-5678"}, "authentication": True,
            "template": {"id": "sinch_template_example", "parameters": {"code": "123456"}}}  # fmt: skip
FRIENDTALK = {"type": "friendtalk", "to": {"msisdn": "010-2345-6789"},
              "message": {"choice_message": {"text_message": {"text": "오늘의 추천"},
                                             "choices": [{"text_message": {"text": "보기"}}]}}}  # fmt: skip


def test_each_kind_reaches_sinch_with_the_exact_body_and_ends_sent(pipeline: Pipeline) -> None:
    contact = pipeline.sim("POST", "/_sim/inbound", json={"text": "문의드립니다"})["contact_id"]
    pipeline.start_worker()
    consultation = {"type": "consultation", "to": {"contact_id": contact},
                    "message": {"text_message": {"text": "안녕하세요, 무엇을 도와드릴까요?"}}}  # fmt: skip
    jobs = [pipeline.producer.send(request) for request in (ALIMTALK, FRIENDTALK, consultation)]
    pipeline.wait_for_status([job.id for job in jobs], {"sent"})
    received = {item["request"]["correlation_id"]: item for item in pipeline.sim("GET", "/_sim/messages")}
    for job in jobs:
        verdict = pipeline.producer.check(job.request, job_id=job.id)
        assert received[job.id]["request"] == verdict.body
        assert received[job.id]["outcome"] == "DELIVERED", received[job.id]["reason"]
        assert pipeline.job(job.id).message_id == received[job.id]["message_id"]
    assert received[jobs[0].id]["request"]["channel_properties"] == {"KAKAOTALK_AUTHENTICATION": "true"}
    assert received[jobs[2].id]["request"]["recipient"] == {"contact_id": contact}


def test_5xx_and_429_are_retried_until_sent(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    pipeline.start_beat()
    pipeline.sim("PUT", "/_sim/faults", json={"http_5xx": 1.0})
    failing = pipeline.producer.send(ALIMTALK)
    pipeline.wait_for(lambda: pipeline.job(failing.id).attempts >= 2, 20, "two failed attempts")
    pipeline.sim("PUT", "/_sim/faults", json={"http_429": 1.0, "retry_after_s": 2})
    pipeline.wait_for(lambda: pipeline.job(failing.id).attempts >= 3, 20, "a 429")
    throttled_at = time.monotonic()
    pipeline.sim("PUT", "/_sim/faults", json={})
    pipeline.wait_for_status([failing.id], {"sent"})
    assert time.monotonic() - throttled_at >= 1.0  # Retry-After: 2 held it back
    job = pipeline.job(failing.id)
    reasons = [event.reason for event in job.events if event.to_status == "scheduled"]
    assert any("503" in reason or "5" in reason for reason in reasons) and any("429" in r for r in reasons)
    sends = [item["http_status"] for item in pipeline.sim("GET", "/_sim/messages")]
    assert sends.count(200) == 1 and len(sends) == job.attempts


def test_429_without_retry_after_is_retried(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    pipeline.start_beat()
    pipeline.sim("PUT", "/_sim/faults", json={"http_429": 1.0})
    job = pipeline.producer.send(ALIMTALK)
    pipeline.wait_for(lambda: pipeline.job(job.id).attempts >= 1, 20, "a 429")
    pipeline.sim("PUT", "/_sim/faults", json={})
    pipeline.wait_for_status([job.id], {"sent"})


def test_400_fails_with_the_reason(pipeline: Pipeline) -> None:
    app_path = f"/v1/projects/{pipeline.simulator.config.project_id}/apps/{pipeline.simulator.config.app_id}"
    pipeline.sim("PATCH", app_path, params={"update_mask": "channel_credentials"},
                 json={"channel_credentials": [{"channel": "KAKAOTALKCHAT",
                                                "kakaotalkchat_credentials": {"kakaotalk_plus_friend_id": "x"}}]},
                 auth=(pipeline.simulator.config.key_id,
                                                          pipeline.simulator.config.key_secret))  # fmt: skip
    pipeline.start_worker()
    job = pipeline.producer.send(ALIMTALK)
    pipeline.wait_for_status([job.id], {"failed"})
    failed = pipeline.job(job.id)
    assert failed.delivery["code"] == "INVALID_ARGUMENT" and failed.delivery["description"]
    assert len(pipeline.sim("GET", "/_sim/messages")) == 1


def test_read_timeout_is_unknown_and_never_sent_again(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    pipeline.start_beat()
    pipeline.sim("PUT", "/_sim/faults", json={"timeout": 1.0, "timeout_delay_s": 4})
    job = pipeline.producer.send(ALIMTALK)
    pipeline.wait_for_status([job.id], {"unknown"}, timeout=20)
    pipeline.sim("PUT", "/_sim/faults", json={})
    time.sleep(8)  # longer than the stale threshold (6 s): the reconciler must not resend it
    assert pipeline.job(job.id).status == "unknown"
    assert pipeline.sends_by_job()[job.id] == 1


def test_friendtalk_outside_the_window_waits_and_goes_at_the_opening(pipeline: Pipeline) -> None:
    opening_in = 4.0
    pipeline.configure(KAKAO_DISPATCH_FRIENDTALK_WINDOW=window_around(datetime.now(UTC), opens_in=opening_in))
    pipeline.start_worker()
    pipeline.start_beat()
    job = pipeline.producer.send(FRIENDTALK)
    assert job.status == "scheduled" and job.not_before is not None
    assert job.not_before > datetime.now(UTC)
    pipeline.wait_for_status([job.id], {"sent"}, timeout=20)
    [sent] = [item for item in pipeline.sim("GET", "/_sim/messages")]
    received = datetime.fromisoformat(sent["received_at"])
    assert job.not_before <= received < job.not_before + timedelta(seconds=3)


def test_send_at_expires_at_and_cancel(pipeline: Pipeline) -> None:
    now = datetime.now(UTC)
    later = pipeline.producer.send({**ALIMTALK, "send_at": (now + timedelta(seconds=3)).isoformat()})
    cancelled = pipeline.producer.send({**ALIMTALK, "send_at": (now + timedelta(seconds=3)).isoformat()})
    expiring = pipeline.producer.send({**ALIMTALK, "expires_at": (now + timedelta(seconds=1)).isoformat()})
    assert pipeline.producer.cancel(cancelled.id).ok
    time.sleep(1.5)  # no worker yet: the expiring job's time passes while it is queued
    pipeline.start_worker()
    pipeline.start_beat()
    pipeline.wait_for_status([later.id], {"sent"}, timeout=20)
    assert pipeline.job(expiring.id).status == "expired"
    assert pipeline.job(cancelled.id).status == "cancelled"
    sent_at = datetime.fromisoformat(pipeline.sim("GET", "/_sim/messages")[0]["received_at"])
    assert sent_at >= now + timedelta(seconds=3)
    assert set(pipeline.sends_by_job()) == {later.id}
    assert not pipeline.producer.cancel(later.id).ok


def test_idempotency_key_sends_once(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    first = pipeline.producer.send({**ALIMTALK, "idempotency_key": "order-42"})
    second = pipeline.producer.send({**ALIMTALK, "idempotency_key": "order-42"})
    assert first.id == second.id
    pipeline.wait_for_status([first.id], {"sent"})
    time.sleep(0.5)
    assert pipeline.sends_by_job() == Counter({first.id: 1})


def test_sigkill_of_a_worker_mid_batch_loses_nothing_and_sends_nothing_twice(pipeline: Pipeline) -> None:
    pipeline.sim("PUT", "/_sim/faults", json={"latency_ms": [5, 15]})
    doomed = pipeline.start_worker("doomed", concurrency=2)
    pipeline.start_worker("survivor", concurrency=2)
    pipeline.start_beat()
    results = pipeline.producer.send_many([{**ALIMTALK, "to": {"msisdn": f"010-5555-{i:04d}"}} for i in range(1000)])
    job_ids = [result.id for result in results]  # type: ignore[union-attr]
    pipeline.wait_for(lambda: sum(pipeline.accepted_by_job().values()) >= 200, 60, "200 sends")
    doomed.kill()
    pipeline.wait_for_status(job_ids, {"sent", "unknown"}, timeout=90)
    sends = pipeline.sends_by_job()
    statuses = Counter(pipeline.job(job_id).status for job_id in job_ids)
    assert max(sends.values()) == 1, "a job was sent twice"
    assert all(sends[job_id] == 1 for job_id in job_ids if pipeline.job(job_id).status == "sent")
    # A job whose worker died while its request was in flight is `unknown`, never resent:
    # at most one per process of the killed worker.
    assert statuses["unknown"] <= 2, statuses
    assert statuses["sent"] + statuses["unknown"] == 1000


def test_two_workers_share_one_rate_limit(pipeline: Pipeline) -> None:
    pipeline.configure(KAKAO_DISPATCH_RATE_LIMIT="50")
    pipeline.simulator.simulation.rate_limiter = AppRateLimiter(50)  # Sinch's own limit matches ours
    pipeline.start_worker("a", concurrency=2)
    pipeline.start_worker("b", concurrency=2)
    pipeline.start_beat()  # jobs that would wait more than a moment for the limit are parked and released
    results = pipeline.producer.send_many([{**ALIMTALK, "to": {"msisdn": f"010-7777-{i:04d}"}} for i in range(300)])
    job_ids = [result.id for result in results]  # type: ignore[union-attr]
    pipeline.wait_for_status(job_ids, {"sent"}, timeout=60)
    received = sorted(datetime.fromisoformat(item["received_at"]) for item in pipeline.sim("GET", "/_sim/messages"))
    assert all(item["http_status"] == 200 for item in pipeline.sim("GET", "/_sim/messages")), "Sinch answered 429"
    steady = received[50:]  # past the first second's start-up
    rate = (len(steady) - 1) / (steady[-1] - steady[0]).total_seconds()
    assert abs(rate - 50) / 50 <= 0.05, f"measured {rate:.1f}/s"
