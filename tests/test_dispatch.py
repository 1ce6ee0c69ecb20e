"""The dispatch of one job against a real Redis, with Sinch behind the httpx transport seam.

The end-to-end versions (real worker processes, the simulator over HTTP) are in test_pipeline.py;
these pin down each outcome class and each guard step by step.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import redis

from producers.producer import Enqueued, Producer, RequestRejected
from worker.dispatch import Dispatcher, DispatchPolicy
from worker.jobs import JobStore
from worker.ratelimit import RateLimiter, Scope
from worker.scheduling import reconcile_jobs, release_due_jobs
from worker.sending_window import KST, SendingWindow
from worker.settings import Settings
from worker.sinch import SinchClient
from worker.templates import TemplateRegistry

Handler = Callable[[httpx.Request], httpx.Response]
TEMPLATES = TemplateRegistry.from_mapping({"otp": {"text": "인증번호 #{code}", "language": "ko"}})
ALIMTALK = {"type": "alimtalk", "to": {"msisdn": "010-1234-5678"}, "authentication": True,
            "template": {"id": "otp", "parameters": {"code": "123456"}}}  # fmt: skip
FRIENDTALK = {"type": "friendtalk", "to": {"msisdn": "010-1234-5678"}, "message": {"text_message": {"text": "hi"}}}


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Sinch:
    """A scripted Sinch: answers from a list of handlers, records every messages:send body."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.script: list[Handler] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 3600})
        self.sent.append(json.loads(request.content))
        if self.script:
            return self.script.pop(0)(request)
        return httpx.Response(200, json={"message_id": f"msg-{len(self.sent)}", "accepted_time": "now"})


def answer(status: int, headers: dict[str, str] | None = None, body: Any = None) -> Handler:
    default = {"error": {"code": status, "message": "nope", "status": "INVALID_ARGUMENT", "details": []}}
    return lambda request: httpx.Response(status, headers=headers, json=body if body is not None else default)


def raise_(error: type[httpx.TransportError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)

    return handler


@pytest.fixture
def sinch() -> Sinch:
    return Sinch()


@pytest.fixture
def settings() -> Settings:
    return Settings(sinch_app_id="app-1", sinch_project_id="p", sinch_key_id="k", sinch_key_secret="s")  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 24, 12, 0, tzinfo=KST))


@pytest.fixture
def producer(redis_client: redis.Redis, settings: Settings, redis_server: Any, clock: FakeClock) -> Producer:
    broker = settings.model_copy(update={"redis_url": redis_server.url})
    return Producer(redis_client, settings=broker, templates=TEMPLATES, clock=clock)


@pytest.fixture
def dispatcher(redis_client: redis.Redis, sinch: Sinch, clock: FakeClock) -> Dispatcher:
    client = SinchClient(api_url="https://sinch.test", auth_url="https://sinch.test/oauth2/token", project_id="p",
                         key_id="k", key_secret="s", transport=httpx.MockTransport(sinch.handle))  # fmt: skip
    return Dispatcher(
        JobStore(redis_client),
        RateLimiter(redis_client, [Scope("app:app-1", 1000)]),
        client,
        DispatchPolicy(app_id="app-1", window=SendingWindow.parse("08:00-21:00"), max_attempts=3),
        templates=TEMPLATES,
        clock=clock,
        sleep=lambda seconds: None,
    )


def status(store: JobStore, job_id: str) -> str:
    job = store.get(job_id)
    assert job is not None
    return job.status


def test_alimtalk_goes_out_with_the_exact_body_and_ends_sent(
    producer: Producer, dispatcher: Dispatcher, sinch: Sinch
) -> None:
    job = producer.send(ALIMTALK)
    assert job.status == "queued"
    assert dispatcher.dispatch(job.id) == "sent"
    assert sinch.sent == [{
        "app_id": "app-1",
        "recipient": {"identified_by": {"channel_identities": [{"channel": "KAKAOTALK", "identity": "+821012345678"}]}},
        "message": {"template_message": {"channel_template": {"KAKAOTALK": {
            "template_id": "otp", "parameters": {"code": "123456"}}}}},
        "channel_priority_order": ["KAKAOTALK"],
        "channel_properties": {"KAKAOTALK_AUTHENTICATION": "true"},
        "message_metadata": job.id,
        "correlation_id": job.id,
    }]  # fmt: skip
    done = producer.get(job.id)
    assert done is not None and (done.status, done.message_id, done.attempts) == ("sent", "msg-1", 1)
    assert [event.to_status for event in done.events] == ["queued", "sending", "sending", "sent"]
    assert producer.store.job_for_message("msg-1") == job.id


