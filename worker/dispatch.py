"""The dispatch of one job: claim it, check it again, wait for its time and the rate limit, send it, classify.

The steps, in order (issue 4): load → claim (`queued → sending` with an owner token) → re-check the
rules → FriendTalk window and `send_at` → `expires_at` → cluster-wide rate limit → `messages:send`
→ `sent`, or `failed` (permanent), `scheduled` again (retryable, with backoff), `unknown` (ambiguous).
A job that is not `queued` when its message arrives is left alone: that is a redelivery, a
duplicate publish or a job someone else holds, and it must not be sent twice.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from worker import metrics
from worker.channels import SessionLookup
from worker.jobs import Job, JobStore, new_owner_token, to_ms
from worker.ratelimit import RateLimiter, clamp_pause
from worker.rules import MediaLookup
from worker.send_request import SendRequest
from worker.sending_window import SendingWindow
from worker.sinch import AmbiguousError, PermanentError, RateLimitedError, RetryableError, SinchClient, SinchError
from worker.templates import TemplateRegistry
from worker.verdict import CheckContext, check_request

log = logging.getLogger(__name__)

#: Rate-limit waits up to this long happen in place; longer ones park the job in the deferral set.
MAX_WAIT_IN_PLACE = 1.0
#: When Sinch answers 429 without Retry-After, every worker pauses this long.
DEFAULT_429_PAUSE = 1.0
#: Where a claimed job can be when its owner learns the outcome: the reconciler may have judged the send stale and
#: made it `unknown` while the owner still waited for Sinch. Only the owner token's holder may move it on.
OWNED = ("sending", "unknown")


@dataclass(frozen=True)
class DispatchPolicy:
    app_id: str
    window: SendingWindow
    max_attempts: int = 8  # attempts Sinch failed or refused; its 429s are bounded by `throttle_timeout` instead
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 600.0
    max_retry_after: float = 300.0  # Sinch's Retry-After is honoured up to this many seconds
    throttle_timeout: float = 86400.0  # a job answered 429 for this long since its first 429 is failed (THROTTLED)

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter (half to full of base·2^(attempt-1)), never before Retry-After (clamped)."""
        ceiling = min(self.retry_max_seconds, self.retry_base_seconds * 2 ** max(attempt - 1, 0))
        delay = random.uniform(ceiling / 2, ceiling)
        return max(delay, clamp_pause(retry_after or 0.0, self.max_retry_after))


