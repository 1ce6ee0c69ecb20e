"""Fixtures: one simulator over real HTTP (uvicorn in a thread) with a webhook receiver and a media server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sim_client import NOON_KST, SECRET, TEMPLATES, SimClient
from sim_servers import MediaServer, WebhookReceiver

from simulator import BackgroundSimulator, SimulatorConfig


@pytest.fixture(scope="session")
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


@pytest.fixture(scope="session")
def media() -> Iterator[MediaServer]:
    server = MediaServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def simulator(receiver: WebhookReceiver) -> Iterator[BackgroundSimulator]:
    config = SimulatorConfig(
        templates=TEMPLATES,
        webhook_url=receiver.url + "/sinch",
        webhook_secret=SECRET,
        rate_limit=0,
        receipt_delay_ms=(0, 0),
        webhook_retry_base_s=0.05,
        webhook_max_attempts=4,
        seed=1234,
    )
    with BackgroundSimulator(config) as running:
        yield running


@pytest.fixture
def sim(simulator: BackgroundSimulator, receiver: WebhookReceiver) -> Iterator[SimClient]:
    """The shared simulator, reset, with its clock at noon KST (FriendTalk window open)."""
    client = SimClient(simulator.url)
    assert client.http.post("/_sim/reset").status_code == 200
    receiver.clear()
    client.clock(NOON_KST)
    yield client
    client.close()


@pytest.fixture
def start_simulator() -> Iterator[Any]:
    """Start extra simulators with their own configuration; each is stopped after the test."""
    started: list[BackgroundSimulator] = []
    clients: list[SimClient] = []

    def start(**config: Any) -> SimClient:
        running = BackgroundSimulator(SimulatorConfig(**config)).start()
        started.append(running)
        client = SimClient(running.url)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()
    for running in started:
        running.stop()