def test_a_redelivered_message_never_sends_twice(producer: Producer, dispatcher: Dispatcher, sinch: Sinch) -> None:
    job = producer.send(ALIMTALK)
    assert dispatcher.dispatch(job.id) == "sent"
    assert dispatcher.dispatch(job.id) == "skipped: job is sent"
    assert len(sinch.sent) == 1


def test_5xx_is_retried_with_backoff_then_sent(
    producer: Producer, dispatcher: Dispatcher, sinch: Sinch, clock: FakeClock
) -> None:
    sinch.script = [answer(503), answer(500)]
    job = producer.send(ALIMTALK)
    assert dispatcher.dispatch(job.id) == "scheduled"
    parked = producer.get(job.id)
    assert parked is not None and parked.attempts == 1 and parked.not_before is not None
    assert 1 <= (parked.not_before - clock.now).total_seconds() <= 2  # base 2 s, jittered between half and full
    release_and_dispatch(producer.store, dispatcher, clock, 10)
    assert status(producer.store, job.id) == "scheduled"
    release_and_dispatch(producer.store, dispatcher, clock, 10)
    assert status(producer.store, job.id) == "sent" and len(sinch.sent) == 3


def test_retries_are_bounded_then_failed(
    producer: Producer, dispatcher: Dispatcher, sinch: Sinch, clock: FakeClock
) -> None:
    sinch.script = [answer(502)] * 3
    job = producer.send(ALIMTALK)
    dispatcher.dispatch(job.id)
    for _ in range(2):
        release_and_dispatch(producer.store, dispatcher, clock, 60)
    done = producer.get(job.id)
    assert done is not None and done.status == "failed" and done.delivery["code"] == "RETRIES_EXHAUSTED"
    assert done.attempts == 3 and len(sinch.sent) == 3


@pytest.mark.parametrize(("headers", "least", "most"), [({"Retry-After": "30"}, 30, 31), ({}, 1, 2)])
def test_429_honours_retry_after_and_slows_every_worker(
    producer: Producer, dispatcher: Dispatcher, sinch: Sinch, headers: dict[str, str], least: float, most: float
) -> None:
    sinch.script = [answer(429, headers)]
    job = producer.send(ALIMTALK)
    assert dispatcher.dispatch(job.id) == "scheduled"
    parked = producer.get(job.id)
    assert parked is not None and parked.not_before is not None
    assert least <= (parked.not_before - dispatcher.clock()).total_seconds() <= most
    decision = dispatcher.limiter.acquire()  # any worker sharing the app's limit now waits
    assert not decision.allowed and decision.wait_seconds > 0.5


def test_400_fails_with_sinch_reason(producer: Producer, dispatcher: Dispatcher, sinch: Sinch) -> None:
    sinch.script = [answer(400)]
    job = producer.send(ALIMTALK)
    assert dispatcher.dispatch(job.id) == "failed"
    done = producer.get(job.id)
    assert done is not None and done.delivery["code"] == "INVALID_ARGUMENT" and "nope" in done.delivery["description"]
    assert done.parameters_redacted and done.request["template"]["parameters"] == {}


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.RemoteProtocolError])
def test_no_answer_is_unknown_and_never_resent(
    producer: Producer, dispatcher: Dispatcher, sinch: Sinch, clock: FakeClock, error: type[httpx.TransportError]
) -> None:
    sinch.script = [raise_(error)]
    job = producer.send(ALIMTALK)
    assert dispatcher.dispatch(job.id) == "unknown"
    assert dispatcher.dispatch(job.id) == "skipped: job is unknown"
    clock.advance(3600)
    report = reconcile_jobs(producer.store, lambda job_id, eta: None, now=clock.now, stale_seconds=60,
                            unknown_timeout=7200)  # fmt: skip
    assert report.republished == [] and status(producer.store, job.id) == "unknown"
    assert len(sinch.sent) == 1


