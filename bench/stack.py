"""The real processes a benchmark runs against: the simulator, Celery workers and beat, the gateway.

Each is a producers.processes.ManagedProcess (its own process group, its log in a temporary directory),
as in the sandbox; the private redis-server is worker.redis_server.RedisServer.
CPU time and memory of a process and its children are read from /proc (Linux).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import redis
from celery import Celery

from bench.interference import TICKS, cpu_ticks, descendants, snapshot, stat_fields
from producers.processes import ManagedProcess
from worker import keys
from worker.celery import CALLBACKS_QUEUE, DISPATCH_QUEUE
from worker.redis_server import free_port
from worker.sending_window import KST
from worker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PROJECT, APP, KEY_ID, KEY_SECRET = "sim-project", "sim-app", "sim-key", "sim-secret"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Process(ManagedProcess):
    """A ManagedProcess that is ready once its `ready()` holds; as a context manager: started, awaited, stopped."""

    def __init__(self, name: str, command: list[str], env: Mapping[str, str], log_path: Path) -> None:
        super().__init__(name, command, env=dict(env), log_path=log_path, ready=lambda _: self.ready())

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not started"
        return self.process.pid

    def ready(self) -> bool:
        return True

    def tree(self) -> list[int]:
        """This process and its descendants (a Celery worker and its pool processes)."""
        return process_tree(self.pid)

    def __enter__(self) -> Self:
        start_all([self])
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def start_all(processes: Iterable[Process], timeout: float = 30.0) -> None:
    """Start every process at once, then wait for each to be ready (stopping them all if one is not)."""
    started = list(processes)
    try:
        for process in started:
            process.start()
        for process in started:
            process.wait_ready(time.monotonic() + timeout)
    except BaseException:
        for process in started:
            process.stop()
        raise


class Simulator(Process):
    """`python -m simulator` on a free port: no latency, receipts at once, rate limit as given (0 = none)."""

    def __init__(
        self,
        log_dir: Path,
        *,
        rate_limit: float = 0,
        templates: Path | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        self.port = free_port()
        command = [
            sys.executable, "-m", "simulator", "--port", str(self.port), "--rate-limit", f"{rate_limit:g}",
            "--receipt-delay-ms", "0-0",
        ]  # fmt: skip
        if templates:
            command += ["--templates", str(templates)]
        if webhook_url:
            command += ["--webhook-url", webhook_url]
        if webhook_secret:
            command += ["--webhook-secret", webhook_secret]
        super().__init__("simulator", command, os.environ, log_dir / "simulator.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(self.url + "/_sim/stats", timeout=1).status_code == 200
        return False

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, self.url + path, timeout=60, **kwargs)
        response.raise_for_status()
        return response.json()

    def sinch_env(self) -> dict[str, str]:
        """The settings that point kakao-dispatch at this simulator."""
        return {
            "SINCH_API_URL": self.url,
            "SINCH_AUTH_URL": self.url + "/oauth2/token",
            "SINCH_PROJECT_ID": PROJECT,
            "SINCH_APP_ID": APP,
            "SINCH_KEY_ID": KEY_ID,
            "SINCH_KEY_SECRET": KEY_SECRET,
        }


class Beat(Process):
    """`celery -A worker beat`, ready when its log says it started."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        command = [sys.executable, "-m", "celery", "-A", "worker", "beat", "-s", str(log_dir / "beat-schedule"),
                   "--pidfile=", "-l", "INFO"]  # fmt: skip
        super().__init__("beat", command, env, log_dir / "beat.log")

    def ready(self) -> bool:
        return "beat: Starting" in self.log()