class Dispatcher:
    """Sends jobs; one per worker process. Its collaborators are the seams tests use."""

    def __init__(
        self,
        store: JobStore,
        limiter: RateLimiter,
        sinch: SinchClient,
        policy: DispatchPolicy,
        *,
        templates: TemplateRegistry | None = None,
        media: MediaLookup | None = None,
        sessions: SessionLookup | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.limiter = limiter
        self.sinch = sinch
        self.policy = policy
        self.templates = templates
        self.media = media
        self.sessions = sessions
        self.clock = clock
        self.sleep = sleep

    def dispatch(self, job_id: str) -> str:
        """Take one job as far as it can go now; returns what happened, for logs."""
        job = self.store.get(job_id, with_events=False)
        if job is None:
            return "missing"
        if job.status != "queued":
            return f"skipped: job is {job.status}"
        now = self.clock()
        if job.expires_at is not None and job.expires_at <= now:
            self.store.transition(job_id, ["queued"], "expired", now=now, reason="expires_at passed before sending")
            return "expired"
        owner = new_owner_token()
        claim = self.store.transition(
            job_id,
            ["queued"],
            "sending",
            now=now,
            reason="claimed",
            fields={"owner": owner},
            delete=["http_started_at"],
        )
        if not claim.ok:
            return f"skipped: job became {claim.previous}"
        return self._send_claimed(job, owner)

    def _send_claimed(self, job: Job, owner: str) -> str:
        now = self.clock()
        verdict = check_request(
            _as_decided(job),
            CheckContext(
                now=now,
                window=self.policy.window,
                templates=self.templates,
                media=self.media,
                sessions=self.sessions,
                app_id=self.policy.app_id,
                job_id=job.id,
            ),
        )
        if not verdict.accepted:
            rules = ", ".join(sorted({violation.rule for violation in verdict.violations}))
            self._finish(
                job,
                owner,
                "rejected",
                f"rules broken at send time: {rules}",
                {
                    "delivery_code": "REJECTED",
                    "delivery_description": "; ".join(violation.message for violation in verdict.violations)[:1000],
                },
            )
            return "rejected"
        if verdict.not_before is not None:
            return self._park(job, owner, verdict.not_before, "waiting for send_at or the FriendTalk window")
        assert verdict.body is not None

        waited = 0.0
        while not (decision := self.limiter.acquire()).allowed:
            if decision.wait_seconds > MAX_WAIT_IN_PLACE or waited + decision.wait_seconds > 2 * MAX_WAIT_IN_PLACE:
                due = self.clock() + timedelta(seconds=decision.wait_seconds * random.uniform(1.0, 1.2))
                metrics.rate_limit_parked()
                return self._park(job, owner, due, "rate limit")
            self.sleep(decision.wait_seconds)
            metrics.rate_limit_waited(decision.wait_seconds)
            waited += decision.wait_seconds

        started = self.store.transition(
            job.id, ["sending"], "sending", now=self.clock(), reason="handed to Sinch", owner=owner,
            fields={"http_started_at": int(time.time() * 1000)},
        )  # fmt: skip
        if not started.ok:
            return f"skipped: job became {started.previous} before the request"
        attempt = job.attempts + 1
        try:
            result = self.sinch.send_message(verdict.body)
        except PermanentError as error:
            code = error.status or str(error.status_code or "")
            why = f"Sinch refused the request (HTTP {error.status_code})"
            return self._fail(job, owner, code, why, error, {"attempts": attempt})
        except RetryableError as error:
            if isinstance(error, RateLimitedError):
                self.limiter.slow_down(error.retry_after or DEFAULT_429_PAUSE)
            return self._retry_later(job, owner, attempt, error)
        except AmbiguousError as error:
            unknown = self.store.mark_unknown(
                job.id, owner=owner, now=self.clock(), reason=f"no answer from Sinch: {error}"[:300],
                fields={"attempts": attempt, "delivery_description": str(error)[:1000]},
            )  # fmt: skip
            if not unknown.ok:
                return f"no answer from Sinch, but the job had become {unknown.previous}"
            if unknown.previous != "unknown":  # a receipt that overtook the answer resolved it at once
                return f"unknown, resolved by an early receipt: {unknown.previous}"
            return "unknown"
        self.store.link_message(result.message_id, job.id)
        sent = self.store.mark_sent(job.id, owner=owner, message_id=result.message_id, attempts=attempt,
                                    now=self.clock())  # fmt: skip
        return "sent" if sent.ok else f"sent, but the job had become {sent.previous}"

    def _retry_later(self, job: Job, owner: str, attempt: int, error: RetryableError) -> str:
        now = self.clock()
        fields: dict[str, str | int] = {"attempts": attempt}
        throttled = job.throttled
        if isinstance(error, RateLimitedError):
            # A 429 says nothing against the request: it does not use up an attempt. A storm is bounded by time.
            throttled += 1
            since = job.throttled_since or now
            fields |= {"throttled": throttled, "throttled_since": to_ms(since)}
            if now - since >= timedelta(seconds=self.policy.throttle_timeout):
                why = f"rate limited by Sinch since {since.isoformat()}: {error}"
                return self._fail(job, owner, "THROTTLED", why, error, fields)
        elif attempt - throttled >= self.policy.max_attempts:
            why = f"gave up after {attempt - throttled} attempts: {error}"
            return self._fail(job, owner, "RETRIES_EXHAUSTED", why, error, fields)
        delay = self.policy.backoff(attempt, error.retry_after)
        due = now + timedelta(seconds=delay)
        return self._park(job, owner, due, f"retry {attempt + 1} in {delay:.1f} s after: {error}"[:300], fields)

    def _park(self, job: Job, owner: str, due: datetime, reason: str, extra: dict[str, str | int] | None = None) -> str:
        """Back to the deferral set until `due`, or `expired` when that is after `expires_at`.

        From `sending`, or from `unknown` when the reconciler judged the send stale while its owner was still
        waiting for Sinch's answer: the owner's answer (a retryable refusal) is the real outcome.
        """
        now = self.clock()
        fields: dict[str, str | int] = {"not_before": to_ms(due), **(extra or {})}
        if job.expires_at is not None and due >= job.expires_at:
            self._finish(job, owner, "expired", f"would wait until {due.isoformat()}, after expires_at", fields)
            return "expired"
        moved = self.store.transition(
            job.id, OWNED, "scheduled", now=now, owner=owner, due=due, reason=reason, fields=fields,
            delete=["http_started_at"],
        )  # fmt: skip
        return "scheduled" if moved.ok else f"skipped: job became {moved.previous}"

    def _fail(self, job: Job, owner: str, code: str, reason: str, error: SinchError, fields: dict[str, Any]) -> str:
        """`failed` with Sinch's error as the delivery code and description."""
        failure = {**fields, "delivery_code": code, "delivery_description": str(error)[:1000]}
        self._finish(job, owner, "failed", reason[:300], failure)
        return "failed"

    def _finish(self, job: Job, owner: str, status: str, reason: str, fields: dict[str, Any]) -> None:
        """A final outcome the owner learnt (also after the reconciler made the job `unknown` meanwhile)."""
        self.store.transition(job.id, OWNED, status, now=self.clock(), owner=owner, reason=reason, fields=fields)


def _as_decided(job: Job) -> SendRequest:
    """The request as its kind was decided at enqueue time (an `auto` job keeps the choice it got)."""
    request = job.send_request()
    if request.type != "auto":
        return request
    update: dict[str, Any] = {"type": job.type}
    if job.type == "consultation" and job.contact_id:
        update["to"] = request.to.model_copy(update={"msisdn": None, "contact_id": job.contact_id})
    return request.model_copy(update=update)