def test_connect_error_is_retried(producer: Producer, dispatcher: Dispatcher, sinch: Sinch) -> None:
    sinch.script = [raise_(httpx.ConnectError)]
    job = producer.send(ALIMTALK)
    assert dispatcher.dispatch(job.id) == "scheduled"


def test_friendtalk_outside_the_window_parks_until_8_kst(
    producer: Producer, dispatcher: Dispatcher, sinch: Sinch, clock: FakeClock
) -> None:
    clock.now = datetime(2026, 11, 24, 20, 59, 59, tzinfo=KST)
    job = producer.send(FRIENDTALK)  # accepted in the window; by the time a worker takes it, the window closed
    clock.advance(1)
    assert dispatcher.dispatch(job.id) == "scheduled"
    parked = producer.get(job.id)
    assert parked is not None and parked.not_before == datetime(2026, 11, 25, 8, 0, tzinfo=KST)
    clock.now = datetime(2026, 11, 25, 7, 59, 59, tzinfo=KST)
    assert release_due_jobs(producer.store, lambda job_id, eta: None, now=clock.now, max_queue_depth=100,
                            horizon_seconds=0) == 0  # fmt: skip
    release_and_dispatch(producer.store, dispatcher, clock, 1)
    assert status(producer.store, job.id) == "sent" and len(sinch.sent) == 1


def test_expired_and_cancelled_jobs_are_never_sent(
    producer: Producer, dispatcher: Dispatcher, sinch: Sinch, clock: FakeClock
) -> None:
    expiring = producer.send({**ALIMTALK, "expires_at": (clock.now + timedelta(seconds=30)).isoformat()})
    clock.advance(31)
    assert dispatcher.dispatch(expiring.id) == "expired"
    cancelled = producer.send(ALIMTALK)
    assert producer.cancel(cancelled.id).ok
    assert dispatcher.dispatch(cancelled.id) == "skipped: job is cancelled"
    assert sinch.sent == []


def test_send_at_in_the_future_is_scheduled_by_the_producer(producer: Producer, clock: FakeClock) -> None:
    later = clock.now + timedelta(hours=2)
    job = producer.send({**ALIMTALK, "send_at": later.isoformat()})
    assert job.status == "scheduled" and job.not_before == later


def test_producer_rejects_broken_requests_and_saves_nothing(producer: Producer, redis_client: redis.Redis) -> None:
    with pytest.raises(RequestRejected) as rejected:
        producer.send({**FRIENDTALK, "message": {"text_message": {"text": "x" * 1001}}})
    assert [violation.rule for violation in rejected.value.violations] == ["text.length"]
    assert redis_client.dbsize() == 0


def test_send_many_reports_each_request(producer: Producer) -> None:
    results = producer.send_many([ALIMTALK, {"type": "nope"}, {**ALIMTALK, "idempotency_key": "a"},
                                  {**ALIMTALK, "idempotency_key": "a"}])  # fmt: skip
    assert [type(result).__name__ for result in results] == ["Enqueued", "RequestRejected", "Enqueued", "Enqueued"]
    assert results[2].id == results[3].id  # type: ignore[union-attr]
    assert [getattr(result, "created", None) for result in results] == [True, None, True, False]