class Worker(Process):
    """A worker node as deployed (`celery -A worker worker`, prefork pool) at Celery's default log level.

    At that level (WARNING) the worker logs nothing when it is ready, so readiness is a remote-control
    ping answered by this node: its consumer loop runs.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log_dir: Path,
        *,
        name: str = "w1",
        concurrency: int = 2,
        app: str = "worker",
        queues: str = "dispatch,callbacks",
    ) -> None:
        self.node = f"{name}@{socket.gethostname()}"
        self.concurrency = concurrency
        command = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queues, "-c", str(concurrency),
                   "-n", self.node, "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
        super().__init__(f"worker {name}", command, env, log_dir / f"{name}.log")
        self._control: Celery | None = None

    def ready(self) -> bool:
        if self._control is None:
            self._control = Celery("bench-control", broker=self.env["KAKAO_DISPATCH_REDIS_URL"])
        replies = self._control.control.ping(destination=[self.node], timeout=0.3)
        return any(self.node in reply for reply in replies or [])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGKILL to the node and its pool at once: a warm shutdown takes about 2 s, and the benchmarks stop
        a node only when every message it took is acknowledged (a killed node loses nothing anyway)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        super().stop(timeout)
        if self._control is not None:
            self._control.close()
            self._control = None


class Gateway(Process):
    """`kakao-dispatch gateway` as deployed, on a free port."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.port = free_port()
        command = [str(BIN / "kakao-dispatch"), "gateway", "--port", str(self.port)]
        super().__init__("gateway", command, env, log_dir / "gateway.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        return False


def base_env(redis_url: str, **values: str) -> dict[str, str]:
    """The environment of kakao-dispatch processes: this process's, without any SINCH_/KAKAO_ setting, plus these.

    PYTHONPATH starts with the repository, so that `celery -A bench.noop_worker` finds the (not installed)
    bench package from any working directory.
    """
    inherited = {key: value for key, value in os.environ.items() if not key.startswith(("SINCH_", "KAKAO_"))}
    path = os.pathsep.join(filter(None, [str(ROOT), inherited.get("PYTHONPATH")]))
    return {**inherited, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path, "KAKAO_DISPATCH_REDIS_URL": redis_url, **values}


def settings_of(env: Mapping[str, str]) -> Settings:
    """The Settings of processes started with `env` (its SINCH_ and KAKAO_ variables), for this process to share."""
    values = {key: value for key, value in env.items() if key.startswith(("SINCH_", "KAKAO_"))}
    return Settings(**values)  # type: ignore[arg-type]


def window_around(now: datetime, *, opens_in: float, lasts: float) -> str:
    """A FriendTalk window (`HH:MM:SS-HH:MM:SS` KST) that opens `opens_in` seconds from `now`."""
    start = (now + timedelta(seconds=opens_in)).astimezone(KST)
    end = start + timedelta(seconds=lasts)
    return f"{start:%H:%M:%S}-{end:%H:%M:%S}"


def open_window() -> str:
    """A FriendTalk window that is open now and for the next two hours."""
    return window_around(datetime.now(UTC), opens_in=-3600, lasts=3 * 3600)


# -- /proc -----------------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """`root` and every descendant, from the parent ids in /proc/*/stat."""
    return descendants(snapshot(), root)


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time of these processes so far (seconds)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += cpu_ticks(stat_fields(pid))
    return total / TICKS


def rss_bytes(pids: Iterable[int]) -> int:
    """Resident memory of these processes (bytes, shared pages counted in each)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    return total


# -- Redis -----------------------------------------------------------------------------------------

#: A database of the benchmark's redis-server where Celery messages a producer published wait, out of the
#: workers' reach, until the benchmark moves them to database 0 (or drops them).
PARKING_DB = 15


def with_db(url: str, db: int) -> str:
    """The Redis URL `url` with database `db`."""
    return url.rsplit("/", 1)[0] + f"/{db}"


def status_count(client: redis.Redis, status: str) -> int:
    """How many jobs are in `status` now (the job store's status counts)."""
    return int(client.hget(keys.STATUS_COUNTS, status) or 0)


#: kombu's Redis transport keeps delivered, unacknowledged messages (acks_late) in this hash and its index.
UNACKED = ("unacked", "unacked_index", "unacked_mutex")


def clear_data(client: redis.Redis) -> None:
    """Delete every kakao-dispatch key and the queued messages, keeping kombu's queue bindings.

    A FLUSHDB would also drop `_kombu.binding.*`, which running processes declared once at start-up
    and which `send_task` needs to route a message to its queue.
    """
    client.delete(DISPATCH_QUEUE, CALLBACKS_QUEUE, *UNACKED)
    batch: list[str] = []
    for key in client.scan_iter(match=keys.PREFIX + "*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)


def redis_cpu_seconds(client: redis.Redis) -> float:
    """User + system CPU time of the redis-server so far (INFO cpu)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def redis_used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])
