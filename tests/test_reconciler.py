"""The reconciler and the releaser against a real Redis: repairs are decided atomically and never send twice."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import pytest
import redis
from pydantic import ValidationError
from typer.testing import CliRunner

from producers.cli import app as cli
from worker.jobs import JobStore, NewJob, Transition, new_job_id
from worker.scheduling import reconcile_jobs, release_due_jobs
from worker.send_request import SendRequest
from worker.sending_window import KST
from worker.settings import Settings

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=KST)
STALE = 60.0
REQUEST = SendRequest.model_validate(
    {"type": "alimtalk", "to": {"msisdn": "010-1234-5678"}, "template": {"id": "otp", "parameters": {"code": "1"}}}
)


class Published(list[tuple[str, datetime | None]]):
    def __call__(self, job_id: str, eta: datetime | None) -> None:
        self.append((job_id, eta))

    @property
    def ids(self) -> list[str]:
        return [job_id for job_id, _ in self]


def queued_job(store: JobStore, at: datetime = NOW) -> str:
    job_id, _ = store.create(NewJob(new_job_id(), REQUEST, "alimtalk", "KAKAOTALK", "+821012345678", None, None), at)
    return job_id


def scheduled_job(store: JobStore, due: datetime) -> str:
    job_id, _ = store.create(
        NewJob(new_job_id(), REQUEST, "alimtalk", "KAKAOTALK", "+821012345678", None, due), due - timedelta(minutes=1)
    )
    return job_id


def claimed_job(store: JobStore, owner: str = "w1", at: datetime = NOW) -> str:
    job_id = queued_job(store, at)
    assert store.transition(job_id, ["queued"], "sending", now=at, reason="claimed", fields={"owner": owner}).ok
    return job_id


def hand_over(store: JobStore, job_id: str, owner: str = "w1") -> Transition:
    """What the dispatcher does just before its HTTP request: only the owner of a `sending` job may."""
    return store.transition(job_id, ["sending"], "sending", now=NOW, reason="handed to Sinch", owner=owner,
                            fields={"http_started_at": 1})  # fmt: skip


def reconcile(store: JobStore, publish: Published, at: datetime, max_requeues: int = 5) -> object:
    return reconcile_jobs(store, publish, now=at, stale_seconds=STALE, unknown_timeout=86400, max_requeues=max_requeues)


def status(store: JobStore, job_id: str) -> str:
    job = store.get(job_id)
    assert job is not None
    return job.status


class WorkerHandsOverMidReconcile(JobStore):
    """A store on which the job's (slow, but alive) worker hands its request to Sinch between the reconciler's
    look at the job and the reconciler's move: the interleaving that used to send a job twice."""

    def __init__(self, client: redis.Redis, owner: str) -> None:
        super().__init__(client, retention_seconds=3600)
        self.owner = owner
        self.handed_over: list[bool] = []

    def _worker_runs(self, job_id: str) -> None:
        if not self.handed_over:
            self.handed_over.append(hand_over(self, job_id, self.owner).ok)

    def transition(self, job_id: str, expected: Iterable[str], new_status: str, **kwargs: object) -> Transition:
        if new_status in ("queued", "unknown") and "sending" in expected:  # the reconciler's move
            self._worker_runs(job_id)
        return super().transition(job_id, expected, new_status, **kwargs)  # type: ignore[arg-type]

    def settle_stale_sending(self, job_id: str, **kwargs: object) -> str:
        self._worker_runs(job_id)
        return super().settle_stale_sending(job_id, **kwargs)  # type: ignore[arg-type]


def test_a_request_handed_to_sinch_while_the_reconciler_looks_is_never_requeued(redis_client: redis.Redis) -> None:
    store = WorkerHandsOverMidReconcile(redis_client, owner="w1")
    job_id = claimed_job(store)
    published = Published()
    reconcile(store, published, NOW + timedelta(seconds=STALE + 1))
    assert store.handed_over == [True]  # the worker really did hand it over in between
    assert status(store, job_id) == "unknown" and published == []  # never published for a second send


def test_a_stale_claim_that_never_left_goes_back_to_queued_and_is_published(store: JobStore) -> None:
    job_id = claimed_job(store)
    published = Published()
    report = reconcile(store, published, NOW + timedelta(seconds=STALE + 1))
    assert report.requeued == [job_id] and published.ids == [job_id]  # type: ignore[attr-defined]
    job = store.get(job_id)
    assert job is not None and (job.status, job.owner, job.requeues) == ("queued", None, 1)
    assert not hand_over(store, job_id).ok  # the vanished owner can no longer hand it over


