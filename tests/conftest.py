"""Shared fixtures: a private redis-server per test session (never the shared one on port 6379)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from system import Pipeline, system_under_test

from worker.jobs import JobStore
from worker.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def store(redis_client: redis.Redis) -> JobStore:
    """A job store on the test's database, keeping finished records for an hour."""
    return JobStore(redis_client, retention_seconds=3600)


@pytest.fixture
def pipeline(redis_server: RedisServer, tmp_path: Path) -> Iterator[Pipeline]:
    """A whole system on the session's redis-server: simulator now, workers, beat and gateway on demand."""
    with system_under_test(redis_server, tmp_path) as system:
        yield system
