"""A whole kakao-dispatch system for end-to-end tests: its Redis database, the simulator, worker and beat processes."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis
import uvicorn
from celery_processes import CeleryProcess, beat_process, worker_process

from producers.producer import Producer
from simulator.config import SimulatorConfig
from simulator.runner import BackgroundSimulator
from simulator.templates import TemplateRegistry as SimulatorTemplates
from worker.jobs import Job, JobStore
from worker.redis_server import RedisServer
from worker.sending_window import KST
from worker.settings import Settings

#: The templates KakaoTalk (the simulator) has approved for the end-to-end tests.
KAKAOTALK_TEMPLATES = {
    "sinch_template_example": {"text": "인증번호는 [#{code}] 입니다. 타인에게 알려주지 마세요.", "language": "ko"},
    "package_template": {"text": "고객님의 택배(#{package_id})가 배송을 시작했습니다.", "language": "ko"},
    "order_shipped": {"text": "주문이 출발했습니다: #{order_id}", "language": "ko"},
}


def window_around(now: datetime, *, opens_in: float = -3600, lasts: float = 7200) -> str:
    """A FriendTalk window (HH:MM:SS KST) opening `opens_in` seconds from now."""
    start = (now + timedelta(seconds=opens_in)).astimezone(KST)
    end = start + timedelta(seconds=lasts)
    return f"{start:%H:%M:%S}-{end:%H:%M:%S}"


class Pipeline:
    """One test's system: its Redis database, a simulator, workers and beat started on demand."""

    def __init__(self, server: RedisServer, simulator: BackgroundSimulator, tmp_path: Path) -> None:
        self.simulator = simulator
        self.tmp_path = tmp_path
        config = simulator.config
        self.env_values = {
            "KAKAO_DISPATCH_REDIS_URL": server.url,
            "SINCH_API_URL": simulator.url,
            "SINCH_AUTH_URL": simulator.url + "/oauth2/token",
            "SINCH_PROJECT_ID": config.project_id,
            "SINCH_APP_ID": config.app_id,
            "SINCH_KEY_ID": config.key_id,
            "SINCH_KEY_SECRET": config.key_secret,
            "KAKAO_DISPATCH_RATE_LIMIT": "1000",
            "KAKAO_DISPATCH_FRIENDTALK_WINDOW": window_around(datetime.now(UTC)),
            "KAKAO_DISPATCH_RETRY_BASE_SECONDS": "0.5",
            "KAKAO_DISPATCH_VISIBILITY_TIMEOUT": "10",
            "KAKAO_DISPATCH_TASK_TIME_LIMIT": "3",
            "KAKAO_DISPATCH_STALE_SECONDS": "6",
            "KAKAO_DISPATCH_SINCH_TIMEOUT": "2",
        }
        self.processes: list[CeleryProcess] = []
        self._gateway: ThreadedServer | None = None
        self.redis = redis.Redis.from_url(server.url, decode_responses=True)
        self._producer: Producer | None = None

    def configure(self, **values: str) -> None:
        """Set environment variables for the processes started after this call (and the producer)."""
        assert not self.processes and self._producer is None, "configure before starting anything"
        self.env_values.update(values)

    @property
    def env(self) -> dict[str, str]:
        base = {key: value for key, value in os.environ.items() if not key.startswith(("SINCH_", "KAKAO_"))}
        return {**base, **self.env_values, "PYTHONUNBUFFERED": "1"}

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            settings = Settings(**self.env_values)  # type: ignore[arg-type]
            self._producer = Producer(self.redis, settings=settings)
        return self._producer

    @property
    def store(self) -> JobStore:
        return self.producer.store

    def start_worker(self, name: str = "w1", concurrency: int = 2) -> CeleryProcess:
        process = worker_process(self.env, self.tmp_path / f"{name}.log", name=name, concurrency=concurrency)
        self.processes.append(process)
        return process.start()

    def start_beat(self) -> CeleryProcess:
        process = beat_process(self.env, self.tmp_path / "beat.log", self.tmp_path)
        self.processes.append(process)
        return process.start()

    def sim(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, self.simulator.url + path, timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def sends_by_job(self) -> Counter[str]:
        """How many send requests the simulator received for each job id (accepted or not)."""
        return Counter(item["request"].get("correlation_id") for item in self.sim("GET", "/_sim/messages"))

    def accepted_by_job(self) -> Counter[str]:
        return Counter(
            item["request"].get("correlation_id")
            for item in self.sim("GET", "/_sim/messages")
            if item["message_id"] is not None
        )

    def job(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        assert job is not None
        return job

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.role} {p.log_path.name}\n{p.log()[-2500:]}" for p in self.processes)
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")
            time.sleep(0.1)

    def wait_for_status(self, job_ids: list[str], statuses: set[str], timeout: float = 30) -> None:
        self.wait_for(
            lambda: all(self.job(job_id).status in statuses for job_id in job_ids), timeout, f"jobs to be {statuses}"
        )

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        if self._gateway is not None:
            self._gateway.stop()
        if self._producer is not None:
            self._producer.close()
        self.redis.close()

    # -- the gateway, for receipts and inbound messages -------------------------------------------

    def start_gateway(self, webhook_secret: str = "whsec-test") -> str:
        """Serve the gateway in this process and register it as the simulator's webhook; returns its URL."""
        from producers.gateway import create_gateway

        self.env_values["SINCH_WEBHOOK_SECRET"] = webhook_secret
        settings = Settings(**self.env_values)  # type: ignore[arg-type]
        self._gateway = ThreadedServer(create_gateway(settings)).start()
        config = self.simulator.config
        self.sim(
            "POST", f"/v1/projects/{config.project_id}/webhooks", auth=(config.key_id, config.key_secret),
            json={"app_id": config.app_id, "target": self._gateway.url + "/webhooks/sinch",
                  "triggers": ["MESSAGE_DELIVERY", "MESSAGE_INBOUND"], "secret": webhook_secret},
        )  # fmt: skip
        return self._gateway.url


class ThreadedServer:
    """An ASGI app served by uvicorn in a daemon thread on a free port."""

    def __init__(self, app: Any) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def start(self) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()


@contextmanager
def gateways(**defaults: Any) -> Iterator[Callable[..., str]]:
    """`start(**overrides)` serves a gateway with these settings (and the overrides) on a free port and returns its
    URL; every gateway started is stopped on leaving."""
    from producers.gateway import create_gateway

    servers: list[ThreadedServer] = []

    def start(**overrides: Any) -> str:
        servers.append(ThreadedServer(create_gateway(Settings(**(defaults | overrides)))).start())
        return servers[-1].url

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@contextmanager
def system_under_test(server: RedisServer, tmp_path: Path) -> Iterator[Pipeline]:
    client = redis.Redis.from_url(server.url)
    client.flushdb()
    now = datetime.now(KST)
    sim_window = ((now - timedelta(hours=1)).time(), (now + timedelta(hours=2)).time())  # KakaoTalk's window: now
    config = SimulatorConfig(rate_limit=0, receipt_delay_ms=(0, 0), seed=7, friendtalk_window=sim_window,
                             templates=SimulatorTemplates.from_mapping(KAKAOTALK_TEMPLATES))  # fmt: skip
    with BackgroundSimulator(config) as simulator:
        system = Pipeline(server, simulator, tmp_path)
        try:
            yield system
        finally:
            system.close()
            client.flushdb()
            client.close()