def test_a_claim_taken_again_since_the_reconciler_looked_is_left_alone(store: JobStore) -> None:
    job_id = claimed_job(store, owner="old")
    later = NOW + timedelta(seconds=STALE + 1)
    assert store.settle_stale_sending(job_id, claimed_before=later - timedelta(seconds=STALE), now=later,
                                      max_requeues=5) == "requeued"  # fmt: skip
    store.transition(job_id, ["queued"], "sending", now=later, reason="claimed", fields={"owner": "new"})
    # A reconciler that listed the id before the new claim decides with the old cut-off: nothing happens.
    again = store.settle_stale_sending(job_id, claimed_before=later - timedelta(seconds=STALE), now=later,
                                       max_requeues=5)  # fmt: skip
    assert again == "skipped" and status(store, job_id) == "sending"
    assert hand_over(store, job_id, "new").ok


def test_stale_queued_jobs_are_republished_however_full_the_queue_once_per_stale_period(store: JobStore) -> None:
    stuck = queued_job(store)
    fresh = queued_job(store, NOW + timedelta(seconds=STALE))
    published = Published()
    first = NOW + timedelta(seconds=STALE + 1)
    assert reconcile(store, published, first).republished == [stuck]  # type: ignore[attr-defined]
    reconcile(store, published, first + timedelta(seconds=10))  # the next tick: not again
    assert published.ids == [stuck]
    reconcile(store, published, first + timedelta(seconds=STALE + 1))  # a stale period later: again, with `fresh`
    assert sorted(published.ids) == sorted([stuck, stuck, fresh])
    assert status(store, stuck) == "queued"


def test_a_job_whose_worker_keeps_vanishing_fails_with_requeue_limit(store: JobStore) -> None:
    job_id = claimed_job(store)
    at = NOW
    for _ in range(3):
        at += timedelta(seconds=STALE + 1)
        assert reconcile(store, Published(), at, max_requeues=3).requeued == [job_id]  # type: ignore[attr-defined]
        store.transition(job_id, ["queued"], "sending", now=at, reason="claimed", fields={"owner": "w"})
    at += timedelta(seconds=STALE + 1)
    published = Published()
    report = reconcile(store, published, at, max_requeues=3)
    assert report.requeue_limit == [job_id] and published == []  # type: ignore[attr-defined]
    job = store.get(job_id)
    assert job is not None and job.status == "failed" and job.delivery["code"] == "REQUEUE_LIMIT"
    assert job.events[-1].reason.startswith("requeue_limit") and job.parameters_redacted
    requeues = [event.reason for event in job.events if event.to_status == "queued"][1:]
    assert requeues == [f"the worker vanished before sending (requeue {n} of 3)" for n in (1, 2, 3)]


def test_receipts_that_waited_resolve_the_job_the_reconciler_makes_unknown(store: JobStore) -> None:
    job_id = claimed_job(store)
    hand_over(store, job_id)
    early = {"status": "DELIVERED", "message_id": "m-1", "code": "", "sub_code": "", "description": ""}
    assert store.apply_receipt(job_id, early, NOW)[0] == "pending"
    report = reconcile(store, Published(), NOW + timedelta(seconds=STALE + 1))
    assert report.unknown == [job_id]  # type: ignore[attr-defined]
    job = store.get(job_id)
    assert job is not None and (job.status, job.message_id) == ("delivered", "m-1")
    assert store.count_in("unknown") == 0


def test_the_releaser_gives_every_job_its_due_time_as_eta(store: JobStore) -> None:
    past, soon = NOW - timedelta(seconds=5), NOW + timedelta(milliseconds=400)
    for due in (past, soon):
        scheduled_job(store, due)
    published = Published()
    assert release_due_jobs(store, published, now=NOW, max_queue_depth=100) == 2
    assert sorted(eta for _, eta in published if eta is not None) == [past, soon]


def test_the_releaser_counts_queued_jobs_not_broker_messages(store: JobStore) -> None:
    for _ in range(3):
        queued_job(store)  # queued (a worker may hold their messages reserved: the broker list looks empty)
    due = NOW - timedelta(seconds=1)
    for _ in range(5):
        scheduled_job(store, due)
    assert release_due_jobs(store, Published(), now=NOW, max_queue_depth=5) == 2
    assert store.count_in("queued") == 5 and store.count_in("scheduled") == 3


def test_a_stale_threshold_below_twice_the_task_time_limit_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least twice KAKAO_DISPATCH_TASK_TIME_LIMIT"):
        Settings(task_time_limit=120, stale_seconds=200)  # type: ignore[call-arg]
    assert Settings(task_time_limit=120, stale_seconds=240).stale_seconds == 240  # type: ignore[call-arg]
    assert Settings().stale_seconds >= 2 * Settings().task_time_limit


def test_the_command_line_refuses_it_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAKAO_DISPATCH_STALE_SECONDS", "100")
    result = CliRunner().invoke(cli, ["gateway", "--port", "0"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "kakao-dispatch: bad environment setting KAKAO_DISPATCH_STALE_SECONDS: 100 s is too short: it must be at "
        "least twice KAKAO_DISPATCH_TASK_TIME_LIMIT (120 s)"
    ]