def test_a_worker_that_died_before_sending_is_repaired_and_after_sending_is_unknown(
    producer: Producer, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    before, after = producer.send(ALIMTALK), producer.send(ALIMTALK)
    store = producer.store
    store.transition(before.id, ["queued"], "sending", now=clock.now, reason="claimed", fields={"owner": "dead"})
    store.transition(after.id, ["queued"], "sending", now=clock.now, reason="claimed", fields={"owner": "dead"})
    store.transition(after.id, ["sending"], "sending", now=clock.now, reason="handed to Sinch", owner="dead",
                     fields={"http_started_at": 1})  # fmt: skip
    republished: list[str] = []
    report = reconcile_jobs(store, lambda job_id, eta: republished.append(job_id), now=clock.now + timedelta(
        seconds=120), stale_seconds=60, unknown_timeout=3600)  # fmt: skip
    assert (report.requeued, report.unknown, republished) == ([before.id], [after.id], [before.id])
    assert dispatcher.dispatch(before.id) == "sent"
    assert status(store, after.id) == "unknown"


def release_and_dispatch(store: JobStore, dispatcher: Dispatcher, clock: FakeClock, seconds: float) -> None:
    clock.advance(seconds)
    released: list[str] = []
    release_due_jobs(store, lambda job_id, eta: released.append(job_id), now=clock.now, max_queue_depth=100)
    for job_id in released:
        dispatcher.dispatch(job_id)


def reconciler_runs_meanwhile(store: JobStore, clock: FakeClock, then: Handler) -> Handler:
    """Sinch is slow to answer: meanwhile the reconciler judges the send stale and makes the job `unknown`."""

    def handler(request: httpx.Request) -> httpx.Response:
        report = reconcile_jobs(store, lambda job_id, eta: None, now=clock.now + timedelta(seconds=120),
                                stale_seconds=60, unknown_timeout=3600)  # fmt: skip
        assert len(report.unknown) == 1
        return then(request)

    return handler


@pytest.mark.parametrize(("answer_", "outcome"), [(answer(400), "failed"), (answer(503), "scheduled")])
def test_the_owner_still_settles_a_job_the_reconciler_made_unknown_meanwhile(
    producer: Producer, dispatcher: Dispatcher, sinch: Sinch, clock: FakeClock, answer_: Handler, outcome: str
) -> None:
    sinch.script = [reconciler_runs_meanwhile(producer.store, clock, answer_)]
    job = producer.send(ALIMTALK)
    assert dispatcher.dispatch(job.id) == outcome
    assert status(producer.store, job.id) == outcome and producer.store.count_in("unknown") == 0


def test_429s_do_not_use_up_the_attempts(
    producer: Producer, dispatcher: Dispatcher, sinch: Sinch, clock: FakeClock
) -> None:
    dispatcher.limiter.max_pause_seconds = 1e-6  # the cluster-wide pause runs on Redis' clock, not the test's
    sinch.script = [answer(429)] * 5 + [answer(503)]  # max_attempts is 3: five 429s and a 503 are not three refusals
    job = producer.send(ALIMTALK)
    dispatcher.dispatch(job.id)
    for _ in range(6):
        release_and_dispatch(producer.store, dispatcher, clock, 700)
    done = producer.get(job.id)
    assert done is not None and (done.status, done.attempts, done.throttled) == ("sent", 7, 5)


def test_a_429_storm_is_bounded_by_time(
    producer: Producer, dispatcher: Dispatcher, sinch: Sinch, clock: FakeClock
) -> None:
    dispatcher.policy = dataclasses.replace(dispatcher.policy, throttle_timeout=1800)
    dispatcher.limiter.max_pause_seconds = 1e-6
    sinch.script = [answer(429)] * 10
    job = producer.send(ALIMTALK)
    dispatcher.dispatch(job.id)
    while status(producer.store, job.id) == "scheduled":
        release_and_dispatch(producer.store, dispatcher, clock, 700)
    done = producer.get(job.id)
    assert done is not None and done.status == "failed" and done.delivery["code"] == "THROTTLED"
    assert done.throttled_since is not None
    assert 1800 <= (done.updated_at - done.throttled_since).total_seconds() < 1800 + 700


@pytest.mark.parametrize("retry_after", ["999999999", "9" * 400])
def test_a_huge_retry_after_is_clamped(
    producer: Producer, dispatcher: Dispatcher, sinch: Sinch, clock: FakeClock, retry_after: str
) -> None:
    sinch.script = [answer(429, {"Retry-After": retry_after})]
    job = producer.send(ALIMTALK)
    assert dispatcher.dispatch(job.id) == "scheduled"
    parked = producer.get(job.id)
    assert parked is not None and parked.not_before is not None
    assert (parked.not_before - clock.now).total_seconds() <= 300  # KAKAO_DISPATCH_MAX_RETRY_AFTER
    decision = dispatcher.limiter.acquire()
    assert not decision.allowed and 200 < decision.wait_seconds <= 300


def test_the_not_before_a_producer_is_told_is_the_one_stored(producer: Producer, clock: FakeClock) -> None:
    send_at = clock.now + timedelta(hours=1, microseconds=123_456)
    [enqueued] = producer.send_many([{**ALIMTALK, "send_at": send_at.isoformat()}])
    assert isinstance(enqueued, Enqueued) and enqueued.not_before is not None
    stored = producer.get(enqueued.id)
    assert stored is not None and stored.not_before == enqueued.not_before == producer.store.next_due()
    assert timedelta(0) <= send_at - enqueued.not_before < timedelta(milliseconds=1)
