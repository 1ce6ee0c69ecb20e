"""The cluster-wide GCRA: spacing, several scopes at once, and the slow-down a 429 imposes on everyone."""

from __future__ import annotations

import time

import redis

from worker.ratelimit import RateLimiter, Scope


def test_requests_are_spaced_one_interval_apart(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, [Scope("app:a", 10)])
    assert limiter.acquire().allowed
    refused = limiter.acquire()
    assert not refused.allowed and 0.05 < refused.wait_seconds <= 0.1
    time.sleep(refused.wait_seconds)
    assert limiter.acquire().allowed


def test_burst_tolerance_allows_that_many_extra(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, [Scope("app:b", 10)], burst=3)
    assert [limiter.acquire().allowed for _ in range(5)] == [True, True, True, True, False]


def test_every_scope_must_allow(redis_client: redis.Redis) -> None:
    app_one = RateLimiter(redis_client, [Scope("app:one", 1000), Scope("project:p", 2)])
    app_two = RateLimiter(redis_client, [Scope("app:two", 1000), Scope("project:p", 2)])
    assert app_one.acquire().allowed
    decision = app_two.acquire()  # its own app has room, the shared project does not
    assert not decision.allowed and 0.4 < decision.wait_seconds <= 0.5


def test_slow_down_stops_every_limiter_sharing_the_scope(redis_client: redis.Redis) -> None:
    worker_one = RateLimiter(redis_client, [Scope("app:c", 100)])
    worker_two = RateLimiter(redis_client, [Scope("app:c", 100)])
    worker_one.slow_down(2.0)
    decision = worker_two.acquire()
    assert not decision.allowed and 1.9 < decision.wait_seconds <= 2.0


def test_a_huge_or_infinite_retry_after_pauses_the_cluster_at_most_the_maximum(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, [Scope("app:d", 100)], max_pause_seconds=300)
    for seconds in (86400.0 * 365, float("inf"), float("nan")):
        limiter.slow_down(seconds)
        decision = limiter.acquire()
        assert not decision.allowed and 299 < decision.wait_seconds <= 300
